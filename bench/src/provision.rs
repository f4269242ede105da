//! Setting up the benchmark's data directly through ticketd's storage layer.

use std::sync::Arc;
use std::time::Duration;

use ticketd::core::access::{Actor, Role, Scopes, TicketScope};
use ticketd::core::id::{KeyId, MessageId, TicketId, UserId, WorkspaceId};
use ticketd::core::message::{BodyFormat, NewMessage};
use ticketd::core::text::{MessageBody, Subject};
use ticketd::core::ticket::{NewTicket, Priority, TicketRef};
use ticketd::core::time::Timestamp;
use ticketd::core::token::ApiToken;
use ticketd::core::workspace::{NewApiKey, NewUser, NewWorkspace, WorkspaceCode};
use ticketd::store::Written;
use ticketd::store::postgres::PoolOptions;
use ticketd::store::{DatabaseUrl, Store};

/// A ticket the load can target, with its owner's credentials.
#[derive(Clone)]
pub struct BenchTicket {
    /// Public id.
    pub id: TicketId,
    /// The owning customer.
    pub owner: Actor,
    /// The owner's bearer token.
    pub owner_token: String,
    /// Messages the thread holds.
    pub messages: i64,
}

/// Everything provisioned.
pub struct Fixture {
    /// Tickets, spread over the customers.
    pub tickets: Vec<BenchTicket>,
}

impl Fixture {
    /// Messages stored across all tickets.
    pub fn messages(&self) -> i64 {
        self.tickets.iter().map(|ticket| ticket.messages).sum()
    }
}

fn err(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// Opens the store at `url`, creating its schema if needed. On PostgreSQL
/// the pool is larger and more patient than a server's, since growing the
/// database keeps many appends waiting for a connection.
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>, String> {
    let pool = PoolOptions {
        max_connections: 32,
        acquire_timeout: Duration::from_secs(60),
    };
    ticketd::store::open_with(url, pool).await.map_err(err)
}

async fn user(
    store: &Arc<dyn Store>,
    workspace_id: WorkspaceId,
    role: Role,
    name: String,
) -> Result<(Actor, String), String> {
    let id = UserId::generate();
    store
        .create_user(NewUser {
            id,
            workspace_id,
            role,
            name: name.clone(),
            email: None,
            created_at: Timestamp::now(),
        })
        .await
        .map_err(err)?;
    let token = ApiToken::generate(KeyId::generate()).map_err(err)?;
    store
        .create_api_key(NewApiKey {
            id: token.key_id,
            user_id: id,
            scopes: Scopes::all(),
            secret_hash: token.secret_hash(),
            created_at: Timestamp::now(),
        })
        .await
        .map_err(err)?;
    let actor = Actor {
        workspace_id,
        user_id: id,
        role,
        name,
        scope: TicketScope::ByRole,
    };
    Ok((actor, token.expose()))
}

fn body(text: &str) -> Result<MessageBody, String> {
    MessageBody::parse(text.to_owned()).map_err(err)
}

/// Creates a workspace with `customers` customers and `tickets` tickets.
pub async fn provision(
    store: &Arc<dyn Store>,
    customers: usize,
    tickets: usize,
) -> Result<Fixture, String> {
    let workspace = store
        .create_workspace(NewWorkspace {
            id: WorkspaceId::generate(),
            name: "Benchmark".into(),
            code: WorkspaceCode::derive_from("Benchmark"),
            created_at: Timestamp::now(),
        })
        .await
        .map_err(err)?;
    let mut people = Vec::with_capacity(customers);
    for i in 0..customers {
        people.push(user(store, workspace.id, Role::Customer, format!("Customer {i}")).await?);
    }
    let mut opened = Vec::with_capacity(tickets);
    for i in 0..tickets {
        let (owner, owner_token) = people[i % people.len().max(1)].clone();
        let new = NewTicket {
            id: TicketId::generate(),
            subject: Subject::parse(format!("Benchmark ticket {i}")).map_err(err)?,
            priority: Priority::Normal,
            category: None,
            booking_id: None,
            on_behalf_of: None,
            first_message: NewMessage {
                id: MessageId::generate(),
                body: body("The first message of a benchmark ticket.")?,
                body_format: BodyFormat::Plain,
                encrypted: false,
                sent_at: Timestamp::now(),
                attachments: Vec::new(),
                attach_limits: Default::default(),
                task: None,
            },
        };
        let ticket = store
            .create_ticket(&owner, new, None)
            .await
            .map(Written::into_value)
            .map_err(err)?;
        opened.push(BenchTicket {
            id: ticket.id,
            owner,
            owner_token,
            messages: 1,
        });
    }
    Ok(Fixture { tickets: opened })
}

/// The order and concurrency in which [`grow_to`] appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// Ticket after ticket, 512 in flight: SQLite's one writer commits them
    /// in large groups, and consecutive appends to one ticket dirty the same
    /// pages.
    TicketByTicket,
    /// Round-robin over the tickets, 64 in flight: PostgreSQL runs appends
    /// in parallel on the pool's connections, and appends to the same ticket
    /// would only queue on its row lock.
    RoundRobin,
}

