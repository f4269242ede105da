//! Configuration: defaults < `ticketd.toml` < `TICKETD_*` environment
//! variables < command-line flags. Everything is validated once, at startup.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::profiles::Profile;
use crate::blob::BlobLocation;
use crate::core::text::{TextLimitError, TextLimits};
use crate::core::upload::attach::AttachLimits;
use crate::core::upload::media::{KnownType, MediaCheck};
use crate::rate_limit::redis::{RedisRateLimiter, RedisUrl, check_policy};
use crate::rate_limit::{RateLimitStore, RatePolicy};
use crate::server::{self, ConnectionLimits};
use crate::store::DatabaseUrl;
use crate::store::postgres::PoolOptions;

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Declares [`Settings`] and its [`Settings::overridden_by`] from one list
/// of fields, so that a setting added to the struct takes part in the
/// precedence without a second list to keep in step.
macro_rules! settings {
    (
        $(#[$outer:meta])*
        pub struct $name:ident {
            $( $(#[$meta:meta])* pub $field:ident: Option<$ty:ty>, )*
        }
    ) => {
        $(#[$outer])*
        pub struct $name {
            $( $(#[$meta])* pub $field: Option<$ty>, )*
        }

        impl $name {
            /// Every key, in declaration order.
            pub const KEYS: &[&str] = &[$(stringify!($field)),*];

            /// These settings with every value `over` sets taking precedence.
            pub fn overridden_by(self, over: Self) -> Self {
                Self {
                    $( $field: over.$field.or(self.$field), )*
                }
            }
        }
    };
}

settings! {
/// Settings as read from `ticketd.toml`, or given as `serve` flags and
/// `TICKETD_*` environment variables; every one optional. Each field is
/// declared once: its name is the TOML key and (in kebab case) the flag,
/// and its doc comment is the flag's help.
///
/// The field order is the list of keys a TOML error names ("expected one
/// of ..."); `ticketd serve --help` lists the flags in the same order but
/// for the database pool's, which follow --log-format. Flags sort by
/// `display_order`, which each takes from its position (the global flags
/// of [`crate::cli::Cli`] at 0 to 2 among them), then by name: --listen
/// and --public-url keep the places 0 and 1 the pool flags before them
/// would take, and the pool flags take 24, beside --idempotency-ttl-secs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Database URL (`sqlite://PATH` or `postgres://...`): the global
    /// `--database` flag of [`crate::cli::Cli`].
    #[arg(skip)]
    pub database: Option<String>,
    /// PostgreSQL connections this node keeps at most. Default: 16
    #[arg(
        long,
        env = "TICKETD_DATABASE_POOL_SIZE",
        hide_env_values = true,
        value_name = "N",
        display_order = 24
    )]
    pub database_pool_size: Option<usize>,
    /// Milliseconds a request waits for a PostgreSQL connection before it
    /// is answered with 503. Default: 2000
    #[arg(
        long,
        env = "TICKETD_DATABASE_POOL_TIMEOUT_MS",
        hide_env_values = true,
        value_name = "MS",
        display_order = 24
    )]
    pub database_pool_timeout_ms: Option<u64>,
    /// Address to listen on. Default: 127.0.0.1:8080
    #[arg(long, env = "TICKETD_LISTEN", hide_env_values = true, value_name = "ADDR", display_order = 0)]
    pub listen: Option<String>,
    /// Base URL clients reach the server at (used in problem `type` URIs).
    #[arg(long, env = "TICKETD_PUBLIC_URL", hide_env_values = true, value_name = "URL", display_order = 1)]
    pub public_url: Option<String>,
    /// Sustained requests per minute per API key. Default: 600
    #[arg(long, env = "TICKETD_RATE_LIMIT_PER_MINUTE", hide_env_values = true, value_name = "N")]
    pub rate_limit_per_minute: Option<u32>,
    /// Requests an API key may send at once. Default: the per-minute rate
    #[arg(long, env = "TICKETD_RATE_LIMIT_BURST", hide_env_values = true, value_name = "N")]
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
    #[arg(long, env = "TICKETD_RATE_LIMIT_KEY_PREFIX", hide_env_values = true, value_name = "PREFIX")]
    pub rate_limit_key_prefix: Option<String>,
    /// Seconds a request may take before it is answered with 503. Default: 30
    #[arg(long, env = "TICKETD_REQUEST_TIMEOUT_SECS", hide_env_values = true, value_name = "SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Largest request body in bytes. Default: 1048576
    #[arg(long, env = "TICKETD_MAX_BODY_BYTES", hide_env_values = true, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Bytes of request bodies held in memory at once; more writes wait
    /// before their body is read. Default: --max-concurrent-requests times
    /// --max-body-bytes (1 GiB)
    #[arg(long, env = "TICKETD_MAX_BUFFERED_BODY_BYTES", hide_env_values = true, value_name = "BYTES")]
    pub max_buffered_body_bytes: Option<usize>,
    /// Requests handled at once; more wait. Default: 1024
    #[arg(long, env = "TICKETD_MAX_CONCURRENT_REQUESTS", hide_env_values = true, value_name = "N")]
    pub max_concurrent_requests: Option<usize>,
    /// Connections served at once; more wait to be accepted.
    /// Default: 10000 (less if the open-file limit is lower)
    #[arg(long, env = "TICKETD_MAX_CONNECTIONS", hide_env_values = true, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Largest request line plus headers in bytes; larger is answered 431.
    /// Default: 16384
    #[arg(long, env = "TICKETD_MAX_HEADER_BYTES", hide_env_values = true, value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Seconds a client has to send a request's line and headers before
    /// its connection is closed. Default: 10
    #[arg(long, env = "TICKETD_HEADER_READ_TIMEOUT_SECS", hide_env_values = true, value_name = "SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a kept-alive connection may wait for its next request (or
    /// for the client to read a response) before it is closed. Default: 75
    #[arg(long, env = "TICKETD_IDLE_TIMEOUT_SECS", hide_env_values = true, value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// The idle timeout for a connection on which no request has been
    /// authenticated yet (at most --idle-timeout-secs). Default: 5
    #[arg(
        long,
        env = "TICKETD_UNAUTHENTICATED_IDLE_TIMEOUT_SECS",
        hide_env_values = true,
        value_name = "SECS"
    )]
    pub unauthenticated_idle_timeout_secs: Option<u64>,
    /// Connections open at once from one client address (IPv6: one /64);
    /// more are closed at once. 0 for no cap (behind a proxy).
    /// Default: 64, or a quarter of --max-connections if less
    #[arg(long, env = "TICKETD_MAX_CONNECTIONS_PER_ADDRESS", hide_env_values = true, value_name = "N")]
    pub max_connections_per_address: Option<usize>,
    /// Seconds a client has to send a request's body before it is answered
    /// with 408; at most --request-timeout-secs. Default: 10, or
    /// --request-timeout-secs if less
    #[arg(long, env = "TICKETD_BODY_READ_TIMEOUT_SECS", hide_env_values = true, value_name = "SECS")]
    pub body_read_timeout_secs: Option<u64>,
    /// Requests one API key may have in progress at once; more are answered
    /// with 429. Default: a sixteenth of --max-concurrent-requests (64), at
    /// least 1
    #[arg(
        long,
        env = "TICKETD_MAX_CONCURRENT_REQUESTS_PER_KEY",
        hide_env_values = true,
        value_name = "N"
    )]
    pub max_concurrent_requests_per_key: Option<usize>,
    /// Failed authentications per minute (and at once) per client address;
    /// more are answered with 429. 0 for no limit. Default: 60
    #[arg(long, env = "TICKETD_AUTH_FAILURE_LIMIT_PER_MINUTE", hide_env_values = true, value_name = "N")]
    pub auth_failure_limit_per_minute: Option<u32>,
    /// Longest ticket subject in characters, 1 to 200. Default: 200
    #[arg(long, env = "TICKETD_MAX_SUBJECT_CHARS", hide_env_values = true, value_name = "N")]
    pub max_subject_chars: Option<usize>,
    /// Longest message in characters, 1 to 25000. Default: 25000
    #[arg(long, env = "TICKETD_MAX_MESSAGE_CHARS", hide_env_values = true, value_name = "N")]
    pub max_message_chars: Option<usize>,
    /// Log format. Default: text
    #[arg(long, env = "TICKETD_LOG_FORMAT", hide_env_values = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// The key file of encrypted messages: the global
    /// `--encryption-key-file` flag of [`crate::cli::Cli`].
    #[arg(skip)]
    pub encryption_key_file: Option<String>,
    /// Seconds the response of a request with an Idempotency-Key is kept
    /// for its retries. Default: 86400 (a day)
    #[arg(long, env = "TICKETD_IDEMPOTENCY_TTL_SECS", hide_env_values = true, value_name = "SECS")]
    pub idempotency_ttl_secs: Option<u64>,
    /// Seconds an API key, once read from the database, is trusted without
    /// reading it again; a key revoked meanwhile works for up to this long.
    /// 0 reads the key on every request. Default: 2
    #[arg(long, env = "TICKETD_API_KEY_CACHE_SECS", hide_env_values = true, value_name = "SECS")]
    pub api_key_cache_secs: Option<u64>,
    /// MiB of rendered message HTML kept in memory, so that each message is
    /// rendered once rather than on every read; 0 renders on every read.
    /// Default: 16
    #[arg(long, env = "TICKETD_HTML_CACHE_MIB", hide_env_values = true, value_name = "MIB")]
    pub html_cache_mib: Option<u64>,
    /// Where the bytes of uploaded files are kept: `database` (PostgreSQL
    /// only: in its tables, shared by every node), `file://DIR`, a
    /// directory, or `s3://BUCKET[/PREFIX]`, objects in an S3-compatible
    /// bucket (endpoint, region and credentials from the standard `AWS_*`
    /// variables). Default: the database with PostgreSQL, the directory
    /// `blobs` beside a SQLite file
    #[arg(long, env = "TICKETD_BLOB_STORE", hide_env_values = true, value_name = "URL")]
    pub blob_store: Option<String>,
    /// Largest uploaded file in bytes, at most 5 GiB. Default: 26214400
    /// (25 MiB)
    #[arg(long, env = "TICKETD_MAX_UPLOAD_BYTES", hide_env_values = true, value_name = "BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// Seconds an uploaded file waits to be attached to a message before it
    /// is deleted, 60 to 2592000 (30 days). Default: 86400 (a day)
    #[arg(long, env = "TICKETD_UPLOAD_TTL_SECS", hide_env_values = true, value_name = "SECS")]
    pub upload_ttl_secs: Option<u64>,
    /// Seconds a pre-signed upload URL works, 60 to 86400. Default: 900
    /// (15 minutes)
    #[arg(long, env = "TICKETD_UPLOAD_URL_TTL_SECS", hide_env_values = true, value_name = "SECS")]
    pub upload_url_ttl_secs: Option<u64>,
    /// The media types uploads may be of, comma-separated, from image/png,
    /// image/jpeg, image/gif, image/webp, image/avif, application/pdf, application/zip,
    /// text/plain, text/x-log, text/csv and application/json. Default:
    /// all but text/csv and application/json
    #[arg(long, env = "TICKETD_UPLOAD_MEDIA_TYPES", hide_env_values = true, value_name = "TYPES")]
    pub upload_media_types: Option<String>,
    /// Files one message may carry, 1 to 100. Default: 10
    #[arg(long, env = "TICKETD_MAX_ATTACHMENTS_PER_MESSAGE", hide_env_values = true, value_name = "N")]
    pub max_attachments_per_message: Option<usize>,
    /// Bytes the files of one ticket may hold together. Default: 1073741824
    /// (1 GiB)
    #[arg(long, env = "TICKETD_MAX_TICKET_ATTACHMENT_BYTES", hide_env_values = true, value_name = "BYTES")]
    pub max_ticket_attachment_bytes: Option<u64>,
    /// The compatibility profiles to serve beside the canonical API,
    /// comma-separated (in TOML, a list): teambattles, agency, projects.
    /// Empty serves none.
    /// Default: all of them
    #[arg(
        long,
        env = "TICKETD_PROFILES",
        hide_env_values = true,
        value_name = "NAMES",
        value_delimiter = ','
    )]
    pub profiles: Option<Vec<String>>,
    /// This node's name in the idempotency claims it holds, the same
    /// across its restarts: a node that restarts releases at once the
    /// claims it held before. Default: the host name and --listen
    #[arg(long, env = "TICKETD_NODE_ID", hide_env_values = true, value_name = "NAME")]
    pub node_id: Option<String>,
    /// Serves Prometheus metrics at GET /metrics on the API listener, to
    /// requests with `Authorization: Bearer` and this token (16 to 256
    /// visible ASCII characters). Default: not served there
    #[arg(long, env = "TICKETD_METRICS_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub metrics_token: Option<String>,
    /// Serves Prometheus metrics at GET /metrics on a listener of their
    /// own, without a token: ADDR, or a PORT on 127.0.0.1. Default: none
    #[arg(long, env = "TICKETD_METRICS_LISTEN", hide_env_values = true, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}
}

