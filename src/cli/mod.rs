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

use crate::config::{Config, LogFormat, Settings};

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

/// Flags of `serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on. Default: 127.0.0.1:8080
    #[arg(long, env = "TICKETD_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Base URL clients reach the server at (used in problem `type` URIs).
    #[arg(long, env = "TICKETD_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Sustained requests per minute per API key. Default: 600
    #[arg(long, env = "TICKETD_RATE_LIMIT_PER_MINUTE", value_name = "N")]
    pub rate_limit_per_minute: Option<u32>,
    /// Requests an API key may send at once. Default: the per-minute rate
    #[arg(long, env = "TICKETD_RATE_LIMIT_BURST", value_name = "N")]
    pub rate_limit_burst: Option<u32>,
    /// Where rate-limit state lives: `memory` (this process) or a
    /// redis://HOST:PORT/DB URL shared by every node. Default: memory
    #[arg(
        long,
        env = "TICKETD_RATE_LIMIT_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub rate_limit_url: Option<String>,
    /// Prefix of the rate limiter's Redis keys. Default: ticketd:rl:
    #[arg(long, env = "TICKETD_RATE_LIMIT_KEY_PREFIX", value_name = "PREFIX")]
    pub rate_limit_key_prefix: Option<String>,
    /// Seconds a request may take before it is answered with 503. Default: 30
    #[arg(long, env = "TICKETD_REQUEST_TIMEOUT_SECS", value_name = "SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Largest request body in bytes. Default: 1048576
    #[arg(long, env = "TICKETD_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Bytes of request bodies held in memory at once; more writes wait
    /// before their body is read. Default: --max-concurrent-requests times
    /// --max-body-bytes (1 GiB)
    #[arg(long, env = "TICKETD_MAX_BUFFERED_BODY_BYTES", value_name = "BYTES")]
    pub max_buffered_body_bytes: Option<usize>,
    /// Requests handled at once; more wait. Default: 1024
    #[arg(long, env = "TICKETD_MAX_CONCURRENT_REQUESTS", value_name = "N")]
    pub max_concurrent_requests: Option<usize>,
    /// Connections served at once; more wait to be accepted.
    /// Default: 10000 (less if the open-file limit is lower)
    #[arg(long, env = "TICKETD_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Largest request line plus headers in bytes; larger is answered 431.
    /// Default: 16384
    #[arg(long, env = "TICKETD_MAX_HEADER_BYTES", value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Seconds a client has to send a request's line and headers before
    /// its connection is closed. Default: 10
    #[arg(long, env = "TICKETD_HEADER_READ_TIMEOUT_SECS", value_name = "SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a kept-alive connection may wait for its next request (or
    /// for the client to read a response) before it is closed. Default: 75
    #[arg(long, env = "TICKETD_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// The idle timeout for a connection on which no request has been
    /// authenticated yet (at most --idle-timeout-secs). Default: 5
    #[arg(
        long,
        env = "TICKETD_UNAUTHENTICATED_IDLE_TIMEOUT_SECS",
        value_name = "SECS"
    )]
    pub unauthenticated_idle_timeout_secs: Option<u64>,
    /// Connections open at once from one client address (IPv6: one /64);
    /// more are closed at once. 0 for no cap (behind a proxy).
    /// Default: 64, or a quarter of --max-connections if less
    #[arg(long, env = "TICKETD_MAX_CONNECTIONS_PER_ADDRESS", value_name = "N")]
    pub max_connections_per_address: Option<usize>,
    /// Seconds a client has to send a request's body before it is answered
    /// with 408; at most --request-timeout-secs. Default: 10, or
    /// --request-timeout-secs if less
    #[arg(long, env = "TICKETD_BODY_READ_TIMEOUT_SECS", value_name = "SECS")]
    pub body_read_timeout_secs: Option<u64>,
    /// Requests one API key may have in progress at once; more are answered
    /// with 429. Default: a sixteenth of --max-concurrent-requests (64), at
    /// least 1
    #[arg(
        long,
        env = "TICKETD_MAX_CONCURRENT_REQUESTS_PER_KEY",
        value_name = "N"
    )]
    pub max_concurrent_requests_per_key: Option<usize>,
    /// Failed authentications per minute (and at once) per client address;
    /// more are answered with 429. 0 for no limit. Default: 60
    #[arg(long, env = "TICKETD_AUTH_FAILURE_LIMIT_PER_MINUTE", value_name = "N")]
    pub auth_failure_limit_per_minute: Option<u32>,
    /// Longest ticket subject in characters, 1 to 200. Default: 200
    #[arg(long, env = "TICKETD_MAX_SUBJECT_CHARS", value_name = "N")]
    pub max_subject_chars: Option<usize>,
    /// Longest message in characters, 1 to 25000. Default: 25000
    #[arg(long, env = "TICKETD_MAX_MESSAGE_CHARS", value_name = "N")]
    pub max_message_chars: Option<usize>,
    /// Log format. Default: text
    #[arg(long, env = "TICKETD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// PostgreSQL connections this node keeps at most. Default: 16
    #[arg(long, env = "TICKETD_DATABASE_POOL_SIZE", value_name = "N")]
    pub database_pool_size: Option<usize>,
    /// Milliseconds a request waits for a PostgreSQL connection before it
    /// is answered with 503. Default: 2000
    #[arg(long, env = "TICKETD_DATABASE_POOL_TIMEOUT_MS", value_name = "MS")]
    pub database_pool_timeout_ms: Option<u64>,
    /// Seconds the response of a request with an Idempotency-Key is kept
    /// for its retries. Default: 86400 (a day)
    #[arg(long, env = "TICKETD_IDEMPOTENCY_TTL_SECS", value_name = "SECS")]
    pub idempotency_ttl_secs: Option<u64>,
    /// Seconds an API key, once read from the database, is trusted without
    /// reading it again; a key revoked meanwhile works for up to this long.
    /// 0 reads the key on every request. Default: 2
    #[arg(long, env = "TICKETD_API_KEY_CACHE_SECS", value_name = "SECS")]
    pub api_key_cache_secs: Option<u64>,
    /// MiB of rendered message HTML kept in memory, so that each message is
    /// rendered once rather than on every read; 0 renders on every read.
    /// Default: 16
    #[arg(long, env = "TICKETD_HTML_CACHE_MIB", value_name = "MIB")]
    pub html_cache_mib: Option<u64>,
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
    let mut over = Settings {
        database: cli.database.clone(),
        encryption_key_file: cli.encryption_key_file.clone(),
        ..Settings::default()
    };
    if let Command::Serve(args) = &cli.command {
        over = Settings {
            listen: args.listen.clone(),
            public_url: args.public_url.clone(),
            rate_limit_per_minute: args.rate_limit_per_minute,
            rate_limit_burst: args.rate_limit_burst,
            rate_limit_url: args.rate_limit_url.clone(),
            rate_limit_key_prefix: args.rate_limit_key_prefix.clone(),
            request_timeout_secs: args.request_timeout_secs,
            max_body_bytes: args.max_body_bytes,
            max_buffered_body_bytes: args.max_buffered_body_bytes,
            max_concurrent_requests: args.max_concurrent_requests,
            max_connections: args.max_connections,
            max_header_bytes: args.max_header_bytes,
            header_read_timeout_secs: args.header_read_timeout_secs,
            idle_timeout_secs: args.idle_timeout_secs,
            unauthenticated_idle_timeout_secs: args.unauthenticated_idle_timeout_secs,
            max_connections_per_address: args.max_connections_per_address,
            body_read_timeout_secs: args.body_read_timeout_secs,
            max_concurrent_requests_per_key: args.max_concurrent_requests_per_key,
            auth_failure_limit_per_minute: args.auth_failure_limit_per_minute,
            max_subject_chars: args.max_subject_chars,
            max_message_chars: args.max_message_chars,
            database_pool_size: args.database_pool_size,
            database_pool_timeout_ms: args.database_pool_timeout_ms,
            log_format: args.log_format,
            idempotency_ttl_secs: args.idempotency_ttl_secs,
            api_key_cache_secs: args.api_key_cache_secs,
            html_cache_mib: args.html_cache_mib,
            ..over
        };
    }
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
