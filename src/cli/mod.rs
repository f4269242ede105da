//! The command line: `serve`, `migrate`, provisioning and listing commands,
//! `export`/`import` of whole databases, and `config show`.
//!
//! Provisioning commands print the object they created as exactly one JSON
//! line on stdout (as do `import`, and `export` to a file); errors go to
//! stderr with a non-zero exit status.

mod backup;
mod config_show;
mod encryption;
mod error;
mod listing;
mod migrate;
mod provision;
mod serve;
mod transfer;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;

pub use backup::{BackupArgs, RestoreArgs};
pub use config_show::{ConfigCommand, ShowArgs};
pub use encryption::EncryptionCommand;
pub use error::CliError;
pub use listing::OutputFormat;
pub use provision::{KeyCommand, UserCommand, WorkspaceCommand};
pub use serve::ServeArgs;
pub use transfer::{ExportArgs, ImportArgs};

use crate::config::{Config, Settings};

/// ticketd: self-hosted support tickets over an HTTP JSON API.
#[derive(Debug, Parser)]
#[command(name = "ticketd", version, about)]
pub struct Cli {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
    /// Default: sqlite://ticketd-data/ticketd.db
    #[arg(
        long,
        global = true,
        env = "TICKETD_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database: Option<String>,

    /// Configuration file. Default: ./ticketd.toml if it exists.
    #[arg(
        long,
        global = true,
        env = "TICKETD_CONFIG",
        hide_env_values = true,
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    /// Key file of messages marked `encrypted`. Default: encryption.key
    /// beside a SQLite database; ticketd-data/encryption.key for PostgreSQL
    #[arg(
        long,
        global = true,
        env = "TICKETD_ENCRYPTION_KEY_FILE",
        hide_env_values = true,
        value_name = "PATH"
    )]
    pub encryption_key_file: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Write the whole database as a dump (JSON Lines), streaming.
    Export(ExportArgs),
    /// Load a dump into an empty database, keeping every id, number, time
    /// and key digest.
    Import(ImportArgs),
    /// Copy a live SQLite database and its upload files into a new
    /// directory, while servers keep running.
    Backup(BackupArgs),
    /// Restore a backup into an empty data directory.
    Restore(RestoreArgs),
    /// Manage the keys of messages marked `encrypted`.
    #[command(subcommand)]
    Encryption(EncryptionCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// Runs a parsed command line.
///
/// # Errors
/// Why the command failed; it displays as one line for stderr.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let (config_path, required) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from("ticketd.toml"), false),
    };
    let file = Settings::from_file(&config_path, required)?;
    let over = match &cli.command {
        Command::Serve(args) => args.settings.clone(),
        Command::Config(ConfigCommand::Show(args)) => args.settings.clone(),
        _ => Settings::default(),
    };
    let over = Settings {
        database: cli.database.clone(),
        encryption_key_file: cli.encryption_key_file.clone(),
        ..over
    };
    let mut config = Config::from_settings(file.clone().overridden_by(over))?;
    match cli.command {
        Command::Serve(_) => {
            config
                .unused_settings
                .extend(unknown_environment_variables().into_iter().map(|name| {
                    format!(
                        "the environment variable {name} is no ticketd setting: it has no effect"
                    )
                }));
            serve::serve(config).await
        }
        Command::Migrate => migrate::migrate(&config.database).await,
        Command::Workspace(command) => provision::workspace(&config, command).await,
        Command::User(command) => provision::user(&config.database, command).await,
        Command::Key(command) => provision::key(&config.database, command).await,
        Command::Export(args) => transfer::export(&config, &args).await,
        Command::Import(args) => transfer::import(&config, &args.input).await,
        Command::Backup(args) => backup::backup(&config, &args),
        Command::Restore(args) => backup::restore(&config, &args),
        Command::Encryption(command) => encryption::encryption_command(&config, command).await,
        Command::Config(ConfigCommand::Show(args)) => {
            let layers = config_show::Layers {
                file: (&config_path, &file),
                config: &config,
            };
            config_show::show(&layers, args.format)
        }
    }
}

/// The `TICKETD_*` environment variables that `serve` reads none of (a
/// misspelt setting, say), sorted.
fn unknown_environment_variables() -> Vec<String> {
    use clap::CommandFactory;
    let cli = Cli::command();
    let serve = cli
        .find_subcommand("serve")
        .into_iter()
        .flat_map(|serve| serve.get_arguments());
    let mut known: Vec<String> = cli
        .get_arguments()
        .chain(serve)
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    known.push(crate::telemetry::FILTER_VARIABLE.to_owned());
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("TICKETD_") && !known.contains(name))
        .collect();
    unknown.sort();
    unknown
}

/// Prints `value` as one JSON line on stdout.
fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let line = serde_json::to_string(value).map_err(CliError::from_error)?;
    print_out(&format!("{line}\n"))
}

/// Writes `text` to stdout; a closed stdout (`ticketd ... | head`) is an
/// error, not a panic.
fn print_out(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|error| CliError::caused_by(format!("cannot write to stdout: {error}"), error))
}
