//! Setting up the benchmark's data directly through ticketd's storage layer.

use std::path::Path;
use std::sync::Arc;

use ticketd::core::access::{Actor, Role, Scopes};
use ticketd::core::id::{KeyId, MessageId, TicketId, UserId, WorkspaceId};
use ticketd::core::message::{BodyFormat, NewMessage};
use ticketd::core::text::{MessageBody, Subject};
use ticketd::core::ticket::{NewTicket, Priority, TicketRef};
use ticketd::core::time::Timestamp;
use ticketd::core::token::ApiToken;
use ticketd::core::workspace::{NewApiKey, NewUser, NewWorkspace, WorkspaceCode};
use ticketd::store::Store;
use ticketd::store::sqlite::SqliteStore;

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

/// Opens the store at `path`.
pub async fn open(path: &Path) -> Result<Arc<dyn Store>, String> {
    Ok(Arc::new(
        SqliteStore::open(path.to_path_buf()).await.map_err(err)?,
    ))
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
            on_behalf_of: None,
            first_message: NewMessage {
                id: MessageId::generate(),
                body: body("The first message of a benchmark ticket.")?,
                body_format: BodyFormat::Plain,
                encrypted: false,
                sent_at: Timestamp::now(),
            },
        };
        let ticket = store.create_ticket(&owner, new).await.map_err(err)?;
        opened.push(BenchTicket {
            id: ticket.id,
            owner,
            owner_token,
            messages: 1,
        });
    }
    Ok(Fixture { tickets: opened })
}

/// Appends messages, spread evenly over the tickets, until the fixture holds
/// at least `target` messages. Many appends are kept in flight so the
/// store's writer commits them in large groups.
pub async fn grow_to(
    store: &Arc<dyn Store>,
    fixture: &mut Fixture,
    target: i64,
) -> Result<(), String> {
    const IN_FLIGHT: usize = 512;
    let missing = target - fixture.messages();
    if missing <= 0 {
        return Ok(());
    }
    let tickets = fixture.tickets.len() as i64;
    let mut plan: Vec<(usize, i64)> = Vec::new();
    for (index, _) in fixture.tickets.iter().enumerate() {
        let share = missing / tickets + i64::from((index as i64) < missing % tickets);
        plan.push((index, share));
    }
    let mut jobs = tokio::task::JoinSet::new();
    let text = body("An earlier message, preloaded so that the thread has history.")?;
    for (index, share) in plan {
        for _ in 0..share {
            while jobs.len() >= IN_FLIGHT {
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
                };
                store
                    .append_message(&ticket.owner, TicketRef::Id(ticket.id), new)
                    .await
                    .map(|_| ())
                    .map_err(err)
            });
        }
        fixture.tickets[index].messages += share;
    }
    while let Some(done) = jobs.join_next().await {
        done.map_err(err)??;
    }
    Ok(())
}

/// The number of message rows in the SQLite database at `path`.
pub fn count_messages(path: &Path) -> Result<i64, String> {
    let conn = rusqlite::Connection::open(path).map_err(err)?;
    conn.query_row("SELECT count(*) FROM message", [], |row| row.get(0))
        .map_err(err)
}
