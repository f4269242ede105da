//! The command line: `serve`, `migrate`, provisioning commands, and
//! `export`/`import` of whole databases.
//!
//! Provisioning commands print the object they created as exactly one JSON
//! line on stdout (as do `import`, and `export` to a file); errors go to
//! stderr with a non-zero exit status.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::application::Application;
use crate::config::{Config, LogFormat, Settings};
use crate::core::access::{Role, Scopes};
use crate::core::dump::RecordCounts;
use crate::core::id::{KeyId, UserId, WorkspaceId};
use crate::core::text;
use crate::core::time::Timestamp;
use crate::core::token::ApiToken;
use crate::core::workspace::{
    ApiKey, NewApiKey, NewUser, NewWorkspace, User, Workspace, WorkspaceCode, is_email,
};
use crate::encryption::{self, EncryptedStore, ExportBodies, MissingKeyFile, describe};
use crate::private_file;
use crate::store::{self, DatabaseUrl, Store, StoreError};
use crate::transfer::{self, Batching, EXPORT_PAGE_SIZE};

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
        Command::Serve(_) => serve(config).await,
        Command::Migrate => migrate(&config.database).await,
        Command::Workspace(command) => workspace(&config.database, command).await,
        Command::User(command) => user(&config.database, command).await,
        Command::Key(command) => key(&config.database, command).await,
        Command::Export(args) => export(&config, &args).await,
        Command::Import(args) => import(&config, &args.input).await,
        Command::Encryption(command) => encryption_command(&config, command).await,
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<(), String> {
    let line = serde_json::to_string(value).map_err(|error| error.to_string())?;
    println!("{line}");
    Ok(())
}

async fn migrate(database: &DatabaseUrl) -> Result<(), String> {
    let applied = match database {
        DatabaseUrl::Sqlite(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || store::sqlite::SqliteStore::migrate(&path))
                .await
                .map_err(|error| error.to_string())?
                .map_err(describe)?
        }
        DatabaseUrl::Postgres(url) => store::postgres::PostgresStore::migrate(url)
            .await
            .map_err(describe)?,
    };
    print_json(&serde_json::json!({ "applied": applied }))
}

/// A workspace as printed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkspaceOutput {
    id: String,
    numeric_id: i64,
    name: String,
    code: String,
    plan: String,
    created_at: String,
}

impl From<Workspace> for WorkspaceOutput {
    fn from(workspace: Workspace) -> Self {
        Self {
            id: workspace.id.to_string(),
            numeric_id: workspace.numeric_id,
            name: workspace.name,
            code: workspace.code,
            plan: workspace.plan,
            created_at: workspace.created_at.to_string(),
        }
    }
}

async fn workspace(database: &DatabaseUrl, command: WorkspaceCommand) -> Result<(), String> {
    let WorkspaceCommand::Create { name, code } = command;
    let name = name.trim().to_owned();
    if text::check_name(&name).is_err() {
        return Err("--name must be 1 to 200 characters".into());
    }
    let code = match code {
        Some(code) => WorkspaceCode::parse(&code)
            .ok_or("--code must be 2 to 32 characters of A-Z, 0-9, - and _, starting with a letter or digit")?,
        None => WorkspaceCode::derive_from(&name),
    };
    let store = store::open(database).await.map_err(describe)?;
    let new = NewWorkspace {
        id: WorkspaceId::generate(),
        name,
        code: code.clone(),
        created_at: Timestamp::now(),
    };
    let workspace = store
        .create_workspace(new)
        .await
        .map_err(|error| match error {
            StoreError::Conflict(constraint) if constraint == "workspace_code_key" => {
                format!(
                    "the workspace code {} is taken; choose another with --code",
                    code.as_str()
                )
            }
            other => describe(other),
        })?;
    print_json(&WorkspaceOutput::from(workspace))
}

/// A user as printed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserOutput {
    id: String,
    workspace_id: String,
    role: &'static str,
    name: String,
    email: Option<String>,
    created_at: String,
}

impl From<User> for UserOutput {
    fn from(user: User) -> Self {
        Self {
            id: user.id.to_string(),
            workspace_id: user.workspace_id.to_string(),
            role: user.role.as_str(),
            name: user.name,
            email: user.email,
            created_at: user.created_at.to_string(),
        }
    }
}

