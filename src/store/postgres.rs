//! The PostgreSQL backend, for several ticketd nodes sharing one database.
//!
//! A pool of connections ([`deadpool_postgres`]) serves every node's
//! requests; each write is one transaction that locks the rows it depends on
//! (the workspace's ticket counter, the ticket a reply or action changes), so
//! concurrent writers on different nodes serialise per ticket and per
//! workspace and never lose an update. A lost or refused connection is
//! [`StoreError::Unavailable`]: the request fails fast with a 503 and the
//! pool connects afresh when the database is back.

mod encryption;
mod idempotency;
mod migrate;
mod provisioning;
mod rows;
mod tickets;
pub mod tls;
mod transfer;
mod uploads;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod,
};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::metrics;
use crate::store::{Cause, Constraint, Store, StoreError};

pub use migrate::MIGRATIONS;

/// How a node connects to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Connections this node keeps open at most.
    pub max_connections: usize,
    /// How long a request waits for a free connection and then, if it has
    /// to make one, how long for the new one; past either it fails as
    /// unavailable (so at most twice this in all).
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(2),
        }
    }
}

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL) and applies
    /// pending migrations.
    ///
    /// # Errors
    /// `Unavailable` if the database cannot be reached; `Other` if the URL
    /// is invalid or a migration fails.
    pub async fn open(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        let store = Self::connect(url, options)?;
        let mut client = store
            .client()
            .await
            .map_err(|error| at_server(url, error))?;
        migrate::migrate(&mut client).await?;
        Ok(store)
    }

    /// Applies pending migrations to the database at `url`; returns the
    /// names of those it applied.
    ///
    /// # Errors
    /// As [`PostgresStore::open`].
    pub async fn migrate(url: &str) -> Result<Vec<&'static str>, StoreError> {
        let store = Self::connect(url, PoolOptions::default())?;
        let mut client = store
            .client()
            .await
            .map_err(|error| at_server(url, error))?;
        migrate::migrate(&mut client).await
    }

    /// Whether the database at `url` holds ticketd's schema; changes
    /// nothing.
    ///
    /// # Errors
    /// `Unavailable` if the database cannot be reached.
    pub async fn has_schema(url: &str) -> Result<bool, StoreError> {
        let store = Self::connect(url, PoolOptions::default())?;
        let client = store
            .client()
            .await
            .map_err(|error| at_server(url, error))?;
        let row = query_opt(
            &*client,
            "SELECT to_regclass('schema_migration') IS NOT NULL",
            &[],
        )
        .await?
        .ok_or_else(|| StoreError::Other("the schema check returned no row".into()))?;
        rows::get(&row, 0)
    }

    fn connect(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        Ok(Self {
            pool: pool(url, options)?,
        })
    }

    /// A connection of the pool for one operation, which is timed (with the
    /// wait for the connection) while metrics are on.
    async fn client(&self) -> Result<Client, StoreError> {
        let timer = metrics::OperationTimer::start("postgres", "connection");
        let waited = metrics::now();
        let object = self.pool.get().await.map_err(map_pool_error);
        metrics::record_since(metrics::POSTGRES_POOL_WAIT_SECONDS, waited);
        if metrics::enabled() {
            let status = self.pool.status();
            metrics::set_gauge(metrics::POSTGRES_POOL_CONNECTIONS, status.size as f64);
            metrics::set_gauge(metrics::POSTGRES_POOL_IDLE, status.available as f64);
            metrics::set_gauge(metrics::POSTGRES_POOL_WAITING, status.waiting as f64);
        }
        Ok(Client {
            object: object?,
            _timer: timer,
        })
    }
}

/// A pooled connection held for one store operation: the operation's time
/// is recorded when it is given back.
struct Client {
    object: Object,
    _timer: metrics::OperationTimer,
}

impl std::ops::Deref for Client {
    type Target = Object;