impl Settings {
    /// Reads a TOML file; a missing file is empty settings only when
    /// `required` is false.
    ///
    /// # Errors
    /// The file cannot be read, or is not valid TOML of these keys.
    pub fn from_file(path: &Path, required: bool) -> Result<Self, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default());
            }
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        };
        toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))
    }
}

/// Each setting's default and validation, in the order of
/// [`Config::from_settings`]; a setting whose default or bound depends on
/// another takes that one's validated value. Messages name settings by
/// their TOML keys.
impl Settings {
    /// `database`: SQLite in `ticketd-data/` unless set.
    fn database_url(&self) -> Result<DatabaseUrl, String> {
        match self.database.as_deref() {
            Some(url) => DatabaseUrl::parse(url).map_err(|error| format!("database: {error}")),
            None => Ok(DatabaseUrl::default_sqlite()),
        }
    }

    /// `database_pool_size` and `database_pool_timeout_ms`, each at least 1;
    /// set with a SQLite `database`, which has no pool, they are an error.
    fn database_pool(&self, database: &DatabaseUrl) -> Result<PoolOptions, String> {
        let defaults = PoolOptions::default();
        if let DatabaseUrl::Sqlite(_) = database {
            let set = [
                ("database_pool_size", self.database_pool_size.is_some()),
                (
                    "database_pool_timeout_ms",
                    self.database_pool_timeout_ms.is_some(),
                ),
            ];
            if let Some((name, _)) = set.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "{name} is set, but it applies only to a PostgreSQL database and the \
                     database is SQLite ({}): remove it, or set database to a postgres:// URL",
                    database.redacted()
                ));
            }
        }
        let max_connections = self.database_pool_size.unwrap_or(defaults.max_connections);
        if max_connections == 0 {
            return Err("database_pool_size must be at least 1".into());
        }
        let acquire_timeout = self
            .database_pool_timeout_ms
            .map_or(defaults.acquire_timeout, Duration::from_millis);
        if acquire_timeout.is_zero() {
            return Err("database_pool_timeout_ms must be at least 1".into());
        }
        Ok(PoolOptions {
            max_connections,
            acquire_timeout,
        })
    }

    /// `listen`: a socket address.
    fn listen_address(&self) -> Result<SocketAddr, String> {
        let text = self.listen.as_deref().unwrap_or(Config::DEFAULT_LISTEN);
        text.parse()
            .map_err(|_| format!("listen: {text:?} is not an address like 127.0.0.1:8080"))
    }

    /// `public_url`: an http(s) URL, without trailing slashes.
    fn public_base_url(&self) -> Result<Option<String>, String> {
        let Some(url) = &self.public_url else {
            return Ok(None);
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "public_url: {url:?} must start with http:// or https://"
            ));
        }
        // Problem documents' `type` URIs start with it, and their bound
        // (`MAX_PROBLEM_BYTES`) counts on this.
        let url = url.trim_end_matches('/');
        if url.len() > Config::MAX_PUBLIC_URL_BYTES {
            return Err(format!(
                "public_url must be at most {} bytes (it has {})",
                Config::MAX_PUBLIC_URL_BYTES,
                url.len()
            ));
        }
        Ok(Some(url.to_owned()))
    }

    /// `rate_limit_per_minute` and `rate_limit_burst` (by default the
    /// per-minute rate), each at least 1.
    fn rate_policy(&self) -> Result<RatePolicy, String> {
        let per_minute = self
            .rate_limit_per_minute
            .unwrap_or(RatePolicy::DEFAULT.per_minute);
        let burst = self.rate_limit_burst.unwrap_or(per_minute);
        if per_minute == 0 || burst == 0 {
            return Err("rate_limit_per_minute and rate_limit_burst must be at least 1".into());
        }
        Ok(RatePolicy { per_minute, burst })
    }

    /// `rate_limit_url` and `rate_limit_key_prefix`: in memory unless the
    /// URL names a Redis server (`memory` says so explicitly, to override a
    /// file's URL).
    fn rate_limit_store(&self, policy: RatePolicy) -> Result<RateLimitStore, String> {
        let url = match self.rate_limit_url.as_deref().map(str::trim) {
            None if self.rate_limit_key_prefix.is_some() => {
                return Err(
                    "rate_limit_key_prefix is set, but it applies only to a Redis \
                            rate_limit_url, and there is none: remove it, or set \
                            rate_limit_url to a redis:// URL"
                        .into(),
                );
            }
            // An explicit `memory` (a later layer turning a file's Redis
            // limiter off) leaves the file's prefix behind: a warning.
            None | Some("memory") => return Ok(RateLimitStore::Memory),
            Some(url) => {
                RedisUrl::parse(url).map_err(|error| format!("rate_limit_url: {error}"))?
            }
        };
        check_policy(policy).map_err(|error| format!("rate_limit_burst: {error}"))?;
        let key_prefix = self
            .rate_limit_key_prefix
            .clone()
            .unwrap_or_else(|| RedisRateLimiter::DEFAULT_KEY_PREFIX.to_owned());
        if key_prefix.is_empty()
            || key_prefix.len() > 100
            || key_prefix
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(
                "rate_limit_key_prefix must be 1 to 100 bytes without spaces or control characters"
                    .into(),
            );
        }
        Ok(RateLimitStore::Redis { url, key_prefix })
    }

    /// `request_timeout_secs`: 30 unless set, at least 1.
    fn request_timeout(&self) -> Result<u64, String> {
        let timeout = self.request_timeout_secs.unwrap_or(30);
        if timeout == 0 {
            return Err("request_timeout_secs must be at least 1".into());
        }
        Ok(timeout)
    }

    /// `max_body_bytes`: 1 MiB unless set, at least 1024.
    fn body_limit(&self) -> Result<usize, String> {
        let max_body_bytes = self.max_body_bytes.unwrap_or(1024 * 1024);
        if max_body_bytes < 1024 {
            return Err("max_body_bytes must be at least 1024".into());
        }
        Ok(max_body_bytes)
    }

    /// `max_concurrent_requests`: 1024 unless set, at least 1.
    fn concurrency(&self) -> Result<usize, String> {
        let max_concurrent_requests = self.max_concurrent_requests.unwrap_or(1024);
        if max_concurrent_requests == 0 {
            return Err("max_concurrent_requests must be at least 1".into());
        }
        Ok(max_concurrent_requests)
    }

    /// `max_buffered_body_bytes`: at least `max_body_bytes`.
    fn body_budget(
        &self,
        max_concurrent_requests: usize,
        max_body_bytes: usize,
    ) -> Result<usize, String> {
        // As much as the requests handled at once can hold: the bound
        // before bodies were read ahead of their turn.
        let max_buffered_body_bytes = self
            .max_buffered_body_bytes
            .unwrap_or(max_concurrent_requests.saturating_mul(max_body_bytes));
        if max_buffered_body_bytes < max_body_bytes {
            return Err(format!(
                "max_buffered_body_bytes ({max_buffered_body_bytes}) must be at least \
                 max_body_bytes ({max_body_bytes})"
            ));
        }
        Ok(max_buffered_body_bytes)
    }

    /// `max_concurrent_requests_per_key`: see
    /// [`Config::default_max_concurrent_requests_per_key`]; at least 1.
    fn concurrency_per_key(&self, max_concurrent_requests: usize) -> Result<usize, String> {
        let per_key = self.max_concurrent_requests_per_key.unwrap_or_else(|| {
            Config::default_max_concurrent_requests_per_key(max_concurrent_requests)
        });
        if per_key == 0 {
            return Err("max_concurrent_requests_per_key must be at least 1".into());
        }
        Ok(per_key)
    }

    /// `body_read_timeout_secs`: within the request timeout `timeout`, since
    /// a body still arriving when the request times out is answered 503
    /// request_timeout, not the 408 the body deadline promises.
    fn body_read_timeout(&self, timeout: u64) -> Result<u64, String> {
        let body_read_timeout = self
            .body_read_timeout_secs
            .unwrap_or(Config::DEFAULT_BODY_READ_TIMEOUT_SECS.min(timeout));
        if !(1..=ConnectionLimits::MAX_TIMEOUT_SECS).contains(&body_read_timeout) {
            return Err(format!(
                "body_read_timeout_secs must be between 1 and {}",
                ConnectionLimits::MAX_TIMEOUT_SECS
            ));
        }
        if body_read_timeout > timeout {
            return Err(format!(
                "body_read_timeout_secs ({body_read_timeout}) must be at most \
                 request_timeout_secs ({timeout}), or a slow body would be answered 503 \
                 request_timeout rather than 408 request_body_timeout"
            ));
        }
        Ok(body_read_timeout)
    }

    /// `auth_failure_limit_per_minute`: 0 for none; in Redis, within what
    /// its buckets can hold.
    fn auth_failure_limit(&self, store: &RateLimitStore) -> Result<Option<RatePolicy>, String> {
        let limit = match self
            .auth_failure_limit_per_minute
            .unwrap_or(Config::DEFAULT_AUTH_FAILURE_LIMIT_PER_MINUTE)
        {
            0 => None,
            per_minute => Some(RatePolicy {
                per_minute,
                burst: per_minute,
            }),
        };
        if let (Some(policy), RateLimitStore::Redis { .. }) = (limit, store) {
            check_policy(policy)
                .map_err(|error| format!("auth_failure_limit_per_minute: {error}"))?;
        }
        Ok(limit)
    }

    /// The listener's limits (`max_connections`, `max_header_bytes`,
    /// `header_read_timeout_secs`, `idle_timeout_secs`,
    /// `unauthenticated_idle_timeout_secs`, `max_connections_per_address`),
    /// each within a range that keeps the server usable and protected.
    fn connection_limits(&self) -> Result<ConnectionLimits, String> {
        let defaults = ConnectionLimits::default();
        let max_connections = self
            .max_connections
            .unwrap_or_else(|| server::default_max_connections(server::open_file_limit()));
        if !(1..=ConnectionLimits::MAX_CONNECTIONS).contains(&max_connections) {
            return Err(format!(
                "max_connections must be between 1 and {}",
                ConnectionLimits::MAX_CONNECTIONS
            ));
        }
        let max_header_bytes = self.max_header_bytes.unwrap_or(defaults.max_header_bytes);
        let header_range = ConnectionLimits::MIN_HEADER_BYTES..=ConnectionLimits::MAX_HEADER_BYTES;
        if !header_range.contains(&max_header_bytes) {
            return Err(format!(
                "max_header_bytes must be between {} and {}",
                header_range.start(),
                header_range.end()
            ));
        }
        let seconds = |value: Option<u64>, default: Duration, name: &str| {
            let secs = value.unwrap_or(default.as_secs());
            if (1..=ConnectionLimits::MAX_TIMEOUT_SECS).contains(&secs) {
                Ok(Duration::from_secs(secs))
            } else {
                Err(format!(
                    "{name} must be between 1 and {}",
                    ConnectionLimits::MAX_TIMEOUT_SECS
                ))
            }
        };
        let idle_timeout = seconds(
            self.idle_timeout_secs,
            defaults.idle_timeout,
            "idle_timeout_secs",
        )?;
        let unauthenticated_idle_timeout = match self.unauthenticated_idle_timeout_secs {
            None => defaults.unauthenticated_idle_timeout.min(idle_timeout),
            Some(secs) if (1..=idle_timeout.as_secs()).contains(&secs) => Duration::from_secs(secs),
            Some(_) => {
                return Err(format!(
                    "unauthenticated_idle_timeout_secs must be between 1 and idle_timeout_secs ({})",
                    idle_timeout.as_secs()
                ));
            }
        };
        let max_connections_per_address = self
            .max_connections_per_address
            .unwrap_or_else(|| server::default_max_connections_per_address(max_connections));
        if max_connections_per_address > ConnectionLimits::MAX_CONNECTIONS {
            return Err(format!(
                "max_connections_per_address must be between 0 (no cap) and {}",
                ConnectionLimits::MAX_CONNECTIONS
            ));
        }
        Ok(ConnectionLimits {
            max_connections,
            max_header_bytes,
            header_read_timeout: seconds(
                self.header_read_timeout_secs,
                defaults.header_read_timeout,
                "header_read_timeout_secs",
            )?,
            idle_timeout,
            unauthenticated_idle_timeout,
            max_connections_per_address,
        })
    }

    /// `max_subject_chars` and `max_message_chars`: at most the published
    /// limits.
    fn text_limits(&self) -> Result<TextLimits, String> {
        TextLimits::new(
            self.max_subject_chars
                .unwrap_or(TextLimits::PUBLISHED.subject_chars()),
            self.max_message_chars
                .unwrap_or(TextLimits::PUBLISHED.message_chars()),
        )
        .map_err(|error| match error {
            TextLimitError::Subject => format!("max_subject_chars {error}"),
            TextLimitError::Message => format!("max_message_chars {error}"),
        })
    }

    /// `encryption_key_file`: by default beside the `database`.
    fn key_file(&self, database: &DatabaseUrl) -> Result<PathBuf, String> {
        match self.encryption_key_file.as_deref() {
            Some("") => Err("encryption_key_file must not be empty".into()),
            Some(path) => Ok(PathBuf::from(path)),
            None => Ok(crate::encryption::default_key_file(database)),
        }
    }

    /// `idempotency_ttl_secs`: a day unless set, at most 30 days and at
    /// least twice the request timeout `timeout`.
    fn idempotency_ttl(&self, timeout: u64) -> Result<u64, String> {
        let ttl = self
            .idempotency_ttl_secs
            .unwrap_or(Config::DEFAULT_IDEMPOTENCY_TTL_SECS);
        if !(1..=Config::MAX_IDEMPOTENCY_TTL_SECS).contains(&ttl) {
            return Err(format!(
                "idempotency_ttl_secs must be between 1 and {} (30 days)",
                Config::MAX_IDEMPOTENCY_TTL_SECS
            ));
        }
        // A record must outlive the request that claimed it: one that expired
        // while its request still ran could be taken over and written twice.
        if ttl < 2 * timeout {
            return Err(format!(
                "idempotency_ttl_secs ({ttl}) must be at least twice \
                 request_timeout_secs ({timeout})"
            ));
        }
        Ok(ttl)
    }

    /// `api_key_cache_secs`: at most a minute.
    fn api_key_cache(&self) -> Result<u64, String> {
        let secs = self
            .api_key_cache_secs
            .unwrap_or(Config::DEFAULT_API_KEY_CACHE_SECS);
        if secs > Config::MAX_API_KEY_CACHE_SECS {
            return Err(format!(
                "api_key_cache_secs must be at most {}",
                Config::MAX_API_KEY_CACHE_SECS
            ));
        }
        Ok(secs)
    }

    /// `blob_store`: where upload bytes go; by default beside the data.
    fn blob_store(&self, database: &DatabaseUrl) -> Result<BlobLocation, String> {
        match self.blob_store.as_deref() {
            None => Ok(BlobLocation::default_for(database)),
            Some(text) => BlobLocation::parse(text, database),
        }
    }

    /// `max_upload_bytes`: 25 MiB unless set, 1 byte to 5 GiB.
    fn max_upload_bytes(&self) -> Result<u64, String> {
        let bytes = self
            .max_upload_bytes
            .unwrap_or(Config::DEFAULT_MAX_UPLOAD_BYTES);
        if !(1..=Config::MAX_MAX_UPLOAD_BYTES).contains(&bytes) {
            return Err(format!(
                "max_upload_bytes must be between 1 and {}",
                Config::MAX_MAX_UPLOAD_BYTES
            ));
        }
        Ok(bytes)
    }

    /// `upload_media_types`: the default allow-list unless set; each name
    /// one ticketd recognises.
    fn upload_media(&self) -> Result<MediaCheck, String> {
        let Some(list) = self.upload_media_types.as_deref() else {
            return Ok(MediaCheck::default());
        };
        let mut allowed = Vec::new();
        for name in list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            let known = KnownType::parse(name)
                .filter(|known| known.as_str() == name.to_ascii_lowercase())
                .ok_or_else(|| {
                    let names: Vec<&str> = KnownType::ALL.iter().map(|k| k.as_str()).collect();
                    format!(
                        "upload_media_types: {name:?} is not one of {}",
                        names.join(", ")
                    )
                })?;
            if !allowed.contains(&known) {
                allowed.push(known);
            }
        }
        if allowed.is_empty() {
            return Err("upload_media_types must name at least one media type".into());
        }
        Ok(MediaCheck::new(allowed))
    }

    /// `profiles`: every profile unless set; each name one ticketd serves,
    /// once.
    fn profiles(&self) -> Result<Vec<Profile>, String> {
        let Some(names) = &self.profiles else {
            return Ok(Profile::ALL.to_vec());
        };
        let mut profiles = Vec::new();
        for name in names
            .iter()
            .map(|name| name.trim())
            .filter(|name| !name.is_empty())
        {
            let profile = Profile::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Profile::ALL.iter().map(|profile| profile.name()).collect();
                format!("profiles: {name:?} is not one of {}", known.join(", "))
            })?;
            if !profiles.contains(&profile) {
                profiles.push(profile);
            }
        }
        Ok(profiles)
    }

    /// `max_attachments_per_message` and `max_ticket_attachment_bytes`.
    fn attach_limits(&self) -> Result<AttachLimits, String> {
        let defaults = AttachLimits::default();
        let per_message = self
            .max_attachments_per_message
            .unwrap_or(defaults.per_message);
        if !(1..=Config::MAX_ATTACHMENTS_PER_MESSAGE).contains(&per_message) {
            return Err(format!(
                "max_attachments_per_message must be between 1 and {}",
                Config::MAX_ATTACHMENTS_PER_MESSAGE
            ));
        }
        let per_ticket_bytes = self
            .max_ticket_attachment_bytes
            .unwrap_or(defaults.per_ticket_bytes);
        if per_ticket_bytes == 0 || per_ticket_bytes > i64::MAX as u64 {
            return Err(format!(
                "max_ticket_attachment_bytes must be between 1 and {}",
                i64::MAX
            ));
        }
        Ok(AttachLimits {
            per_message,
            per_ticket_bytes,
        })
    }

    /// `upload_url_ttl_secs`: 15 minutes unless set, a minute to a day.
    fn upload_url_ttl(&self) -> Result<u64, String> {
        let ttl = self.upload_url_ttl_secs.unwrap_or(900);
        if !(60..=86_400).contains(&ttl) {
            return Err("upload_url_ttl_secs must be between 60 and 86400".into());
        }
        Ok(ttl)
    }

    /// `upload_ttl_secs`: a day unless set, a minute to 30 days.
    fn upload_ttl(&self) -> Result<u64, String> {
        let ttl = self
            .upload_ttl_secs
            .unwrap_or(Config::DEFAULT_UPLOAD_TTL_SECS);
        if !(60..=Config::MAX_UPLOAD_TTL_SECS).contains(&ttl) {
            return Err(format!(
                "upload_ttl_secs must be between 60 and {}",
                Config::MAX_UPLOAD_TTL_SECS
            ));
        }
        Ok(ttl)
    }

    /// `node_id`: by default the host name and the listening address; 1 to
    /// 200 bytes without control characters.
    fn node_id(&self, listen: SocketAddr) -> Result<String, String> {
        let node = match &self.node_id {
            Some(node) => node.clone(),
            None => format!("{}/{listen}", host_name()),
        };
        if node.is_empty() || node.len() > 200 || node.chars().any(char::is_control) {
            return Err("node_id must be 1 to 200 bytes without control characters".into());
        }
        Ok(node)
    }

    /// `metrics_token`: 16 to 256 visible ASCII characters.
    fn metrics_token(&self) -> Result<Option<String>, String> {
        let Some(token) = &self.metrics_token else {
            return Ok(None);
        };
        if !(16..=256).contains(&token.len()) || !token.bytes().all(|byte| byte.is_ascii_graphic())
        {
            return Err(
                "metrics_token must be 16 to 256 visible ASCII characters (no spaces)".into(),
            );
        }
        Ok(Some(token.clone()))
    }

    /// `metrics_listen`: an address, or a port on loopback.
    fn metrics_listen(&self) -> Result<Option<SocketAddr>, String> {
        let Some(text) = self.metrics_listen.as_deref().map(str::trim) else {
            return Ok(None);
        };
        if let Ok(port) = text.parse::<u16>() {
            return Ok(Some(SocketAddr::from(([127, 0, 0, 1], port))));
        }
        text.parse().map(Some).map_err(|_| {
            format!("metrics_listen: {text:?} is not an address like 127.0.0.1:9090, or a port")
        })
    }

    /// `html_cache_mib`, in bytes: at most 4 GiB.
    fn html_cache_bytes(&self) -> Result<usize, String> {
        let mib = self
            .html_cache_mib
            .unwrap_or(Config::DEFAULT_HTML_CACHE_MIB);
        if mib > Config::MAX_HTML_CACHE_MIB {
            return Err(format!(
                "html_cache_mib must be at most {}",
                Config::MAX_HTML_CACHE_MIB
            ));
        }
        // At most 4 GiB, so the product fits a usize on 64-bit targets
        // and saturates on smaller ones.
        Ok(usize::try_from(mib << 20).unwrap_or(usize::MAX))
    }
}

