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
mod transfer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::core::access::Actor;
use crate::core::crypto::DataKeyId;
use crate::core::dump::{ExportCursor, Record, RecordKind};
use crate::core::id::{KeyId, MessageId, TicketId};
use crate::core::lifecycle::TicketAction;
use crate::core::message::{Message, NewMessage};
use crate::core::page::{MessageCursor, Page, PageRequest, TicketCursor};
use crate::core::ticket::{NewTicket, Ticket, TicketFilter, TicketRef};
use crate::core::time::Timestamp;
use crate::core::workspace::{ApiKey, NewApiKey, NewUser, NewWorkspace, User, Workspace};
use crate::store::idempotency::{Claim, ClaimOutcome, ClaimRequest, Completion};
use crate::store::{
    Constraint, KeyCredentials, RegisteredKey, Reseal, Store, StoreError, StoredBody, Written,
};

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
        let mut client = store.client().await?;
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
        let mut client = store.client().await?;
        migrate::migrate(&mut client).await
    }

    /// Whether the database at `url` holds ticketd's schema; changes
    /// nothing.
    ///
    /// # Errors
    /// `Unavailable` if the database cannot be reached.
    pub async fn has_schema(url: &str) -> Result<bool, StoreError> {
        let store = Self::connect(url, PoolOptions::default())?;
        let client = store.client().await?;
        let row = query_opt(
            &client,
            "SELECT to_regclass('schema_migration') IS NOT NULL",
            &[],
        )
        .await?
        .ok_or_else(|| StoreError::Other("the schema check returned no row".into()))?;
        rows::get(&row, 0)
    }

    fn connect(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|error| StoreError::Other(format!("invalid PostgreSQL URL: {error}")))?;
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
            NoTls,
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
            .map_err(|error| StoreError::Other(format!("cannot build the pool: {error}")))?;
        Ok(Self { pool })
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(map_pool_error)
    }
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
        PoolError::Backend(error) => StoreError::Unavailable(describe(&error)),
        other => StoreError::Unavailable(other.to_string()),
    }
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
            return StoreError::Unavailable(describe(&error));
        }
        return StoreError::Other(describe(&error));
    }
    let lost_connection = error.is_closed()
        || std::error::Error::source(&error).is_some_and(|source| source.is::<std::io::Error>());
    if lost_connection {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Other(error.to_string())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn check_ready(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(map_error)?;
        Ok(())
    }

    async fn create_workspace(&self, new: NewWorkspace) -> Result<Workspace, StoreError> {
        let mut client = self.client().await?;
        provisioning::create_workspace(&mut client, &new).await
    }

    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let client = self.client().await?;
        provisioning::create_user(&client, &new).await
    }

    async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError> {
        let client = self.client().await?;
        provisioning::create_api_key(&client, &new).await
    }

    async fn revoke_api_key(&self, id: KeyId, at: Timestamp) -> Result<ApiKey, StoreError> {
        let client = self.client().await?;
        provisioning::revoke_api_key(&client, id, at).await
    }

    async fn find_key_credentials(&self, id: KeyId) -> Result<Option<KeyCredentials>, StoreError> {
        let client = self.client().await?;
        provisioning::find_key_credentials(&client, id).await
    }

    async fn create_ticket(
        &self,
        actor: &Actor,
        new: NewTicket,
        completion: Option<Completion<Ticket>>,
    ) -> Result<Written<Ticket>, StoreError> {
        let mut client = self.client().await?;
        tickets::create_ticket(&mut client, actor, new, completion).await
    }

    async fn find_ticket(&self, actor: &Actor, ticket: TicketRef) -> Result<Ticket, StoreError> {
        let client = self.client().await?;
        tickets::find_ticket(&client, actor, ticket).await
    }

    async fn list_tickets(
        &self,
        actor: &Actor,
        filter: TicketFilter,
        page: PageRequest<TicketCursor>,
    ) -> Result<Page<Ticket, TicketCursor>, StoreError> {
        let client = self.client().await?;
        tickets::list_tickets(&client, actor, filter, page).await
    }

    async fn append_message(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        new: NewMessage,
        completion: Option<Completion<Message>>,
    ) -> Result<Written<Message>, StoreError> {
        let mut client = self.client().await?;
        tickets::append_message(&mut client, actor, ticket, new, completion).await
    }

    async fn list_messages(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        page: PageRequest<MessageCursor>,
    ) -> Result<Page<Message, MessageCursor>, StoreError> {
        let client = self.client().await?;
        tickets::list_messages(&client, actor, ticket, page).await
    }

    async fn find_message(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        message: MessageId,
    ) -> Result<Message, StoreError> {
        let client = self.client().await?;
        tickets::find_message(&client, actor, ticket, message).await
    }

    async fn apply_action(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        action: TicketAction,
        at: Timestamp,
        completion: Option<Completion<Ticket>>,
    ) -> Result<Written<Ticket>, StoreError> {
        let mut client = self.client().await?;
        tickets::apply_action(&mut client, actor, ticket, action, at, completion).await
    }

    async fn is_empty(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        transfer::is_empty(&client).await
    }

    async fn export_page(
        &self,
        kind: RecordKind,
        after: Option<ExportCursor>,
        limit: u32,
    ) -> Result<Vec<Record>, StoreError> {
        let client = self.client().await?;
        transfer::export_page(&client, kind, after, limit).await
    }

    async fn import_records(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        transfer::import_records(&mut client, &records).await
    }

    async fn encryption_keys(&self) -> Result<Vec<RegisteredKey>, StoreError> {
        let client = self.client().await?;
        encryption::encryption_keys(&client).await
    }

    async fn register_encryption_keys(
        &self,
        keys: Vec<RegisteredKey>,
        at: Timestamp,
    ) -> Result<Vec<RegisteredKey>, StoreError> {
        let mut client = self.client().await?;
        encryption::register_encryption_keys(&mut client, &keys, at).await
    }

    async fn retire_encryption_keys_except(&self, current: DataKeyId) -> Result<(), StoreError> {
        let client = self.client().await?;
        encryption::retire_encryption_keys_except(&client, current).await
    }

    async fn delete_encryption_key(&self, id: DataKeyId) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        encryption::delete_encryption_key(&mut client, id).await
    }

    async fn encrypted_messages(
        &self,
        except: Option<DataKeyId>,
        after: Option<(TicketId, i64)>,
        limit: u32,
    ) -> Result<Vec<StoredBody>, StoreError> {
        let client = self.client().await?;
        encryption::encrypted_messages(&client, except, after, limit).await
    }

    async fn reseal_messages(&self, reseals: Vec<Reseal>) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        encryption::reseal_messages(&mut client, &reseals).await
    }

    async fn server_secret_check(&self) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        encryption::server_secret_check(&client).await
    }

    async fn register_server_secret(
        &self,
        check_value: String,
        at: Timestamp,
    ) -> Result<String, StoreError> {
        let client = self.client().await?;
        encryption::register_server_secret(&client, &check_value, at).await
    }

    async fn claim_idempotency_key(
        &self,
        request: ClaimRequest,
    ) -> Result<ClaimOutcome, StoreError> {
        let client = self.client().await?;
        idempotency::claim(&client, &request).await
    }

    async fn release_idempotency_key(&self, claim: &Claim) -> Result<(), StoreError> {
        let client = self.client().await?;
        idempotency::release(&client, claim).await
    }

    async fn sweep_idempotency_keys(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let client = self.client().await?;
        idempotency::sweep(&client, now, limit).await
    }
}