    fn deref(&self) -> &Object {
        &self.object
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Object {
        &mut self.object
    }
}

/// A pool of connections to the database at `url`, with the settings every
/// connection of ticketd's gets (timeouts, keepalives, lock limits).
///
/// # Errors
/// `Other` if the URL or the pool's settings are invalid.
pub(crate) fn pool(url: &str, options: PoolOptions) -> Result<Pool, StoreError> {
    let (url, tls) =
        tls::split_url(url).map_err(|error| StoreError::other(format!("database: {error}")))?;
    let mut config = tokio_postgres::Config::from_str(&url).map_err(|error| {
        StoreError::Other(Cause::with_source(
            format!("invalid PostgreSQL URL: {error}"),
            error,
        ))
    })?;
    config.ssl_mode(tls.mode.wire());
    let connector = tls::connector(&tls).map_err(StoreError::other)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.acquire_timeout);
    }
    // A database that stops answering (a partition, a failover) rather
    // than refusing: connections are found dead within seconds, and no
    // request waits long on a lock or holds one while its node is gone.
    config
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(8));
    if config.get_options().is_none() {
        config.options("-c lock_timeout=5000 -c idle_in_transaction_session_timeout=30000");
    }
    if config.get_application_name().is_none() {
        config.application_name("ticketd");
    }
    let manager = Manager::from_config(
        config,
        connector,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(options.max_connections)
        .wait_timeout(Some(options.acquire_timeout))
        .create_timeout(Some(options.acquire_timeout))
        .recycle_timeout(Some(options.acquire_timeout))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|error| {
            StoreError::Other(Cause::with_source(
                format!("cannot build the pool: {error}"),
                error,
            ))
        })?;
    Ok(pool)
}

/// Runs a statement (prepared once per connection) and returns its rows.
async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(map_error)?;
    client.query(&statement, args).await.map_err(map_error)
}

/// Runs a statement that returns at most one row.
async fn query_opt<C: GenericClient>(
    client: &C,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(map_error)?;
    client.query_opt(&statement, args).await.map_err(map_error)
}

/// Runs a statement that returns no rows; returns how many rows it changed.
async fn execute<C: GenericClient>(
    client: &C,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(map_error)?;
    client.execute(&statement, args).await.map_err(map_error)
}

/// Maps a pool error: every way of not getting a connection (a timeout, a
/// refused or failed login, a database that does not exist) is
/// `Unavailable`: a 503 until the database or its settings are fixed.
fn map_pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => {
            StoreError::Unavailable(Cause::with_source(describe(&error), error))
        }
        other => StoreError::Unavailable(Cause::new(other)),
    }
}

/// A failure to reach the server at `url`, naming its host and port and
/// the whole chain of causes ("connection refused"), where the client
/// library's own message says only "error connecting to server".
fn at_server(url: &str, error: StoreError) -> StoreError {
    let StoreError::Unavailable(cause) = error else {
        return error;
    };
    let server = tls::split_url(url)
        .ok()
        .and_then(|(url, _)| url.parse::<tokio_postgres::Config>().ok())
        .map(|config| {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .map(|host| match host {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            let port = config.get_ports().first().copied().unwrap_or(5432);
            format!("{}:{port}", hosts.join(","))
        })
        .unwrap_or_else(|| "the configured server".to_owned());
    let mut text = format!("cannot reach PostgreSQL at {server}: {cause}");
    let mut source = std::error::Error::source(cause.error());
    while let Some(error) = source {
        let next = error.to_string();
        // "db error" is the client library's name for a server's answer,
        // which the cause has already given in full.
        if next != "db error" && !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = error.source();
    }
    StoreError::Unavailable(Cause::message(text))
}

/// A PostgreSQL error's message, with the server's text when there is one
/// (tokio-postgres alone says only "db error").
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{db} (SQLSTATE {})", db.code().code()),
        None => error.to_string(),
    }
}

/// Maps a PostgreSQL error to a [`StoreError`]: constraint violations to
/// `Conflict` with the constraint's name, connection trouble and
/// transient refusals to `Unavailable`, anything else to `Other`.
pub(crate) fn map_error(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::CHECK_VIOLATION {
            return StoreError::Conflict(Constraint::from_name(
                db.constraint().unwrap_or_default(),
            ));
        }
        if *code == SqlState::FOREIGN_KEY_VIOLATION {
            return StoreError::Conflict(Constraint::ForeignKey);
        }
        let class = code.code().get(..2).unwrap_or_default();
        // 08: connection exception; 53: insufficient resources; 57:
        // operator intervention (shutdown, restart, a timeout); 40: a
        // serialisation failure or deadlock, which a retry resolves; 55P03:
        // lock_timeout, a ticket locked for too long.
        if matches!(class, "08" | "53" | "57" | "40") || *code == SqlState::LOCK_NOT_AVAILABLE {
            return StoreError::Unavailable(Cause::with_source(describe(&error), error));
        }
        return StoreError::Other(Cause::with_source(describe(&error), error));
    }
    let lost_connection = error.is_closed()
        || std::error::Error::source(&error).is_some_and(|source| source.is::<std::io::Error>());
    if lost_connection {
        StoreError::Unavailable(Cause::new(error))
    } else {
        StoreError::Other(Cause::new(error))
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn check_ready(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(map_error)?;
        Ok(())
    }
}