impl Config {
    /// The settings that give this configuration, each as its value is or
    /// (unset) its default made it; `None` for a setting that does not
    /// apply (the pool's with SQLite, the key prefix without Redis) or
    /// whose default is derived at run time (`public_url`). Secrets are
    /// kept: [`Config::from_settings`] of the result is this configuration.
    pub fn effective_settings(&self) -> Settings {
        let postgres = matches!(self.database, DatabaseUrl::Postgres(_));
        let (rate_limit_url, rate_limit_key_prefix) = match &self.rate_limit_store {
            RateLimitStore::Memory => ("memory".to_owned(), None),
            RateLimitStore::Redis { url, key_prefix } => {
                (url.as_given().to_owned(), Some(key_prefix.clone()))
            }
        };
        let limits = &self.connections;
        Settings {
            database: Some(self.database.as_given()),
            database_pool_size: postgres.then_some(self.database_pool.max_connections),
            database_pool_timeout_ms: postgres.then(|| {
                u64::try_from(self.database_pool.acquire_timeout.as_millis()).unwrap_or(u64::MAX)
            }),
            listen: Some(self.listen.to_string()),
            public_url: self.public_url.clone(),
            rate_limit_per_minute: Some(self.rate_limit.per_minute),
            rate_limit_burst: Some(self.rate_limit.burst),
            rate_limit_url: Some(rate_limit_url),
            rate_limit_key_prefix,
            request_timeout_secs: Some(self.request_timeout.as_secs()),
            max_body_bytes: Some(self.max_body_bytes),
            max_buffered_body_bytes: Some(self.max_buffered_body_bytes),
            max_concurrent_requests: Some(self.max_concurrent_requests),
            max_connections: Some(limits.max_connections),
            max_header_bytes: Some(limits.max_header_bytes),
            header_read_timeout_secs: Some(limits.header_read_timeout.as_secs()),
            idle_timeout_secs: Some(limits.idle_timeout.as_secs()),
            unauthenticated_idle_timeout_secs: Some(limits.unauthenticated_idle_timeout.as_secs()),
            max_connections_per_address: Some(limits.max_connections_per_address),
            body_read_timeout_secs: Some(self.body_read_timeout.as_secs()),
            max_concurrent_requests_per_key: Some(self.max_concurrent_requests_per_key),
            auth_failure_limit_per_minute: Some(
                self.auth_failure_limit
                    .map_or(0, |policy| policy.per_minute),
            ),
            max_subject_chars: Some(self.text_limits.subject_chars()),
            max_message_chars: Some(self.text_limits.message_chars()),
            log_format: Some(self.log_format),
            encryption_key_file: Some(self.encryption_key_file.display().to_string()),
            idempotency_ttl_secs: Some(self.idempotency_ttl.as_secs()),
            api_key_cache_secs: Some(self.api_key_cache.as_secs()),
            html_cache_mib: Some(self.html_cache_bytes as u64 >> 20),
            blob_store: Some(self.blob_store.as_setting()),
            max_upload_bytes: Some(self.max_upload_bytes),
            upload_ttl_secs: Some(self.upload_ttl.as_secs()),
            upload_url_ttl_secs: Some(self.upload_url_ttl.as_secs()),
            upload_media_types: Some(
                self.upload_media
                    .allowed()
                    .iter()
                    .map(|known| known.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            max_attachments_per_message: Some(self.attach_limits.per_message),
            max_ticket_attachment_bytes: Some(self.attach_limits.per_ticket_bytes),
            profiles: Some(
                self.profiles
                    .iter()
                    .map(|profile| profile.name().to_owned())
                    .collect(),
            ),
            node_id: Some(self.node_id.clone()),
            metrics_token: self.metrics_token.clone(),
            metrics_listen: self.metrics_listen.map(|address| address.to_string()),
        }
    }
}

impl Settings {
    /// What is set but has no effect, for a warning at startup: today only
    /// a `rate_limit_key_prefix` beside `rate_limit_url = "memory"` (the
    /// other such pairs are errors, see [`Config::from_settings`]).
    fn unused(&self) -> Vec<String> {
        let mut unused = Vec::new();
        if self.rate_limit_key_prefix.is_some()
            && self.rate_limit_url.as_deref().map(str::trim) == Some("memory")
        {
            unused.push(
                "rate_limit_key_prefix has no effect: rate_limit_url is \"memory\", so the \
                 rate limiter keeps its state in this process"
                    .to_owned(),
            );
        }
        unused
    }
}

/// A secret as `Debug` shows it: whether it is set, never its value.
fn redact_secret(secret: &Option<String>) -> &'static str {
    if secret.is_some() {
        "Some(***)"
    } else {
        "None"
    }
}

/// The machine's host name, or `localhost` if it cannot be read.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| {
            let name = std::fs::read_to_string(path).ok()?;
            let name = name.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Declares a struct and a `Debug` that shows each field, in order, except
/// that a field marked `#[redact(f)]` (after its doc comment) is shown as
/// `f(&field)`: a value that may hold a secret says so where it is declared.
macro_rules! redacted_debug {
    (
        $(#[$outer:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $(#[redact($redact:path)])?
                pub $field:ident: $ty:ty,
            )*
        }
    ) => {
        $(#[$outer])*
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    $( .field(stringify!($field), &redacted_debug!(@show self.$field $(, $redact)?)) )*
                    .finish()
            }
        }
    };
    (@show $value:expr) => { $value };
    (@show $value:expr, $redact:path) => { $redact(&$value) };
}

