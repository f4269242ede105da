//! Configuration: defaults < `ticketd.toml` < `TICKETD_*` environment
//! variables < command-line flags. Everything is validated once, at startup.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::rate_limit::RatePolicy;
use crate::store::DatabaseUrl;
use crate::store::postgres::PoolOptions;

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings as read from `ticketd.toml`, or given as flags and environment
/// variables; every one optional. Field names match the TOML keys.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Database URL (`sqlite://PATH` or `postgres://...`).
    pub database: Option<String>,
    /// PostgreSQL connections this node keeps at most.
    pub database_pool_size: Option<usize>,
    /// Milliseconds a request waits for a PostgreSQL connection (or for a
    /// new one to be made) before it is answered with 503.
    pub database_pool_timeout_ms: Option<u64>,
    /// Address to listen on.
    pub listen: Option<String>,
    /// Base URL clients use to reach this server.
    pub public_url: Option<String>,
    /// Sustained requests per minute per API key.
    pub rate_limit_per_minute: Option<u32>,
    /// Requests per API key allowed at once.
    pub rate_limit_burst: Option<u32>,
    /// Seconds a request may take.
    pub request_timeout_secs: Option<u64>,
    /// Largest request body in bytes.
    pub max_body_bytes: Option<usize>,
    /// Requests handled concurrently.
    pub max_concurrent_requests: Option<usize>,
    /// Log format.
    pub log_format: Option<LogFormat>,
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

    /// These settings with every value `over` sets taking precedence.
    pub fn overridden_by(self, over: Settings) -> Settings {
        Settings {
            database: over.database.or(self.database),
            database_pool_size: over.database_pool_size.or(self.database_pool_size),
            database_pool_timeout_ms: over
                .database_pool_timeout_ms
                .or(self.database_pool_timeout_ms),
            listen: over.listen.or(self.listen),
            public_url: over.public_url.or(self.public_url),
            rate_limit_per_minute: over.rate_limit_per_minute.or(self.rate_limit_per_minute),
            rate_limit_burst: over.rate_limit_burst.or(self.rate_limit_burst),
            request_timeout_secs: over.request_timeout_secs.or(self.request_timeout_secs),
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            max_concurrent_requests: over
                .max_concurrent_requests
                .or(self.max_concurrent_requests),
            log_format: over.log_format.or(self.log_format),
        }
    }
}

/// The validated configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the data lives.
    pub database: DatabaseUrl,
    /// The connection pool, for a PostgreSQL database.
    pub database_pool: PoolOptions,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Base URL clients reach the server at; `None` to derive it from the
    /// listening address.
    pub public_url: Option<String>,
    /// Per-key rate limit.
    pub rate_limit: RatePolicy,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Requests handled concurrently.
    pub max_concurrent_requests: usize,
    /// Log format.
    pub log_format: LogFormat,
}

impl Config {
    /// The default listening address.
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";

    /// Validates settings, filling in defaults.
    ///
    /// # Errors
    /// One readable message naming the first invalid setting.
    pub fn from_settings(settings: Settings) -> Result<Self, String> {
        let database = match settings.database.as_deref() {
            Some(url) => DatabaseUrl::parse(url).map_err(|error| format!("database: {error}"))?,
            None => DatabaseUrl::default_sqlite(),
        };
        let defaults = PoolOptions::default();
        let max_connections = settings
            .database_pool_size
            .unwrap_or(defaults.max_connections);
        if max_connections == 0 {
            return Err("database_pool_size must be at least 1".into());
        }
        let acquire_timeout = settings
            .database_pool_timeout_ms
            .map_or(defaults.acquire_timeout, Duration::from_millis);
        if acquire_timeout.is_zero() {
            return Err("database_pool_timeout_ms must be at least 1".into());
        }
        let listen_text = settings.listen.as_deref().unwrap_or(Self::DEFAULT_LISTEN);
        let listen = listen_text.parse().map_err(|_| {
            format!("listen: {listen_text:?} is not an address like 127.0.0.1:8080")
        })?;
        if let Some(url) = &settings.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "public_url: {url:?} must start with http:// or https://"
            ));
        }
        let per_minute = settings
            .rate_limit_per_minute
            .unwrap_or(RatePolicy::DEFAULT.per_minute);
        let burst = settings.rate_limit_burst.unwrap_or(per_minute);
        if per_minute == 0 || burst == 0 {
            return Err("rate_limit_per_minute and rate_limit_burst must be at least 1".into());
        }
        let timeout = settings.request_timeout_secs.unwrap_or(30);
        if timeout == 0 {
            return Err("request_timeout_secs must be at least 1".into());
        }
        let max_body_bytes = settings.max_body_bytes.unwrap_or(1024 * 1024);
        if max_body_bytes < 1024 {
            return Err("max_body_bytes must be at least 1024".into());
        }
        let max_concurrent_requests = settings.max_concurrent_requests.unwrap_or(1024);
        if max_concurrent_requests == 0 {
            return Err("max_concurrent_requests must be at least 1".into());
        }
        Ok(Self {
            database,
            database_pool: PoolOptions {
                max_connections,
                acquire_timeout,
            },
            listen,
            public_url: settings
                .public_url
                .map(|url| url.trim_end_matches('/').to_owned()),
            rate_limit: RatePolicy { per_minute, burst },
            request_timeout: Duration::from_secs(timeout),
            max_body_bytes,
            max_concurrent_requests,
            log_format: settings.log_format.unwrap_or_default(),
        })
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database", &self.database.redacted())
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("rate_limit", &self.rate_limit)
            .field("request_timeout", &self.request_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("database_pool", &self.database_pool)
            .field("log_format", &self.log_format)
            .finish()
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
    fn debug_shows_the_database_url_in_its_redacted_form() {
        let config = Config::from_settings(Settings::default()).expect("valid");
        assert!(format!("{config:?}").contains("sqlite://ticketd-data/ticketd.db"));
    }
}
