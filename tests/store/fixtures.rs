//! Building blocks for suite tests: workspaces, users, tickets, messages.

use std::sync::Arc;

use ticketd::core::access::{Actor, Role, Scopes, TicketScope};
use ticketd::core::dump::{Record, RecordKind};
use ticketd::core::id::{KeyId, MessageId, TicketId, UserId, WorkspaceId};
use ticketd::core::message::{BodyFormat, NewMessage};
use ticketd::core::text::{MessageBody, Subject};
use ticketd::core::ticket::{NewTicket, Priority, Ticket};
use ticketd::core::time::Timestamp;
use ticketd::core::token::ApiToken;
use ticketd::core::workspace::{NewApiKey, NewUser, NewWorkspace, WorkspaceCode};
use ticketd::store::Store;
use ticketd::store::Written;

pub async fn workspace(store: &Arc<dyn Store>, code: &str) -> WorkspaceId {
    store
        .create_workspace(NewWorkspace {
            id: WorkspaceId::generate(),
            name: format!("Workspace {code}"),
            code: WorkspaceCode::parse(code).unwrap(),
            created_at: Timestamp::now(),
        })
        .await
        .unwrap()
        .id
}

pub async fn actor(
    store: &Arc<dyn Store>,
    workspace_id: WorkspaceId,
    role: Role,
    name: &str,
) -> Actor {
    let user = store
        .create_user(NewUser {
            id: UserId::generate(),
            workspace_id,
            role,
            name: name.to_owned(),
            email: None,
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    Actor {
        workspace_id,
        user_id: user.id,
        role,
        name: user.name,
        scope: TicketScope::ByRole,
    }
}

pub async fn key(store: &Arc<dyn Store>, user: UserId, scopes: Scopes) -> ApiToken {
    let token = ApiToken::generate(KeyId::generate()).unwrap();
    store
        .create_api_key(NewApiKey {
            id: token.key_id,
            user_id: user,
            scopes,
            secret_hash: token.secret_hash(),
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    token
}

pub fn message(text: &str, at: Timestamp) -> NewMessage {
    NewMessage {
        id: MessageId::generate(),
        body: MessageBody::parse(text.to_owned()).unwrap(),
        body_format: BodyFormat::Plain,
        encrypted: false,
        sent_at: at,
        attachments: Vec::new(),
        attach_limits: Default::default(),
        task: None,
    }
}

pub fn new_ticket(subject: &str, on_behalf_of: Option<UserId>, at: Timestamp) -> NewTicket {
    NewTicket {
        id: TicketId::generate(),
        subject: Subject::parse(subject.to_owned()).unwrap(),
        priority: Priority::Normal,
        category: None,
        booking_id: None,
        on_behalf_of,
        first_message: message("First message", at),
    }
}

/// Opens a ticket as `customer` at `at`.
pub async fn ticket_at(
    store: &Arc<dyn Store>,
    customer: &Actor,
    subject: &str,
    at: Timestamp,
) -> Ticket {
    store
        .create_ticket(customer, new_ticket(subject, None, at), None)
        .await
        .map(Written::into_value)
        .unwrap()
}

/// Opens a ticket as `customer` now.
pub async fn ticket(store: &Arc<dyn Store>, customer: &Actor, subject: &str) -> Ticket {
    ticket_at(store, customer, subject, Timestamp::now()).await
}

/// Every record of `kind`, read `page` at a time.
pub async fn export_all(store: &Arc<dyn Store>, kind: RecordKind, page: u32) -> Vec<Record> {
    let mut records = Vec::new();
    let mut after = None;
    loop {
        let batch = store.export_page(kind, after, page).await.unwrap();
        assert!(batch.len() <= page as usize, "a page of {kind:?} overflows");
        let Some(last) = batch.last() else { break };
        after = Some(last.cursor());
        let full = batch.len() == page as usize;
        records.extend(batch);
        if !full {
            break;
        }
    }
    records
}