redacted_debug! {
/// The validated configuration. Its `Debug` shows each field but those
/// marked `#[redact(...)]`, which it shows as that function makes them.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the data lives (its URL may carry a password).
    #[redact(DatabaseUrl::redacted)]
    pub database: DatabaseUrl,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Base URL clients reach the server at; `None` to derive it from the
    /// listening address.
    pub public_url: Option<String>,
    /// Per-key rate limit.
    pub rate_limit: RatePolicy,
    /// Where the rate limiter keeps its state.
    pub rate_limit_store: RateLimitStore,
    /// Failed authentications allowed per client address (one bucket per
    /// address, kept where the rate limiter keeps its state); `None` for
    /// no limit.
    pub auth_failure_limit: Option<RatePolicy>,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's body.
    pub body_read_timeout: Duration,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Bytes of request bodies held in memory at once (read, or waiting
    /// for a turn); at least `max_body_bytes`.
    pub max_buffered_body_bytes: usize,
    /// Requests handled concurrently.
    pub max_concurrent_requests: usize,
    /// Requests one API key may have in progress at once.
    pub max_concurrent_requests_per_key: usize,
    /// What the listener allows each connection, and how many at once.
    pub connections: ConnectionLimits,
    /// The longest subject and message accepted.
    pub text_limits: TextLimits,
    /// The connection pool, for a PostgreSQL database.
    pub database_pool: PoolOptions,
    /// Log format.
    pub log_format: LogFormat,
    /// The key file of encrypted messages (see [`crate::encryption`]).
    pub encryption_key_file: PathBuf,
    /// How long the response of a request with an `Idempotency-Key` is
    /// kept for its retries.
    pub idempotency_ttl: Duration,
    /// How long an API key's credentials are used after they were read:
    /// also how long a key revoked elsewhere may keep working here.
    pub api_key_cache: Duration,
    /// Bytes of rendered message HTML kept in memory, so that a message is
    /// rendered once rather than on every read (see
    /// [`crate::core::render::HtmlCache`]).
    pub html_cache_bytes: usize,
    /// Where the bytes of uploads are kept.
    pub blob_store: BlobLocation,
    /// The largest uploaded file, in bytes.
    pub max_upload_bytes: u64,
    /// How long an upload waits to be attached before it is deleted.
    pub upload_ttl: Duration,
    /// How long a pre-signed upload URL works.
    pub upload_url_ttl: Duration,
    /// The media types uploads may be of.
    pub upload_media: MediaCheck,
    /// Files per message, and bytes of files per ticket.
    pub attach_limits: AttachLimits,
    /// The compatibility profiles served beside the canonical API.
    pub profiles: Vec<Profile>,
    /// This node's name in the idempotency claims it holds.
    pub node_id: String,
    /// The token that lets a scrape read `/metrics` on the API listener;
    /// `None` to serve them there not at all.
    #[redact(redact_secret)]
    pub metrics_token: Option<String>,
    /// The address of a listener of its own for `/metrics`, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// Settings that are set but have no effect in this configuration,
    /// each said in a sentence; `serve` logs each as a warning at startup.
    pub unused_settings: Vec<String>,
}
}

