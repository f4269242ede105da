//! Configuration: defaults < `ticketd.toml` < `TICKETD_*` environment
//! variables < command-line flags. Everything is validated once, at startup.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::rate_limit::redis::{RedisRateLimiter, RedisUrl, check_policy};
use crate::rate_limit::{RateLimitStore, RatePolicy};
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
    /// Where rate-limit state lives: `memory` or a `redis://` URL.
    pub rate_limit_url: Option<String>,
    /// Prefix of the rate limiter's Redis keys.
    pub rate_limit_key_prefix: Option<String>,
    /// Seconds a request may take.
    pub request_timeout_secs: Option<u64>,
    /// Largest request body in bytes.
    pub max_body_bytes: Option<usize>,
    /// Requests handled concurrently.
    pub max_concurrent_requests: Option<usize>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// Seconds the response of a request with an `Idempotency-Key` is kept.
    pub idempotency_ttl_secs: Option<u64>,
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
            rate_limit_url: over.rate_limit_url.or(self.rate_limit_url),
            rate_limit_key_prefix: over.rate_limit_key_prefix.or(self.rate_limit_key_prefix),
            request_timeout_secs: over.request_timeout_secs.or(self.request_timeout_secs),
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            max_concurrent_requests: over
                .max_concurrent_requests
                .or(self.max_concurrent_requests),
            log_format: over.log_format.or(self.log_format),
            idempotency_ttl_secs: over.idempotency_ttl_secs.or(self.idempotency_ttl_secs),
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
    /// Where the rate limiter keeps its state.
    pub rate_limit_store: RateLimitStore,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Requests handled concurrently.
    pub max_concurrent_requests: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// How long the response of a request with an `Idempotency-Key` is
    /// kept for its retries.
    pub idempotency_ttl: Duration,
}

impl Config {
    /// The default listening address.
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";

    /// How long idempotency records are kept unless configured: a day.
    pub const DEFAULT_IDEMPOTENCY_TTL_SECS: u64 = 86_400;

    /// The longest idempotency records may be kept: 30 days.
    pub const MAX_IDEMPOTENCY_TTL_SECS: u64 = 30 * 86_400;

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
        let rate_limit = RatePolicy { per_minute, burst };
        let rate_limit_store = rate_limit_store(&settings, rate_limit)?;
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
        let idempotency_ttl = settings
            .idempotency_ttl_secs
            .unwrap_or(Self::DEFAULT_IDEMPOTENCY_TTL_SECS);
        if !(1..=Self::MAX_IDEMPOTENCY_TTL_SECS).contains(&idempotency_ttl) {
            return Err(format!(
                "idempotency_ttl_secs must be between 1 and {} (30 days)",
                Self::MAX_IDEMPOTENCY_TTL_SECS
            ));
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
            rate_limit,
            rate_limit_store,
            request_timeout: Duration::from_secs(timeout),
            max_body_bytes,
            max_concurrent_requests,
            log_format: settings.log_format.unwrap_or_default(),
            idempotency_ttl: Duration::from_secs(idempotency_ttl),
        })
    }
}

/// The limiter's store: in memory unless `rate_limit_url` names a Redis
/// server (`memory` says so explicitly, to override a file's URL).
fn rate_limit_store(settings: &Settings, policy: RatePolicy) -> Result<RateLimitStore, String> {
    let url = match settings.rate_limit_url.as_deref().map(str::trim) {
        None | Some("memory") => return Ok(RateLimitStore::Memory),
        Some(url) => RedisUrl::parse(url).map_err(|error| format!("rate_limit_url: {error}"))?,
    };
    check_policy(policy).map_err(|error| format!("rate_limit_burst: {error}"))?;
    let key_prefix = settings
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

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database", &self.database.redacted())
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("rate_limit", &self.rate_limit)
            .field("rate_limit_store", &self.rate_limit_store)
            .field("request_timeout", &self.request_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("database_pool", &self.database_pool)
            .field("log_format", &self.log_format)
            .field("idempotency_ttl", &self.idempotency_ttl)
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
        assert_eq!(config.idempotency_ttl, Duration::from_secs(86_400));
    }

    #[test]
    fn the_idempotency_window_is_configurable_within_bounds() {
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
}
