//! The command line: `serve`, `migrate`, provisioning commands, and
//! `export`/`import` of whole databases.
//!
//! Provisioning commands print the object they created as exactly one JSON
//! line on stdout (as do `import`, and `export` to a file); errors go to
//! stderr with a non-zero exit status.

mod encryption;
mod migrate;
mod provision;
mod serve;
mod transfer;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

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
    #[arg(long, global = true, env = "TICKETD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Key file of messages marked `encrypted`. Default: encryption.key
    /// beside a SQLite database; ticketd-data/encryption.key for PostgreSQL
    #[arg(
        long,
        global = true,
        env = "TICKETD_ENCRYPTION_KEY_FILE",
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
    /// Manage the keys of messages marked `encrypted`.
    #[command(subcommand)]
    Encryption(EncryptionCommand),
}

/// `encryption` subcommands.
#[derive(Debug, Subcommand)]
pub enum EncryptionCommand {
    /// Add a key, re-seal every encrypted message under it, and delete the
    /// old keys from the database and the key file. Servers may keep
    /// running.
    Rotate {
        /// Re-seal under the key file's newest key (one added with
        /// `add-key` and copied to every node, or a rotation that was
        /// interrupted) instead of adding one.
        #[arg(long)]
        no_new_key: bool,
    },
    /// Add a key to the key file; copy the file to every node, then run
    /// `rotate --no-new-key`.
    AddKey,
    /// Show the keys and how many encrypted messages each one seals.
    Status,
}

/// Flags of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write the dump; `-` for stdout.
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
    /// Write the plaintext of messages marked `encrypted` (needs the key
    /// file). Without it they are written sealed, as stored.
    #[arg(long)]
    pub decrypt: bool,
}

/// Flags of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The dump to read; `-` for stdin.
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub input: PathBuf,
}

/// Flags of `serve`: every setting (see [`Settings`]) but the global
/// `--database` and `--encryption-key-file`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// The settings given as flags or `TICKETD_*` environment variables.
    #[command(flatten)]
    pub settings: Settings,
}

/// `workspace` subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Unique short code (A-Z, 0-9, - and _). Default: derived from the name.
        #[arg(long)]
        code: Option<String>,
    },
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user in a workspace.
    Create {
        /// The workspace (`ws_...`).
        #[arg(long, value_name = "WS_ID")]
        workspace: String,
        /// customer, staff or automation.
        #[arg(long)]
        role: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Contact address.
        #[arg(long)]
        email: Option<String>,
    },
}

/// `key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a user; prints its token once.
    Create {
        /// The user the key acts as (`usr_...`).
        #[arg(long, value_name = "USR_ID")]
        user: String,
        /// Comma-separated scopes. Default: read:support,write:support
        #[arg(long, default_value = "read:support,write:support")]
        scopes: String,
    },
    /// Revoke an API key.
    Revoke {
        /// The key (`key_...`).
        #[arg(value_name = "KEY_ID")]
        key: String,
    },
}

/// Runs a parsed command line.
///
/// # Errors
/// A message for stderr.
pub async fn run(cli: Cli) -> Result<(), String> {
    let (config_path, required) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from("ticketd.toml"), false),
    };
    let file = Settings::from_file(&config_path, required)?;
    let over = match &cli.command {
        Command::Serve(args) => args.settings.clone(),
        _ => Settings::default(),
    };
    let over = Settings {
        database: cli.database.clone(),
        encryption_key_file: cli.encryption_key_file.clone(),
        ..over
    };
    let config = Config::from_settings(file.overridden_by(over))?;
    match cli.command {
        Command::Serve(_) => serve::serve(config).await,
        Command::Migrate => migrate::migrate(&config.database).await,
        Command::Workspace(command) => provision::workspace(&config.database, command).await,
        Command::User(command) => provision::user(&config.database, command).await,
        Command::Key(command) => provision::key(&config.database, command).await,
        Command::Export(args) => transfer::export(&config, &args).await,
        Command::Import(args) => transfer::import(&config, &args.input).await,
        Command::Encryption(command) => encryption::encryption_command(&config, command).await,
    }
}

/// Prints `value` as one JSON line on stdout.
fn print_json<T: Serialize>(value: &T) -> Result<(), String> {
    let line = serde_json::to_string(value).map_err(|error| error.to_string())?;
    println!("{line}");
    Ok(())
}