impl Config {
    /// Whether metrics are recorded: served on the API listener or one of
    /// their own.
    pub fn metrics_enabled(&self) -> bool {
        self.metrics_token.is_some() || self.metrics_listen.is_some()
    }

    /// The default listening address.
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";

    /// The longest `public_url` accepted, in bytes (without trailing
    /// slashes): what [`crate::api::problem::MAX_PROBLEM_BYTES`] allows for.
    pub const MAX_PUBLIC_URL_BYTES: usize = 1024;

    /// How long idempotency records are kept unless configured: a day.
    pub const DEFAULT_IDEMPOTENCY_TTL_SECS: u64 = 86_400;

    /// The longest idempotency records may be kept: 30 days.
    pub const MAX_IDEMPOTENCY_TTL_SECS: u64 = 30 * 86_400;

    /// How long API key credentials are used once read, unless configured.
    pub const DEFAULT_API_KEY_CACHE_SECS: u64 = 2;

    /// The longest API key credentials may be used once read: a revoked
    /// key must stop working within a minute.
    pub const MAX_API_KEY_CACHE_SECS: u64 = 60;

    /// Default MiB of rendered HTML kept in memory.
    pub const DEFAULT_HTML_CACHE_MIB: u64 = 16;

    /// The largest `html_cache_mib` accepted.
    pub const MAX_HTML_CACHE_MIB: u64 = 4096;

    /// The largest uploaded file unless configured: 25 MiB.
    pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 25 * 1024 * 1024;

    /// The largest `max_upload_bytes` accepted: 5 GiB.
    pub const MAX_MAX_UPLOAD_BYTES: u64 = 5 * 1024 * 1024 * 1024;

    /// How long an upload waits to be attached unless configured: a day.
    pub const DEFAULT_UPLOAD_TTL_SECS: u64 = 86_400;

    /// The longest `upload_ttl_secs` accepted: 30 days.
    pub const MAX_UPLOAD_TTL_SECS: u64 = 30 * 86_400;

    /// The largest `max_attachments_per_message` accepted.
    pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 100;

    /// Seconds a client has to send a request body, unless configured (or
    /// `request_timeout_secs` if that is less).
    pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u64 = 10;

    /// Requests one API key may have in progress at once, unless
    /// configured, on a node handling `max_concurrent_requests` at once: a
    /// sixteenth of them (64 of the default 1,024), at least one, so that a
    /// single key cannot occupy the node.
    pub fn default_max_concurrent_requests_per_key(max_concurrent_requests: usize) -> usize {
        (max_concurrent_requests / 16).max(1)
    }

    /// Failed authentications per minute per client address, unless
    /// configured (also the burst).
    pub const DEFAULT_AUTH_FAILURE_LIMIT_PER_MINUTE: u32 = 60;