async fn user(database: &DatabaseUrl, command: UserCommand) -> Result<(), String> {
    let UserCommand::Create {
        workspace,
        role,
        name,
        email,
    } = command;
    let workspace_id = WorkspaceId::parse(&workspace).ok_or("--workspace must be a ws_ id")?;
    let role = Role::parse(&role).ok_or("--role must be customer, staff or automation")?;
    let name = name.trim().to_owned();
    if text::check_name(&name).is_err() {
        return Err("--name must be 1 to 200 characters".into());
    }
    if email.as_deref().is_some_and(|email| !is_email(email)) {
        return Err("--email must be an email address".into());
    }
    let store = store::open(database).await.map_err(describe)?;
    let new = NewUser {
        id: UserId::generate(),
        workspace_id,
        role,
        name,
        email,
        created_at: Timestamp::now(),
    };
    let user = store.create_user(new).await.map_err(|error| match error {
        StoreError::NotFound => format!("no workspace {workspace_id}"),
        other => describe(other),
    })?;
    print_json(&UserOutput::from(user))
}

/// An API key as printed; `token` only when it was just created.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyOutput {
    id: String,
    user_id: String,
    workspace_id: String,
    scopes: Vec<&'static str>,
    created_at: String,
    revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl KeyOutput {
    fn new(key: ApiKey, token: Option<String>) -> Self {
        Self {
            id: key.id.to_string(),
            user_id: key.user_id.to_string(),
            workspace_id: key.workspace_id.to_string(),
            scopes: key.scopes.iter().map(|scope| scope.as_str()).collect(),
            created_at: key.created_at.to_string(),
            revoked_at: key.revoked_at.map(|at| at.to_string()),
            token,
        }
    }
}

async fn key(database: &DatabaseUrl, command: KeyCommand) -> Result<(), String> {
    match command {
        KeyCommand::Create { user, scopes } => {
            let user_id = UserId::parse(&user).ok_or("--user must be a usr_ id")?;
            let scopes = Scopes::parse_list(&scopes).map_err(|unknown| {
                format!("unknown scope {unknown:?}: use read:support and/or write:support")
            })?;
            if scopes.is_empty() {
                return Err("--scopes must name at least one scope".into());
            }
            let token = ApiToken::generate(KeyId::generate())
                .map_err(|error| format!("no randomness for the key's secret: {error}"))?;
            let store = store::open(database).await.map_err(describe)?;
            let new = NewApiKey {
                id: token.key_id,
                user_id,
                scopes,
                secret_hash: token.secret_hash(),
                created_at: Timestamp::now(),
            };
            let key = store
                .create_api_key(new)
                .await
                .map_err(|error| match error {
                    StoreError::NotFound => format!("no user {user_id}"),
                    other => describe(other),
                })?;
            print_json(&KeyOutput::new(key, Some(token.expose())))
        }
        KeyCommand::Revoke { key } => {
            let key_id = KeyId::parse(&key).ok_or("KEY_ID must be a key_ id")?;
            let store = store::open(database).await.map_err(describe)?;
            let key = store
                .revoke_api_key(key_id, Timestamp::now())
                .await
                .map_err(|error| match error {
                    StoreError::NotFound => format!("no key {key_id}"),
                    other => describe(other),
                })?;
            print_json(&KeyOutput::new(key, None))
        }
    }
}

/// `-` for a standard stream.
fn is_std_stream(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Record counts as printed.
fn counts_json(counts: RecordCounts) -> serde_json::Value {
    serde_json::json!({
        "workspaces": counts.workspaces,
        "users": counts.users,
        "apiKeys": counts.api_keys,
        "tickets": counts.tickets,
        "messages": counts.messages,
    })
}

async fn export(config: &Config, args: &ExportArgs) -> Result<(), String> {
    let database = &config.database;
    let output = args.output.as_path();
    // Opening creates (or migrates) a database; exporting a misspelt one
    // should fail, changing nothing, instead of writing an empty dump.
    if !store::exists(database).await.map_err(describe)? {
        return Err(format!("no ticketd database at {}", database.redacted()));
    }
    let mut store = store::open(database).await.map_err(describe)?;
    if args.decrypt {
        let encryption = encryption::setup(
            store.as_ref(),
            &config.encryption_key_file,
            MissingKeyFile::Refuse,
        )
        .await?;
        store = EncryptedStore::wrap(store, encryption, ExportBodies::Decrypted);
        eprintln!(
            "ticketd: warning: --decrypt writes the plaintext of encrypted messages into the \
             dump; keep it as secret as the key file, and delete it when done"
        );
    }
    if is_std_stream(output) {
        let mut stdout = BufWriter::with_capacity(1 << 16, std::io::stdout());
        transfer::export(store.as_ref(), &mut stdout, EXPORT_PAGE_SIZE)
            .await
            .map_err(|error| error.to_string())?;
        return Ok(());
    }
    // Written to an owner-only file beside the output, under a name nobody
    // can guess (so no link placed there is followed), and renamed over it
    // when complete: a failed export never leaves something that looks
    // like a dump.
    let (temporary, file) = private_file::create_temporary(output)
        .map_err(|error| format!("cannot create a file beside {}: {error}", output.display()))?;
    let written = write_dump(store.as_ref(), file, output).await;
    let renamed = written.and_then(|counts| {
        std::fs::rename(&temporary, output)
            .map(|()| counts)
            .map_err(|error| format!("cannot write {}: {error}", output.display()))
    });
    match renamed {
        Ok(counts) => {
            private_file::sync_parent(output);
            print_json(&serde_json::json!({ "exported": counts_json(counts) }))
        }
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(error)
        }
    }
}