/// Appends messages, spread evenly over the tickets, until the fixture holds
/// at least `target` messages.
pub async fn grow_to(
    store: &Arc<dyn Store>,
    fixture: &mut Fixture,
    target: i64,
    growth: Growth,
) -> Result<(), String> {
    let missing = target - fixture.messages();
    if missing <= 0 {
        return Ok(());
    }
    let tickets = fixture.tickets.len() as i64;
    let shares: Vec<i64> = (0..tickets)
        .map(|index| missing / tickets + i64::from(index < missing % tickets))
        .collect();
    let (order, in_flight) = match growth {
        Growth::TicketByTicket => {
            let order: Vec<usize> = shares
                .iter()
                .enumerate()
                .flat_map(|(index, &share)| std::iter::repeat_n(index, share as usize))
                .collect();
            (order, 512)
        }
        Growth::RoundRobin => {
            let rounds = shares.iter().copied().max().unwrap_or(0);
            let order: Vec<usize> = (0..rounds)
                .flat_map(|round| {
                    shares
                        .iter()
                        .enumerate()
                        .filter(move |(_, share)| **share > round)
                        .map(|(index, _)| index)
                })
                .collect();
            (order, 64)
        }
    };
    let mut jobs = tokio::task::JoinSet::new();
    let text = body("An earlier message, preloaded so that the thread has history.")?;
    for index in order {
        while jobs.len() >= in_flight {
            if let Some(done) = jobs.join_next().await {
                done.map_err(err)??;
            }
        }
        let store = Arc::clone(store);
        let ticket = fixture.tickets[index].clone();
        let text = text.clone();
        jobs.spawn(async move {
            let new = NewMessage {
                id: MessageId::generate(),
                body: text,
                body_format: BodyFormat::Plain,
                encrypted: false,
                sent_at: Timestamp::now(),
                attachments: Vec::new(),
                attach_limits: Default::default(),
                task: None,
            };
            store
                .append_message(&ticket.owner, TicketRef::Id(ticket.id), new, None)
                .await
                .map(Written::into_value)
                .map(|_| ())
                .map_err(err)
        });
    }
    while let Some(done) = jobs.join_next().await {
        done.map_err(err)??;
    }
    for (ticket, share) in fixture.tickets.iter_mut().zip(shares) {
        ticket.messages += share;
    }
    Ok(())
}

/// The number of message rows in the database at `url`.
pub async fn count_messages(url: &DatabaseUrl) -> Result<i64, String> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).map_err(err)?;
            conn.query_row("SELECT count(*) FROM message", [], |row| row.get(0))
                .map_err(err)
        }
        DatabaseUrl::Postgres(url) => crate::postgres::count_messages(url).await,
    }
}

/// The number of stored upload records in the database at `url`.
pub async fn count_stored_uploads(url: &DatabaseUrl) -> Result<i64, String> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).map_err(err)?;
            conn.query_row(
                "SELECT count(*) FROM upload WHERE state = 'stored'",
                [],
                |row| row.get(0),
            )
            .map_err(err)
        }
        DatabaseUrl::Postgres(url) => crate::postgres::count_stored_uploads(url).await,
    }
}
