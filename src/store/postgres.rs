//! The PostgreSQL backend, for several ticketd nodes sharing one database.
//!
//! A pool of connections ([`deadpool_postgres`]) serves every node's
//! requests; each write is one transaction that locks the rows it depends on
//! (the workspace's ticket counter, the ticket a reply or action changes), so
//! concurrent writers on different nodes serialise per ticket and per
//! workspace and never lose an update. A lost or refused connection is
//! [`StoreError::Unavailable`]: the request fails fast with a 503 and the
//! pool connects afresh when the database is back.

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
use crate::core::dump::{ExportCursor, Record, RecordKind};
use crate::core::id::{KeyId, MessageId};
use crate::core::lifecycle::TicketAction;
use crate::core::message::{Message, NewMessage};
use crate::core::page::{MessageCursor, Page, PageRequest, TicketCursor};
use crate::core::ticket::{NewTicket, Ticket, TicketFilter, TicketRef};
use crate::core::time::Timestamp;
use crate::core::workspace::{ApiKey, NewApiKey, NewUser, NewWorkspace, User, Workspace};
use crate::store::{KeyCredentials, Store, StoreError};

pub use migrate::MIGRATIONS;

/// How a node connects to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Connections this node keeps open at most.
    pub max_connections: usize,
    /// How long a request waits for a connection (or for a new one to be
    /// made) before it fails as unavailable.
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

    fn connect(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|error| StoreError::Other(format!("invalid PostgreSQL URL: {error}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.acquire_timeout);
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
            .max_size(options.max_connections.max(1))
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

/// Maps a pool error: every way of not getting a connection is
/// `Unavailable`.
fn map_pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => map_error(error),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Maps a PostgreSQL error to a [`StoreError`]: constraint violations to
/// `Conflict` with the constraint's name, connection trouble and
/// transient refusals to `Unavailable`, anything else to `Other`.
pub(crate) fn map_error(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::CHECK_VIOLATION {
            return StoreError::Conflict(db.constraint().unwrap_or_default().to_owned());
        }
        if *code == SqlState::FOREIGN_KEY_VIOLATION {
            return StoreError::Conflict("foreign_key".to_owned());
        }
        let class = code.code().get(..2).unwrap_or_default();
        // 08: connection exception; 53: insufficient resources; 57:
        // operator intervention (shutdown, restart); 40: a serialisation
        // failure or deadlock, which a retry resolves.
        if matches!(class, "08" | "53" | "57" | "40") {
            return StoreError::Unavailable(format!("{db} (SQLSTATE {})", code.code()));
        }
        return StoreError::Other(format!("{db} (SQLSTATE {})", code.code()));
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

    async fn create_ticket(&self, actor: &Actor, new: NewTicket) -> Result<Ticket, StoreError> {
        let mut client = self.client().await?;
        tickets::create_ticket(&mut client, actor, new).await
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
    ) -> Result<Message, StoreError> {
        let mut client = self.client().await?;
        tickets::append_message(&mut client, actor, ticket, new).await
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
    ) -> Result<Ticket, StoreError> {
        let mut client = self.client().await?;
        tickets::apply_action(&mut client, actor, ticket, action, at).await
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
}