/// Writes a whole dump of `store` to `file` (to become `output`), synced
/// to disk.
async fn write_dump(
    store: &dyn Store,
    file: File,
    output: &Path,
) -> Result<crate::core::dump::RecordCounts, String> {
    let mut writer = BufWriter::with_capacity(1 << 16, file);
    let counts = transfer::export(store, &mut writer, EXPORT_PAGE_SIZE)
        .await
        .map_err(|error| error.to_string())?;
    writer
        .into_inner()
        .map_err(|error| error.into_error())
        .and_then(|file| file.sync_all())
        .map_err(|error| format!("cannot write {}: {error}", output.display()))?;
    Ok(counts)
}

async fn import(config: &Config, input: &Path) -> Result<(), String> {
    let database = &config.database;
    // Open the dump before the database, which opening would create.
    let mut dump = if is_std_stream(input) {
        spool_stdin()?
    } else {
        File::open(input).map_err(|error| format!("cannot open {}: {error}", input.display()))?
    };
    let store = store::open(database).await.map_err(describe)?;
    let encryption = encryption::setup(
        store.as_ref(),
        &config.encryption_key_file,
        MissingKeyFile::CreateForNewDatabase,
    )
    .await?;
    // Sealed bodies are opened with the target's keys and checked as
    // plaintext before anything is written.
    let keyring = encryption.keyring();
    let store = EncryptedStore::wrap(store, encryption, ExportBodies::Sealed);
    let store: &dyn Store = store.as_ref();
    if !store.is_empty().await.map_err(describe)? {
        return Err(format!(
            "{} is not empty: import only into a new, empty database",
            database.redacted()
        ));
    }
    // The dump is read twice: checked whole first, so that a truncated,
    // malformed or edited dump is refused before anything is written.
    transfer::check(BufReader::with_capacity(1 << 16, &dump), &keyring)
        .map_err(|error| error.to_string())?;
    dump.seek(SeekFrom::Start(0))
        .map_err(|error| format!("cannot read {}: {error}", input.display()))?;
    let counts = transfer::import(
        store,
        BufReader::with_capacity(1 << 16, dump),
        Batching::default(),
        &keyring,
    )
    .await
    .map_err(|error| error.to_string())?;
    print_json(&serde_json::json!({ "imported": counts_json(counts) }))
}

/// Copies standard input into an owner-only temporary file, so that a dump
/// piped in can be read twice like one named with `--input`. The file is in
/// the temporary directory (`TMPDIR`, or `/tmp`) and is removed as soon as
/// it is created: the open handle keeps it until import ends, however it
/// ends, and nothing is left behind.
///
/// # Errors
/// If the file cannot be created or written (the disk is full, say).
fn spool_stdin() -> Result<File, String> {
    let directory = std::env::temp_dir();
    let cannot = |error: std::io::Error| {
        format!(
            "cannot copy the dump from stdin to a temporary file in {}: {error}",
            directory.display()
        )
    };
    let (path, mut file) =
        private_file::create_temporary(&directory.join("ticketd-import")).map_err(cannot)?;
    // Best effort: on Unix an open file can lose its name.
    let _ = std::fs::remove_file(&path);
    std::io::copy(&mut std::io::stdin().lock(), &mut file)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .map_err(cannot)?;
    Ok(file)
}

async fn encryption_command(config: &Config, command: EncryptionCommand) -> Result<(), String> {
    if !store::exists(&config.database).await.map_err(describe)? {
        return Err(format!(
            "no ticketd database at {}",
            config.database.redacted()
        ));
    }
    let store = store::open(&config.database).await.map_err(describe)?;
    let store = store.as_ref();
    let path = &config.encryption_key_file;
    match command {
        EncryptionCommand::Rotate { no_new_key } => {
            print_json(&encryption::rotate(store, path, !no_new_key).await?)
        }
        EncryptionCommand::AddKey => {
            let key = encryption::add_key(store, path).await?;
            print_json(&serde_json::json!({ "addedKey": key.to_string() }))
        }
        EncryptionCommand::Status => print_json(&encryption::status(store, path).await?),
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let _log = crate::telemetry::init(config.log_format);
    let application = Application::build(config).await?;
    application
        .run_until(shutdown_signal())
        .await
        .map_err(|error| format!("server failed: {error}"))?;
    tracing::info!("ticketd stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