    /// Validates settings, filling in defaults (each setting's own are in
    /// the `impl Settings` beside its declaration).
    ///
    /// A setting that cannot have an effect with the others is an error
    /// (`database_pool_size` and `database_pool_timeout_ms` with a SQLite
    /// database, `rate_limit_key_prefix` without a `rate_limit_url`), or,
    /// where a later layer turned the feature off, a warning in
    /// `unused_settings` (`rate_limit_key_prefix` with `rate_limit_url =
    /// "memory"`).
    ///
    /// # Errors
    /// One readable message naming the first invalid setting.
    pub fn from_settings(settings: Settings) -> Result<Self, String> {
        let database = settings.database_url()?;
        let database_pool = settings.database_pool(&database)?;
        let listen = settings.listen_address()?;
        let public_url = settings.public_base_url()?;
        let rate_limit = settings.rate_policy()?;
        let rate_limit_store = settings.rate_limit_store(rate_limit)?;
        let timeout = settings.request_timeout()?;
        let max_body_bytes = settings.body_limit()?;
        let max_concurrent_requests = settings.concurrency()?;
        let max_buffered_body_bytes =
            settings.body_budget(max_concurrent_requests, max_body_bytes)?;
        let max_concurrent_requests_per_key =
            settings.concurrency_per_key(max_concurrent_requests)?;
        let body_read_timeout = settings.body_read_timeout(timeout)?;
        let auth_failure_limit = settings.auth_failure_limit(&rate_limit_store)?;
        let connections = settings.connection_limits()?;
        let text_limits = settings.text_limits()?;
        let encryption_key_file = settings.key_file(&database)?;
        let idempotency_ttl = settings.idempotency_ttl(timeout)?;
        let api_key_cache = settings.api_key_cache()?;
        let html_cache_bytes = settings.html_cache_bytes()?;
        let blob_store = settings.blob_store(&database)?;
        let max_upload_bytes = settings.max_upload_bytes()?;
        let upload_ttl = settings.upload_ttl()?;
        let upload_url_ttl = settings.upload_url_ttl()?;
        let upload_media = settings.upload_media()?;
        let attach_limits = settings.attach_limits()?;
        let profiles = settings.profiles()?;
        let node_id = settings.node_id(listen)?;
        let metrics_token = settings.metrics_token()?;
        let metrics_listen = settings.metrics_listen()?;
        if metrics_listen == Some(listen) {
            return Err(format!(
                "metrics_listen ({listen}) must differ from listen; to serve /metrics on the \
                 API listener, set metrics_token instead"
            ));
        }
        let unused_settings = settings.unused();
        Ok(Self {
            database,
            listen,
            public_url,
            rate_limit,
            rate_limit_store,
            auth_failure_limit,
            request_timeout: Duration::from_secs(timeout),
            body_read_timeout: Duration::from_secs(body_read_timeout),
            max_body_bytes,
            max_buffered_body_bytes,
            max_concurrent_requests,
            max_concurrent_requests_per_key,
            connections,
            text_limits,
            database_pool,
            log_format: settings.log_format.unwrap_or_default(),
            encryption_key_file,
            idempotency_ttl: Duration::from_secs(idempotency_ttl),
            api_key_cache: Duration::from_secs(api_key_cache),
            html_cache_bytes,
            blob_store,
            max_upload_bytes,
            upload_ttl: Duration::from_secs(upload_ttl),
            upload_url_ttl: Duration::from_secs(upload_url_ttl),
            upload_media,
            attach_limits,
            profiles,
            node_id,
            metrics_token,
            metrics_listen,
            unused_settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_just_work() {
        let config = Config::from_settings(Settings::default()).expect("defaults are valid");
        assert_eq!(config.database, DatabaseUrl::default_sqlite());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.rate_limit,
            RatePolicy {
                per_minute: 600,
                burst: 600
            }
        );
        assert_eq!(config.public_url, None);
        assert_eq!(config.text_limits, TextLimits::PUBLISHED);
        assert_eq!(config.connections.max_header_bytes, 16 * 1024);
        assert_eq!(
            config.connections.header_read_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(config.connections.idle_timeout, Duration::from_secs(75));
        assert_eq!(
            config.connections.max_connections,
            server::default_max_connections(server::open_file_limit())
        );
        assert_eq!(
            config.encryption_key_file,
            PathBuf::from("ticketd-data/encryption.key")
        );
        assert_eq!(config.idempotency_ttl, Duration::from_secs(86_400));
        assert_eq!(config.api_key_cache, Duration::from_secs(2));
        assert_eq!(
            config.connections.unauthenticated_idle_timeout,
            Duration::from_secs(5)
        );
        assert_eq!(
            config.connections.max_connections_per_address,
            server::default_max_connections_per_address(config.connections.max_connections)
        );
        assert_eq!(config.body_read_timeout, Duration::from_secs(10));
        assert_eq!(config.max_concurrent_requests_per_key, 64);
        assert_eq!(
            config.auth_failure_limit,
            Some(RatePolicy {
                per_minute: 60,
                burst: 60
            })
        );
    }

    #[test]
    fn the_hostile_client_limits_are_configurable_and_validated() {
        let file: Settings = toml::from_str(
            "max_connections = 1000\nmax_connections_per_address = 10\n\
             unauthenticated_idle_timeout_secs = 2\nbody_read_timeout_secs = 20\n\
             max_concurrent_requests_per_key = 8\nauth_failure_limit_per_minute = 30",
        )
        .expect("valid TOML");
        let flags = Settings {
            max_connections_per_address: Some(0),
            auth_failure_limit_per_minute: Some(0),
            ..Settings::default()
        };
        let config = Config::from_settings(file.clone()).expect("valid");
        assert_eq!(config.connections.max_connections_per_address, 10);
        assert_eq!(
            config.connections.unauthenticated_idle_timeout,
            Duration::from_secs(2)
        );
        assert_eq!(config.body_read_timeout, Duration::from_secs(20));
        assert_eq!(config.max_concurrent_requests_per_key, 8);
        assert_eq!(
            config.auth_failure_limit,
            Some(RatePolicy {
                per_minute: 30,
                burst: 30
            })
        );
        let off = Config::from_settings(file.overridden_by(flags)).expect("valid");
        assert_eq!(
            off.connections.max_connections_per_address, 0,
            "0 is no cap"
        );
        assert_eq!(off.auth_failure_limit, None, "0 is no limit");
        // The default per-address cap follows a lowered max_connections.
        let small = Config::from_settings(Settings {
            max_connections: Some(20),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(small.connections.max_connections_per_address, 5);

        let bad = |settings: Settings| Config::from_settings(settings).err().unwrap_or_default();
        for (settings, message) in [
            (
                Settings {
                    unauthenticated_idle_timeout_secs: Some(0),
                    ..Settings::default()
                },
                "unauthenticated_idle_timeout_secs must be between 1 and idle_timeout_secs (75)",
            ),
            (
                Settings {
                    idle_timeout_secs: Some(30),
                    unauthenticated_idle_timeout_secs: Some(31),
                    ..Settings::default()
                },
                "unauthenticated_idle_timeout_secs must be between 1 and idle_timeout_secs (30)",
            ),
            (
                Settings {
                    max_connections_per_address: Some(1_000_001),
                    ..Settings::default()
                },
                "max_connections_per_address must be between 0 (no cap) and 1000000",
            ),
            (
                Settings {
                    body_read_timeout_secs: Some(0),
                    ..Settings::default()
                },
                "body_read_timeout_secs must be between 1 and 3600",
            ),
            (
                Settings {
                    max_concurrent_requests_per_key: Some(0),
                    ..Settings::default()
                },
                "max_concurrent_requests_per_key must be at least 1",
            ),
        ] {
            assert_eq!(bad(settings), message);
        }
    }

    #[test]
    fn the_public_url_takes_at_most_1_kib() {
        let url = |length: usize| format!("https://{}", "a".repeat(length - "https://".len()));
        let longest = Config::from_settings(Settings {
            public_url: Some(format!("{}/", url(1024))),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(longest.public_url, Some(url(1024)));
        assert_eq!(
            Config::from_settings(Settings {
                public_url: Some(url(1025)),
                ..Settings::default()
            })
            .err()
            .unwrap_or_default(),
            "public_url must be at most 1024 bytes (it has 1025)"
        );
    }

    #[test]
    fn the_per_key_cap_defaults_to_a_sixteenth_of_the_requests_handled_at_once() {
        let per_key = |max_concurrent_requests: Option<usize>| {
            Config::from_settings(Settings {
                max_concurrent_requests,
                ..Settings::default()
            })
            .expect("valid")
            .max_concurrent_requests_per_key
        };
        assert_eq!(per_key(None), 64);
        assert_eq!(per_key(Some(4096)), 256);
        assert_eq!(per_key(Some(100)), 6);
        assert_eq!(per_key(Some(15)), 1, "at least one");
        assert_eq!(per_key(Some(1)), 1);
        let set = Config::from_settings(Settings {
            max_concurrent_requests: Some(4096),
            max_concurrent_requests_per_key: Some(8),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(set.max_concurrent_requests_per_key, 8, "a setting wins");
    }

    #[test]
    fn the_body_deadline_falls_within_the_request_timeout() {
        let short = Config::from_settings(Settings {
            request_timeout_secs: Some(5),
            idempotency_ttl_secs: Some(3600),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(short.body_read_timeout, Duration::from_secs(5), "derived");
        let equal = Config::from_settings(Settings {
            request_timeout_secs: Some(20),
            body_read_timeout_secs: Some(20),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(equal.body_read_timeout, Duration::from_secs(20));
        assert_eq!(
            Config::from_settings(Settings {
                request_timeout_secs: Some(20),
                body_read_timeout_secs: Some(21),
                ..Settings::default()
            })
            .err()
            .unwrap_or_default(),
            "body_read_timeout_secs (21) must be at most request_timeout_secs (20), or a slow \
             body would be answered 503 request_timeout rather than 408 request_body_timeout"
        );
    }

    #[test]
    fn the_body_budget_defaults_to_what_the_requests_handled_at_once_hold() {
        let default = Config::from_settings(Settings::default()).expect("valid");
        assert_eq!(default.max_buffered_body_bytes, 1 << 30);
        let derived = Config::from_settings(Settings {
            max_concurrent_requests: Some(10),
            max_body_bytes: Some(2048),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(derived.max_buffered_body_bytes, 20_480);
        let file: Settings =
            toml::from_str("max_buffered_body_bytes = 268435456").expect("valid TOML");
        let set = Config::from_settings(file).expect("valid");
        assert_eq!(set.max_buffered_body_bytes, 256 << 20);
        assert_eq!(
            Config::from_settings(Settings {
                max_buffered_body_bytes: Some(4096),
                max_body_bytes: Some(4097),
                ..Settings::default()
            })
            .err()
            .unwrap_or_default(),
            "max_buffered_body_bytes (4096) must be at least max_body_bytes (4097)"
        );
    }

    #[test]
    fn limits_are_configurable_and_validated() {
        let file: Settings = toml::from_str(
            "max_connections = 4\nmax_header_bytes = 8192\nheader_read_timeout_secs = 2\n\
             idle_timeout_secs = 3\nmax_subject_chars = 80\nmax_message_chars = 2000",
        )
        .expect("valid TOML");
        let flags = Settings {
            max_message_chars: Some(1000),
            ..Settings::default()
        };
        let config = Config::from_settings(file.overridden_by(flags)).expect("valid");
        assert_eq!(
            config.connections,
            ConnectionLimits {
                max_connections: 4,
                max_header_bytes: 8192,
                header_read_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(3),
                // Defaults within the settings above: at most the idle
                // timeout, and a quarter of a small server.
                unauthenticated_idle_timeout: Duration::from_secs(3),
                max_connections_per_address: 1,
            }
        );
        assert_eq!(
            config.text_limits,
            TextLimits::new(80, 1000).expect("valid limits")
        );

        let bad = |settings: Settings| Config::from_settings(settings).err().unwrap_or_default();
        for (settings, name) in [
            (
                Settings {
                    max_connections: Some(0),
                    ..Settings::default()
                },
                "max_connections",
            ),
            (
                Settings {
                    max_header_bytes: Some(100),
                    ..Settings::default()
                },
                "max_header_bytes",
            ),
            (
                Settings {
                    max_header_bytes: Some(1 << 30),
                    ..Settings::default()
                },
                "max_header_bytes",
            ),
            (
                Settings {
                    header_read_timeout_secs: Some(0),
                    ..Settings::default()
                },
                "header_read_timeout_secs",
            ),
            (
                Settings {
                    idle_timeout_secs: Some(0),
                    ..Settings::default()
                },
                "idle_timeout_secs",
            ),
            (
                Settings {
                    max_subject_chars: Some(201),
                    ..Settings::default()
                },
                "max_subject_chars",
            ),
            (
                Settings {
                    max_message_chars: Some(25_001),
                    ..Settings::default()
                },
                "max_message_chars",
            ),
            (
                Settings {
                    max_message_chars: Some(0),
                    ..Settings::default()
                },
                "max_message_chars",
            ),
        ] {
            let error = bad(settings);
            assert!(error.starts_with(name), "{name}: {error}");
        }
        assert_eq!(
            bad(Settings {
                max_message_chars: Some(25_001),
                ..Settings::default()
            }),
            "max_message_chars must be between 1 and 25000 (the published limit)"
        );
    }

    #[test]
    fn the_key_file_defaults_to_the_database_directory() {
        let config = Config::from_settings(Settings {
            database: Some("sqlite:///var/lib/ticketd/t.db".into()),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(
            config.encryption_key_file,
            PathBuf::from("/var/lib/ticketd/encryption.key")
        );
        let file: Settings =
            toml::from_str("encryption_key_file = \"/etc/ticketd/keys\"").expect("valid TOML");
        let config = Config::from_settings(file).expect("valid");
        assert_eq!(
            config.encryption_key_file,
            PathBuf::from("/etc/ticketd/keys")
        );
        let postgres = Config::from_settings(Settings {
            database: Some("postgres://ticketd@db/ticketd".into()),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(
            postgres.encryption_key_file,
            PathBuf::from("ticketd-data/encryption.key")
        );
    }

    #[test]
    fn the_idempotency_window_is_configurable_within_bounds() {
        let too_short = Config::from_settings(Settings {
            idempotency_ttl_secs: Some(40),
            request_timeout_secs: Some(30),
            ..Settings::default()
        })
        .err()
        .unwrap_or_default();
        assert!(
            too_short.starts_with("idempotency_ttl_secs (40) must be at least twice"),
            "{too_short}"
        );
        let file: Settings = toml::from_str("idempotency_ttl_secs = 3600").expect("valid TOML");
        let config = Config::from_settings(file).expect("valid");
        assert_eq!(config.idempotency_ttl, Duration::from_secs(3600));
        for secs in [0, 30 * 86_400 + 1] {
            let error = Config::from_settings(Settings {
                idempotency_ttl_secs: Some(secs),
                ..Settings::default()
            })
            .err()
            .unwrap_or_default();
            assert!(error.starts_with("idempotency_ttl_secs"), "{secs}: {error}");
        }
    }

    #[test]
    fn later_layers_win() {
        let file: Settings = toml::from_str(
            "listen = \"0.0.0.0:9000\"\nrate_limit_per_minute = 100\nrate_limit_burst = 10\nlog_format = \"json\"",
        )
        .expect("valid TOML");
        let env_and_flags = Settings {
            listen: Some("127.0.0.1:9001".into()),
            rate_limit_burst: Some(20),
            ..Settings::default()
        };
        let config = Config::from_settings(file.overridden_by(env_and_flags)).expect("valid");
        assert_eq!(config.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(
            config.rate_limit,
            RatePolicy {
                per_minute: 100,
                burst: 20
            }
        );
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn invalid_settings_are_named() {
        let bad = |settings: Settings| Config::from_settings(settings).err().unwrap_or_default();
        assert!(
            bad(Settings {
                listen: Some("nowhere".into()),
                ..Settings::default()
            })
            .starts_with("listen")
        );
        assert!(
            bad(Settings {
                database: Some("mysql://x".into()),
                ..Settings::default()
            })
            .starts_with("database")
        );
        assert!(
            bad(Settings {
                rate_limit_per_minute: Some(0),
                ..Settings::default()
            })
            .contains("rate_limit")
        );
        assert!(
            bad(Settings {
                database_pool_size: Some(0),
                ..Settings::default()
            })
            .starts_with("database_pool_size")
        );
        assert!(
            toml::from_str::<Settings>("listne = \"x\"").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn an_unknown_key_is_answered_with_every_key_in_declaration_order() {
        let error = toml::from_str::<Settings>("listne = \"x\"")
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(
            error.contains(
                "unknown field `listne`, expected one of `database`, `database_pool_size`, \
                 `database_pool_timeout_ms`, `listen`, `public_url`,"
            ),
            "{error}"
        );
        assert!(
            error.contains(
                "`max_message_chars`, `log_format`, `encryption_key_file`, \
                 `idempotency_ttl_secs`, `api_key_cache_secs`, `html_cache_mib`"
            ),
            "{error}"
        );
    }

    #[test]
    fn the_postgres_pool_is_configurable() {
        let file: Settings = toml::from_str(
            "database = \"postgres://ticketd:secret@db/ticketd\"\ndatabase_pool_size = 32\ndatabase_pool_timeout_ms = 500",
        )
        .expect("valid TOML");
        let config = Config::from_settings(file).expect("valid");
        assert_eq!(
            config.database_pool,
            PoolOptions {
                max_connections: 32,
                acquire_timeout: Duration::from_millis(500),
            }
        );
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn the_rate_limiter_is_in_memory_unless_a_redis_url_is_given() {
        let config = Config::from_settings(Settings::default()).expect("valid");
        assert_eq!(config.rate_limit_store, RateLimitStore::Memory);

        let file: Settings = toml::from_str(
            "rate_limit_url = \"redis://10.0.0.5:6379/2\"\nrate_limit_key_prefix = \"acme:\"",
        )
        .expect("valid TOML");
        let config = Config::from_settings(file.clone()).expect("valid");
        let RateLimitStore::Redis { url, key_prefix } = &config.rate_limit_store else {
            panic!("expected Redis: {config:?}");
        };
        assert_eq!(url.redacted(), "redis://10.0.0.5:6379/2");
        assert_eq!(key_prefix, "acme:");

        let default_prefix = Config::from_settings(Settings {
            rate_limit_url: Some("redis://127.0.0.1".into()),
            ..Settings::default()
        })
        .expect("valid");
        assert!(matches!(
            default_prefix.rate_limit_store,
            RateLimitStore::Redis { ref key_prefix, .. } if key_prefix == "ticketd:rl:"
        ));

        // A later layer can switch a file's Redis limiter back off.
        let env = Settings {
            rate_limit_url: Some("memory".into()),
            ..Settings::default()
        };
        let config = Config::from_settings(file.overridden_by(env)).expect("valid");
        assert_eq!(config.rate_limit_store, RateLimitStore::Memory);
        assert_eq!(
            config.unused_settings,
            [
                "rate_limit_key_prefix has no effect: rate_limit_url is \"memory\", so the rate \
              limiter keeps its state in this process"
            ]
        );
    }

    #[test]
    fn the_effective_settings_give_the_same_configuration_again() {
        let configs = [
            Settings::default(),
            toml::from_str(
                "database = \"postgres://ticketd:secret@db/ticketd\"\ndatabase_pool_size = 8\n\
                 rate_limit_url = \"redis://:pw@10.0.0.5:6379/2\"\nrate_limit_key_prefix = \"acme:\"\n\
                 public_url = \"https://support.example.com\"\nauth_failure_limit_per_minute = 0\n\
                 blob_store = \"s3://tickets/prod\"\nupload_media_types = \"image/png\"\n\
                 profiles = [\"agency\"]\nhtml_cache_mib = 3\nlog_format = \"json\"",
            )
            .expect("valid TOML"),
        ];
        for settings in configs {
            let config = Config::from_settings(settings).expect("valid");
            let effective = config.effective_settings();
            assert_eq!(
                Config::from_settings(effective.clone()).expect("valid"),
                config,
                "{effective:?}"
            );
        }
    }

    #[test]
    fn a_setting_without_effect_is_an_error_naming_it() {
        let error = |toml_text: &str| {
            let settings: Settings = toml::from_str(toml_text).expect("valid TOML");
            Config::from_settings(settings).expect_err("refused")
        };
        for pool in ["database_pool_size = 8", "database_pool_timeout_ms = 100"] {
            let name = pool.split(' ').next().unwrap_or_default();
            assert_eq!(
                error(pool),
                format!(
                    "{name} is set, but it applies only to a PostgreSQL database and the \
                     database is SQLite (sqlite://ticketd-data/ticketd.db): remove it, or set \
                     database to a postgres:// URL"
                )
            );
        }
        assert_eq!(
            error("rate_limit_key_prefix = \"acme:\""),
            "rate_limit_key_prefix is set, but it applies only to a Redis rate_limit_url, and \
             there is none: remove it, or set rate_limit_url to a redis:// URL"
        );
        let defaults = Config::from_settings(Settings::default()).expect("valid");
        assert!(defaults.unused_settings.is_empty());
    }

    #[test]
    fn invalid_rate_limiter_settings_are_named_without_echoing_secrets() {
        let bad = |url: &str, prefix: Option<&str>, burst: Option<u32>| {
            Config::from_settings(Settings {
                rate_limit_url: Some(url.into()),
                rate_limit_key_prefix: prefix.map(str::to_owned),
                rate_limit_per_minute: Some(1),
                rate_limit_burst: burst,
                ..Settings::default()
            })
            .err()
            .unwrap_or_default()
        };
        for url in [
            "mysql://user:hunter2@db",
            "redis://user:hunter2@host:notaport",
            "redis://user:hunter2@host/notadb",
            "hunter2",
        ] {
            let error = bad(url, None, None);
            assert!(error.starts_with("rate_limit_url: "), "{url}: {error}");
            assert!(!error.contains("hunter2"), "{url}: {error}");
        }
        assert!(bad("rediss://host", None, None).contains("TLS"));
        for prefix in ["", "has space:", "tab\t"] {
            assert!(
                bad("redis://host", Some(prefix), None).starts_with("rate_limit_key_prefix"),
                "{prefix:?}"
            );
        }
        // One a minute with a burst of 100,000: 69 days to refill.
        assert!(bad("redis://host", None, Some(100_000)).starts_with("rate_limit_burst"));
        assert!(bad("redis://host", None, Some(50_000)).is_empty());
    }

    #[test]
    fn debug_hides_the_redis_password() {
        let config = Config::from_settings(Settings {
            rate_limit_url: Some("redis://ticketd:hunter2@cache.internal:6380/1".into()),
            ..Settings::default()
        })
        .expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("redis://ticketd:***@cache.internal:6380/1"),
            "{debug}"
        );

        let unix =
            RedisUrl::parse("redis+unix:///run/redis.sock?db=2&pass=hunter2").expect("valid");
        assert_eq!(
            unix.redacted(),
            "redis+unix:///run/redis.sock?db=2&pass=***"
        );
        assert!(!format!("{unix:?}").contains("hunter2"));
    }

    #[test]
    fn debug_shows_the_database_url_in_its_redacted_form() {
        let config = Config::from_settings(Settings::default()).expect("valid");
        assert!(format!("{config:?}").contains("sqlite://ticketd-data/ticketd.db"));
    }

    #[test]
    fn the_html_cache_is_16_mib_by_default_and_at_most_4_gib() {
        let default = Config::from_settings(Settings::default()).expect("valid");
        assert_eq!(default.html_cache_bytes, 16 << 20);
        for (mib, expected) in [(0, Some(0)), (4096, Some(4096 << 20)), (4097, None)] {
            let config = Config::from_settings(Settings {
                html_cache_mib: Some(mib),
                ..Settings::default()
            });
            match expected {
                Some(bytes) => assert_eq!(config.expect("valid").html_cache_bytes, bytes),
                None => assert!(
                    config.expect_err("too large").starts_with("html_cache_mib"),
                    "{mib}"
                ),
            }
        }
    }

    #[test]
    fn the_key_cache_lasts_at_most_a_minute_and_can_be_off() {
        for (secs, expected) in [(0, Some(0)), (60, Some(60)), (61, None)] {
            let config = Config::from_settings(Settings {
                api_key_cache_secs: Some(secs),
                ..Settings::default()
            });
            match expected {
                Some(expected) => assert_eq!(
                    config.expect("valid").api_key_cache,
                    Duration::from_secs(expected)
                ),
                None => assert!(
                    config
                        .expect_err("too long")
                        .starts_with("api_key_cache_secs"),
                    "{secs}"
                ),
            }
        }
    }

    #[test]
    fn upload_bytes_live_beside_the_data_unless_configured() {
        let sqlite = Config::from_settings(Settings {
            database: Some("sqlite:///var/lib/ticketd/ticketd.db".into()),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(
            sqlite.blob_store,
            BlobLocation::Directory(PathBuf::from("/var/lib/ticketd/blobs"))
        );
        assert_eq!(sqlite.max_upload_bytes, 25 * 1024 * 1024);
        assert_eq!(sqlite.upload_ttl, Duration::from_secs(86_400));
        let postgres = Config::from_settings(Settings {
            database: Some("postgres://ticketd@db/ticketd".into()),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(postgres.blob_store, BlobLocation::Database);
        let elsewhere = Config::from_settings(Settings {
            database: Some("postgres://ticketd@db/ticketd".into()),
            blob_store: Some("file:///srv/blobs".into()),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(
            elsewhere.blob_store,
            BlobLocation::Directory(PathBuf::from("/srv/blobs"))
        );
        let bucket = Config::from_settings(Settings {
            blob_store: Some("s3://ticketd-blobs/uploads".into()),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(
            bucket.blob_store,
            BlobLocation::S3 {
                bucket: "ticketd-blobs".into(),
                prefix: "uploads".into(),
            }
        );
    }

    #[test]
    fn attachment_limits_and_media_types_are_checked_settings() {
        let defaults = Config::from_settings(Settings::default()).expect("valid");
        assert_eq!(defaults.attach_limits, AttachLimits::default());
        assert_eq!(defaults.upload_media, MediaCheck::default());
        let set = Config::from_settings(Settings {
            upload_media_types: Some(" image/png, text/csv,image/png ".into()),
            max_attachments_per_message: Some(3),
            max_ticket_attachment_bytes: Some(4096),
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(set.upload_media.allowed(), [KnownType::Png, KnownType::Csv]);
        assert_eq!(
            set.attach_limits,
            AttachLimits {
                per_message: 3,
                per_ticket_bytes: 4096
            }
        );
        for (settings, error) in [
            (
                Settings {
                    upload_media_types: Some("image/png,application/x-msdownload".into()),
                    ..Settings::default()
                },
                "\"application/x-msdownload\" is not one of",
            ),
            (
                Settings {
                    upload_media_types: Some(" , ".into()),
                    ..Settings::default()
                },
                "at least one media type",
            ),
            (
                Settings {
                    max_attachments_per_message: Some(0),
                    ..Settings::default()
                },
                "max_attachments_per_message must be between 1 and 100",
            ),
            (
                Settings {
                    max_ticket_attachment_bytes: Some(0),
                    ..Settings::default()
                },
                "max_ticket_attachment_bytes must be between 1",
            ),
        ] {
            let refused = Config::from_settings(settings).expect_err("refused");
            assert!(refused.contains(error), "{refused}");
        }
    }

    #[test]
    fn every_profile_is_served_unless_the_list_says_otherwise() {
        let served = |toml_text: &str| {
            let settings: Settings = toml::from_str(toml_text).expect("valid TOML");
            Config::from_settings(settings).map(|config| config.profiles)
        };
        assert_eq!(served(""), Ok(Profile::ALL.to_vec()));
        assert_eq!(served("profiles = []"), Ok(Vec::new()));
        assert_eq!(
            served("profiles = [\"teambattles\", \"teambattles\"]"),
            Ok(vec![Profile::Teambattles])
        );
        let refused = served("profiles = [\"teambatles\"]").expect_err("unknown");
        assert!(
            refused.contains("\"teambatles\" is not one of teambattles, agency, projects"),
            "{refused}"
        );
        // From the flag or TICKETD_PROFILES: comma-separated, empty for none.
        let flags = Settings {
            profiles: Some(vec![String::new()]),
            ..Settings::default()
        };
        assert_eq!(
            Config::from_settings(flags).map(|c| c.profiles),
            Ok(Vec::new())
        );
    }

    #[test]
    fn upload_settings_are_validated() {
        for (settings, named) in [
            (
                Settings {
                    blob_store: Some("database".into()),
                    ..Settings::default()
                },
                "blob_store",
            ),
            (
                Settings {
                    blob_store: Some("s3://".into()),
                    ..Settings::default()
                },
                "blob_store",
            ),
            (
                Settings {
                    max_upload_bytes: Some(0),
                    ..Settings::default()
                },
                "max_upload_bytes",
            ),
            (
                Settings {
                    max_upload_bytes: Some(Config::MAX_MAX_UPLOAD_BYTES + 1),
                    ..Settings::default()
                },
                "max_upload_bytes",
            ),
            (
                Settings {
                    upload_ttl_secs: Some(59),
                    ..Settings::default()
                },
                "upload_ttl_secs",
            ),
            (
                Settings {
                    upload_ttl_secs: Some(Config::MAX_UPLOAD_TTL_SECS + 1),
                    ..Settings::default()
                },
                "upload_ttl_secs",
            ),
        ] {
            let error = Config::from_settings(settings).expect_err("invalid");
            assert!(error.starts_with(named), "{error}");
        }
    }
}
