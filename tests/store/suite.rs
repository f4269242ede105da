//! The conformance tests. Each takes a store on a fresh, empty database.

use std::collections::HashSet;
use std::sync::Arc;

use ticketd::core::access::{Actor, Role, Scope, Scopes, TicketScope};
use ticketd::core::dump::{
    ApiKeyRecord, ExportCursor, MessageRecord, ReadMarkerRecord, Record, RecordKind, TicketRecord,
    UserRecord, WorkspaceRecord,
};
use ticketd::core::id::{KeyId, MessageId, TaskRef, TicketId, UserId, WorkspaceId};
use ticketd::core::idempotency::{ClaimToken, Fingerprint, FingerprintKey, IdempotencyKey};
use ticketd::core::lifecycle::{LifecycleError, TicketAction};
use ticketd::core::message::{BodyFormat, Message, MessageFilter, NewMessage};
use ticketd::core::page::{MessageCursor, PageRequest, PageSize, TicketCursor};
use ticketd::core::server_secret::ServerSecret;
use ticketd::core::ticket::{
    MessagePreview, Priority, Ticket, TicketFilter, TicketRef, TicketRowQuery, TicketStatus,
};
use ticketd::core::time::Timestamp;
use ticketd::core::token::ApiToken;
use ticketd::core::workspace::{NewApiKey, NewUser, NewWorkspace, WorkspaceCode};
use ticketd::store::Constraint;
use ticketd::store::Written;
use ticketd::store::idempotency::{
    Claim, ClaimHolder, ClaimOutcome, ClaimRequest, Completion, StoredResponse,
};
use ticketd::store::{Store, StoreError};

pub use crate::encryption::*;
use crate::fixtures::{
    self, actor, export_all, key, message, new_ticket, ticket, ticket_at, workspace,
};
pub use crate::uploads::*;

fn size(n: u32) -> PageSize {
    PageSize::new(n).unwrap()
}

pub async fn workspace_codes_are_unique(store: &Arc<dyn Store>) {
    let first = workspace(store, "ACME").await;
    let duplicate = store
        .create_workspace(NewWorkspace {
            id: WorkspaceId::generate(),
            name: "Another".into(),
            code: WorkspaceCode::parse("ACME").unwrap(),
            created_at: Timestamp::now(),
        })
        .await;
    assert_eq!(
        duplicate,
        Err(StoreError::Conflict(Constraint::WorkspaceCode))
    );
    let second = store
        .create_workspace(NewWorkspace {
            id: WorkspaceId::generate(),
            name: "Another".into(),
            code: WorkspaceCode::parse("ACME2").unwrap(),
            created_at: Timestamp::from_millis(1_777_291_200_123),
        })
        .await
        .unwrap();
    assert_ne!(second.id, first);
    assert_eq!(second.code, "ACME2");
    assert_eq!(second.plan, "standard");
    assert_eq!(second.created_at, Timestamp::from_millis(1_777_291_200_123));
    assert!(second.numeric_id > 0);
}

pub async fn users_and_keys_need_their_parents(store: &Arc<dyn Store>) {
    let orphan = store
        .create_user(NewUser {
            id: UserId::generate(),
            workspace_id: WorkspaceId::generate(),
            role: Role::Customer,
            name: "Nobody".into(),
            email: None,
            created_at: Timestamp::now(),
        })
        .await;
    assert_eq!(orphan, Err(StoreError::NotFound));
    let token = ticketd::core::token::ApiToken::generate(KeyId::generate()).unwrap();
    let orphan_key = store
        .create_api_key(NewApiKey {
            id: token.key_id,
            user_id: UserId::generate(),
            scopes: Scopes::all(),
            secret_hash: token.secret_hash(),
            created_at: Timestamp::now(),
        })
        .await;
    assert_eq!(orphan_key, Err(StoreError::NotFound));
}

pub async fn key_credentials_round_trip(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let read_only: Scopes = [Scope::ReadSupport].into_iter().collect();
    let token = key(store, jane.user_id, read_only).await;

    let found = store
        .find_key_credentials(token.key_id)
        .await
        .unwrap()
        .unwrap();
    assert!(token.verify(&found.secret_hash));
    assert!(!found.revoked);
    assert_eq!(found.principal.key_id, token.key_id);
    assert_eq!(found.principal.scopes, read_only);
    assert_eq!(found.principal.actor, jane);

    assert!(
        store
            .find_key_credentials(KeyId::generate())
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn revoking_is_idempotent(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let token = key(store, jane.user_id, Scopes::all()).await;

    let first = Timestamp::from_millis(1_800_000_000_000);
    let revoked = store.revoke_api_key(token.key_id, first).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(first));
    assert_eq!((revoked.user_id, revoked.workspace_id), (jane.user_id, ws));
    let again = store
        .revoke_api_key(token.key_id, Timestamp::from_millis(1_900_000_000_000))
        .await
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(first),
        "the first revocation time stands"
    );
    assert!(
        store
            .find_key_credentials(token.key_id)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert_eq!(
        store.revoke_api_key(KeyId::generate(), first).await,
        Err(StoreError::NotFound)
    );
}

pub async fn tickets_are_numbered_per_workspace(store: &Arc<dyn Store>) {
    let acme = workspace(store, "ACME").await;
    let other = workspace(store, "OTHER").await;
    let jane = actor(store, acme, Role::Customer, "Jane Example").await;
    let fran = actor(store, other, Role::Customer, "Fran").await;
    let numbers = [
        ticket(store, &jane, "a").await.number,
        ticket(store, &jane, "b").await.number,
        ticket(store, &fran, "c").await.number,
        ticket(store, &jane, "d").await.number,
    ];
    assert_eq!(numbers, [1, 2, 1, 3]);
}

pub async fn concurrent_creation_never_reuses_a_number(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(store);
            let jane = jane.clone();
            tokio::spawn(async move {
                store
                    .create_ticket(
                        &jane,
                        new_ticket(&format!("t{i}"), None, Timestamp::now()),
                        None,
                    )
                    .await
                    .map(Written::into_value)
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap().unwrap().number);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=50).collect::<Vec<i64>>());
}

pub async fn only_customers_own_tickets(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let other = workspace(store, "OTHER").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let sam = actor(store, ws, Role::Staff, "Sam Staff").await;
    let bot = actor(store, ws, Role::Automation, "Bot").await;
    let fran = actor(store, other, Role::Customer, "Fran").await;

    let for_jane = store
        .create_ticket(
            &sam,
            new_ticket("On behalf", Some(jane.user_id), Timestamp::now()),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();
    assert_eq!(for_jane.customer.id, jane.user_id);
    assert_eq!(for_jane.customer.name, "Jane Example");
    assert_eq!(for_jane.status, TicketStatus::AwaitingResponse);
    let by_bot = store
        .create_ticket(
            &bot,
            new_ticket("Bot", Some(jane.user_id), Timestamp::now()),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();
    assert_eq!(by_bot.status, TicketStatus::AwaitingResponse);

    for on_behalf_of in [
        None,
        Some(sam.user_id),
        Some(fran.user_id),
        Some(UserId::generate()),
    ] {
        let refused = store
            .create_ticket(&sam, new_ticket("x", on_behalf_of, Timestamp::now()), None)
            .await
            .map(Written::into_value);
        assert_eq!(
            refused,
            Err(StoreError::CustomerNotFound),
            "{on_behalf_of:?}"
        );
    }
    let own = ticket(store, &jane, "Mine").await;
    assert_eq!(
        (own.status, own.customer.id),
        (TicketStatus::Open, jane.user_id)
    );
}

pub async fn visibility_follows_roles(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let other = workspace(store, "OTHER").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let john = actor(store, ws, Role::Customer, "John").await;
    let sam = actor(store, ws, Role::Staff, "Sam").await;
    let bot = actor(store, ws, Role::Automation, "Bot").await;
    let fred = actor(store, other, Role::Staff, "Fred").await;
    let fran = actor(store, other, Role::Customer, "Fran").await;
    let opened = ticket(store, &jane, "Jane's").await;

    for reference in [TicketRef::Id(opened.id), TicketRef::Number(opened.number)] {
        for viewer in [&jane, &sam, &bot] {
            assert_eq!(store.find_ticket(viewer, reference).await.unwrap(), opened);
        }
        for outsider in [&john, &fred, &fran] {
            assert_eq!(
                store.find_ticket(outsider, reference).await,
                Err(StoreError::NotFound)
            );
            assert_eq!(
                store
                    .append_message(outsider, reference, message("hi", Timestamp::now()), None)
                    .await
                    .map(Written::into_value),
                Err(StoreError::NotFound)
            );
            let page = PageRequest {
                size: size(10),
                after: None,
            };
            assert_eq!(
                store.list_messages(outsider, reference, page).await,
                Err(StoreError::NotFound)
            );
            assert_eq!(
                store
                    .apply_action(
                        outsider,
                        reference,
                        TicketAction::Close,
                        Timestamp::now(),
                        None
                    )
                    .await
                    .map(Written::into_value),
                Err(StoreError::NotFound)
            );
        }
    }
    assert_eq!(
        store
            .find_ticket(&sam, TicketRef::Id(TicketId::generate()))
            .await,
        Err(StoreError::NotFound)
    );
    let everything = PageRequest {
        size: size(100),
        after: None,
    };
    let listed = |viewer| {
        let store = Arc::clone(store);
        async move {
            store
                .list_tickets(viewer, TicketFilter::default(), everything)
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(listed(&jane).await, 1);
    assert_eq!(listed(&john).await, 0);
    assert_eq!(listed(&sam).await, 1);
    assert_eq!(listed(&fred).await, 0);
}

pub async fn replies_extend_the_thread_and_move_the_status(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let sam = actor(store, ws, Role::Staff, "Sam Staff").await;
    let opened = ticket_at(store, &jane, "Help", Timestamp::from_millis(1_000)).await;
    let reference = TicketRef::Number(opened.number);

    let staff_reply = store
        .append_message(
            &sam,
            reference,
            message("We're on it", Timestamp::from_millis(2_000)),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();
    assert_eq!(staff_reply.seq, 2);
    assert_eq!(staff_reply.ticket_id, opened.id);
    assert_eq!(
        (staff_reply.sender_id, staff_reply.sender_role),
        (sam.user_id, Role::Staff)
    );
    assert_eq!(staff_reply.sender_name, "Sam Staff");
    assert_eq!(staff_reply.body, "We're on it");
    assert_eq!(staff_reply.sent_at, Timestamp::from_millis(2_000));
    let after_staff = store.find_ticket(&jane, reference).await.unwrap();
    assert_eq!(after_staff.status, TicketStatus::AwaitingResponse);
    assert_eq!(after_staff.message_count, 2);
    assert_eq!(after_staff.last_message_at, Timestamp::from_millis(2_000));
    assert_eq!(after_staff.updated_at, Timestamp::from_millis(2_000));

    store
        .apply_action(
            &sam,
            reference,
            TicketAction::Resolve,
            Timestamp::from_millis(3_000),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();
    let customer_reply = store
        .append_message(
            &jane,
            reference,
            message("Still broken", Timestamp::from_millis(4_000)),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();
    assert_eq!(customer_reply.seq, 3);
    let after_customer = store.find_ticket(&sam, reference).await.unwrap();
    assert_eq!(after_customer.status, TicketStatus::Open);
    assert_eq!(after_customer.resolved_at, None);
    assert_eq!(after_customer.message_count, 3);

    let stored = store
        .find_message(&jane, reference, customer_reply.id)
        .await
        .unwrap();
    assert_eq!(stored, customer_reply);
}

pub async fn concurrent_replies_are_all_kept_in_order(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let opened = ticket(store, &jane, "Busy").await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = Arc::clone(store);
            let jane = jane.clone();
            tokio::spawn(async move {
                store
                    .append_message(
                        &jane,
                        TicketRef::Id(opened.id),
                        message(&format!("reply {i}"), Timestamp::now()),
                        None,
                    )
                    .await
                    .map(Written::into_value)
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().unwrap().id);
    }
    assert_eq!(ids.len(), 100);
    let ticket = store
        .find_ticket(&jane, TicketRef::Id(opened.id))
        .await
        .unwrap();
    assert_eq!(ticket.message_count, 101);

    let mut seqs = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_messages(
                &jane,
                TicketRef::Id(opened.id),
                PageRequest {
                    size: size(100),
                    after,
                },
            )
            .await
            .unwrap();
        seqs.extend(page.items.iter().map(|m| m.seq));
        let times: Vec<_> = page.items.iter().map(|m| m.sent_at).collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "thread times are ordered"
        );
        match page.next {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seqs, (1..=101).collect::<Vec<i64>>());
}

pub async fn closed_tickets_refuse_replies_and_keep_nothing(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let sam = actor(store, ws, Role::Staff, "Sam").await;
    let opened = ticket(store, &jane, "Done").await;
    let reference = TicketRef::Id(opened.id);
    let closed = store
        .apply_action(
            &jane,
            reference,
            TicketAction::Close,
            Timestamp::now(),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();
    assert_eq!(closed.status, TicketStatus::Closed);
    for who in [&jane, &sam] {
        let refused = store
            .append_message(who, reference, message("hello?", Timestamp::now()), None)
            .await
            .map(Written::into_value);
        assert_eq!(
            refused,
            Err(StoreError::Lifecycle(LifecycleError::TicketClosed))
        );
    }
    for action in [TicketAction::Resolve, TicketAction::MarkInProgress] {
        let refused = store
            .apply_action(&sam, reference, action, Timestamp::now(), None)
            .await
            .map(Written::into_value);
        assert_eq!(
            refused,
            Err(StoreError::Lifecycle(LifecycleError::TicketClosed))
        );
    }
    assert_eq!(store.find_ticket(&jane, reference).await.unwrap(), closed);
    let page = store
        .list_messages(
            &jane,
            reference,
            PageRequest {
                size: size(10),
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.items.len(),
        1,
        "the refused replies left nothing behind"
    );
}

pub async fn thread_times_never_run_backwards(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let opened = ticket_at(store, &jane, "Clock", Timestamp::from_millis(5_000)).await;
    let late = store
        .append_message(
            &jane,
            TicketRef::Id(opened.id),
            message("from a slow clock", Timestamp::from_millis(4_000)),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();
    assert_eq!(late.sent_at, Timestamp::from_millis(5_000));
    let ticket = store
        .find_ticket(&jane, TicketRef::Id(opened.id))
        .await
        .unwrap();
    assert_eq!(ticket.updated_at, Timestamp::from_millis(5_000));
    // An action whose request was timed before the last reply committed
    // (it waited for the ticket) is dated no earlier than that reply.
    let sam = actor(store, ws, Role::Staff, "Sam").await;
    let closed = store
        .apply_action(
            &sam,
            TicketRef::Id(opened.id),
            TicketAction::Close,
            Timestamp::from_millis(4_500),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();
    assert_eq!(closed.closed_at, Some(Timestamp::from_millis(5_000)));
    assert_eq!(closed.updated_at, Timestamp::from_millis(5_000));
}

pub async fn actions_follow_the_lifecycle(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let sam = actor(store, ws, Role::Staff, "Sam").await;
    let opened = ticket_at(store, &jane, "Flow", Timestamp::from_millis(1_000)).await;
    let reference = TicketRef::Id(opened.id);
    let act = |action, at| {
        let store = Arc::clone(store);
        let sam = sam.clone();
        async move {
            store
                .apply_action(&sam, reference, action, Timestamp::from_millis(at), None)
                .await
                .map(Written::into_value)
                .unwrap()
        }
    };

    let working = act(TicketAction::MarkInProgress, 2_000).await;
    assert_eq!(
        (working.status, working.updated_at),
        (TicketStatus::InProgress, Timestamp::from_millis(2_000))
    );
    let resolved = act(TicketAction::Resolve, 3_000).await;
    assert_eq!(resolved.status, TicketStatus::Resolved);
    assert_eq!(resolved.resolved_at, Some(Timestamp::from_millis(3_000)));
    let closed = act(TicketAction::Close, 4_000).await;
    assert_eq!(
        (closed.status, closed.resolved_at),
        (TicketStatus::Closed, None)
    );
    assert_eq!(closed.closed_at, Some(Timestamp::from_millis(4_000)));
    let closed_again = act(TicketAction::Close, 5_000).await;
    assert_eq!(
        closed_again, closed,
        "closing a closed ticket changes nothing"
    );
    let reopened = act(TicketAction::Reopen, 6_000).await;
    assert_eq!(
        (reopened.status, reopened.closed_at),
        (TicketStatus::Open, None)
    );
    assert_eq!(reopened.updated_at, Timestamp::from_millis(6_000));
    let reopened_again = act(TicketAction::Reopen, 7_000).await;
    assert_eq!(
        reopened_again, reopened,
        "reopening an open ticket changes nothing"
    );
}

pub async fn ticket_lists_page_by_recent_activity(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let sam = actor(store, ws, Role::Staff, "Sam").await;
    let mut opened = Vec::new();
    for i in 0..7 {
        // Pairs share a timestamp so the id must break the tie.
        opened.push(
            ticket_at(
                store,
                &jane,
                &format!("t{i}"),
                Timestamp::from_millis(1_000 + i / 2),
            )
            .await,
        );
    }
    // Activity on the oldest ticket moves it to the front.
    store
        .append_message(
            &sam,
            TicketRef::Id(opened[0].id),
            message("bump", Timestamp::from_millis(9_000)),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();

    let mut expected: Vec<_> = opened
        .iter()
        .skip(1)
        .map(|t| (t.updated_at, t.id))
        .collect();
    expected.sort_by(|a, b| b.cmp(a));
    expected.insert(0, (Timestamp::from_millis(9_000), opened[0].id));

    for viewer in [&jane, &sam] {
        let mut seen = Vec::new();
        let mut after: Option<TicketCursor> = None;
        loop {
            let page = store
                .list_tickets(
                    viewer,
                    TicketFilter::default(),
                    PageRequest {
                        size: size(3),
                        after,
                    },
                )
                .await
                .unwrap();
            assert!(page.items.len() <= 3);
            seen.extend(page.items.iter().map(|t| (t.updated_at, t.id)));
            match page.next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, expected);
    }
}

pub async fn ticket_lists_filter_by_status(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let john = actor(store, ws, Role::Customer, "John").await;
    let sam = actor(store, ws, Role::Staff, "Sam").await;
    let a = ticket(store, &jane, "a").await;
    let _b = ticket(store, &jane, "b").await;
    let c = ticket(store, &john, "c").await;
    for id in [a.id, c.id] {
        store
            .apply_action(
                &sam,
                TicketRef::Id(id),
                TicketAction::Close,
                Timestamp::now(),
                None,
            )
            .await
            .map(Written::into_value)
            .unwrap();
    }
    let closed = TicketFilter {
        status: Some(TicketStatus::Closed),
    };
    let page = PageRequest {
        size: size(10),
        after: None,
    };
    let staff_view: HashSet<_> = store
        .list_tickets(&sam, closed, page)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(staff_view, HashSet::from([a.id, c.id]));
    let jane_view: Vec<_> = store
        .list_tickets(&jane, closed, page)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(jane_view, vec![a.id]);
    let open = TicketFilter {
        status: Some(TicketStatus::InProgress),
    };
    assert!(
        store
            .list_tickets(&sam, open, page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn message_lists_page_oldest_first(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let opened = ticket(store, &jane, "Thread").await;
    for i in 1..7 {
        store
            .append_message(
                &jane,
                TicketRef::Id(opened.id),
                message(&format!("m{i}"), Timestamp::now()),
                None,
            )
            .await
            .map(Written::into_value)
            .unwrap();
    }
    let first = store
        .list_messages(
            &jane,
            TicketRef::Id(opened.id),
            PageRequest {
                size: size(4),
                after: None,
            },
        )
        .await
        .unwrap();
    let bodies: Vec<_> = first.items.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["First message", "m1", "m2", "m3"]);
    assert_eq!(first.next, Some(MessageCursor { seq: 4 }));
    let second = store
        .list_messages(
            &jane,
            TicketRef::Number(opened.number),
            PageRequest {
                size: size(4),
                after: first.next,
            },
        )
        .await
        .unwrap();
    let bodies: Vec<_> = second.items.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["m4", "m5", "m6"]);
    assert_eq!(second.next, None);
}

pub async fn messages_are_found_only_through_their_ticket(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let one = ticket(store, &jane, "one").await;
    let two = ticket(store, &jane, "two").await;
    let reply = store
        .append_message(
            &jane,
            TicketRef::Id(one.id),
            message("in one", Timestamp::now()),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();
    assert_eq!(
        store
            .find_message(&jane, TicketRef::Id(two.id), reply.id)
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store
            .find_message(&jane, TicketRef::Id(one.id), MessageId::generate())
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store
            .find_message(&jane, TicketRef::Id(one.id), reply.id)
            .await
            .unwrap(),
        reply
    );
}

/// Records as an export lists them, keyed for order checks.
fn cursors(records: &[Record]) -> Vec<ExportCursor> {
    records.iter().map(Record::cursor).collect()
}

#[track_caller]
fn assert_strictly_increasing(records: &[Record]) {
    let keys = cursors(records);
    assert!(
        keys.windows(2).all(|pair| pair[0] < pair[1]),
        "not in dump order: {keys:?}"
    );
}

pub async fn emptiness_is_reported(store: &Arc<dyn Store>) {
    assert!(store.is_empty().await.unwrap());
    for kind in RecordKind::ALL {
        assert_eq!(store.export_page(kind, None, 10).await.unwrap(), []);
    }
    workspace(store, "ACME").await;
    assert!(!store.is_empty().await.unwrap());
}

pub async fn export_pages_list_every_row_in_dump_order(store: &Arc<dyn Store>) {
    let acme = workspace(store, "ACME").await;
    let other = workspace(store, "OTHER").await;
    let jane = actor(store, acme, Role::Customer, "Jane Example").await;
    let sam = actor(store, acme, Role::Staff, "Sam Staff").await;
    let fran = actor(store, other, Role::Customer, "Fran").await;
    let jane_key = key(store, jane.user_id, Scopes::all()).await;
    let read_only: Scopes = [Scope::ReadSupport].into_iter().collect();
    let sam_key = key(store, sam.user_id, read_only).await;
    let revoked_at = Timestamp::from_millis(1_800_000_000_123);
    store
        .revoke_api_key(sam_key.key_id, revoked_at)
        .await
        .unwrap();
    let first = ticket_at(store, &jane, "First", Timestamp::from_millis(1_000)).await;
    let mut sensitive = message("**secret**", Timestamp::from_millis(2_000));
    sensitive.body_format = BodyFormat::Markdown;
    sensitive.encrypted = true;
    let reply = store
        .append_message(&sam, TicketRef::Id(first.id), sensitive, None)
        .await
        .map(Written::into_value)
        .unwrap();
    let second = ticket_at(store, &jane, "Second", Timestamp::from_millis(3_000)).await;
    store
        .apply_action(
            &jane,
            TicketRef::Id(second.id),
            TicketAction::Close,
            Timestamp::from_millis(4_000),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();
    let foreign = ticket_at(store, &fran, "Foreign", Timestamp::from_millis(5_000)).await;

    for kind in RecordKind::ALL {
        let whole = export_all(store, kind, 1000).await;
        assert!(whole.iter().all(|record| record.kind() == kind));
        assert_strictly_increasing(&whole);
        for page in [1, 2, 3] {
            assert_eq!(
                export_all(store, kind, page).await,
                whole,
                "{kind:?} by {page}"
            );
        }
    }

    let workspaces = export_all(store, RecordKind::Workspace, 10).await;
    let Record::Workspace(acme_record) = &workspaces[0] else {
        panic!("{workspaces:?}");
    };
    assert_eq!(acme_record.id, acme);
    assert_eq!(acme_record.code, "ACME");
    assert_eq!(acme_record.plan, "standard");
    assert_eq!(acme_record.last_ticket_number, 2);
    assert!(
        matches!(&workspaces[1], Record::Workspace(w) if w.id == other && w.last_ticket_number == 1)
    );

    let users = export_all(store, RecordKind::User, 10).await;
    let mut user_ids: Vec<_> = [jane.user_id, sam.user_id, fran.user_id].into();
    user_ids.sort();
    assert_eq!(
        cursors(&users),
        user_ids
            .into_iter()
            .map(ExportCursor::User)
            .collect::<Vec<_>>()
    );

    let keys = export_all(store, RecordKind::ApiKey, 10).await;
    assert_eq!(keys.len(), 2);
    for record in &keys {
        let Record::ApiKey(stored) = record else {
            panic!("{record:?}");
        };
        if stored.id == jane_key.key_id {
            assert!(jane_key.verify(&stored.secret_hash));
            assert_eq!(
                (stored.user_id, stored.scopes, stored.revoked_at),
                (jane.user_id, Scopes::all(), None)
            );
        } else {
            assert_eq!(stored.id, sam_key.key_id);
            assert!(sam_key.verify(&stored.secret_hash));
            assert_eq!(
                (stored.user_id, stored.scopes, stored.revoked_at),
                (sam.user_id, read_only, Some(revoked_at))
            );
        }
    }

    let tickets = export_all(store, RecordKind::Ticket, 10).await;
    assert_eq!(tickets.len(), 3);
    let closed = tickets
        .iter()
        .find_map(|record| match record {
            Record::Ticket(ticket) if ticket.id == second.id => Some(ticket),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (closed.workspace_id, closed.number, closed.customer_id),
        (acme, 2, jane.user_id)
    );
    assert_eq!(closed.status, TicketStatus::Closed);
    assert_eq!(closed.closed_at, Some(Timestamp::from_millis(4_000)));
    assert_eq!(
        (closed.created_at, closed.updated_at, closed.last_message_at),
        (
            Timestamp::from_millis(3_000),
            Timestamp::from_millis(4_000),
            Timestamp::from_millis(3_000)
        )
    );
    assert_eq!(closed.message_count, 1);
    assert!(
        tickets
            .iter()
            .any(|record| record.cursor() == ExportCursor::Ticket(foreign.id))
    );

    let messages = export_all(store, RecordKind::Message, 10).await;
    assert_eq!(messages.len(), 4);
    let Some(Record::Message(exported_reply)) = messages
        .iter()
        .find(|record| record.cursor() == ExportCursor::Message(first.id, 2))
    else {
        panic!("the reply is missing: {messages:?}");
    };
    assert_eq!(exported_reply.id, reply.id);
    assert_eq!(exported_reply.body, "**secret**");
    assert_eq!(exported_reply.body_format, BodyFormat::Markdown);
    assert!(exported_reply.encrypted);
    assert_eq!(
        (exported_reply.sender_id, exported_reply.sender_role),
        (sam.user_id, Role::Staff)
    );
    assert_eq!(exported_reply.sender_name, "Sam Staff");
    assert_eq!(exported_reply.sent_at, Timestamp::from_millis(2_000));

    let mismatched = store
        .export_page(RecordKind::User, Some(ExportCursor::Workspace(1)), 10)
        .await;
    assert!(
        matches!(mismatched, Err(StoreError::Other(_))),
        "{mismatched:?}"
    );
}

/// A small database written by hand, with numbers and times no live
/// database would give: what an import must keep exactly.
struct Imported {
    workspace: WorkspaceRecord,
    customer: UserRecord,
    token: ApiToken,
    records: Vec<Record>,
}

fn imported() -> Imported {
    let at = |millis: i64| Timestamp::from_millis(1_700_000_000_000 + millis);
    let workspace = WorkspaceRecord {
        id: WorkspaceId::generate(),
        numeric_id: 9,
        name: "Imported".into(),
        code: "IMPORTED".into(),
        plan: "enterprise".into(),
        last_ticket_number: 41,
        created_at: at(0),
        agency_signature_kid: None,
    };
    let customer = UserRecord {
        id: UserId::generate(),
        workspace_id: workspace.id,
        role: Role::Customer,
        name: "Ida Imported".into(),
        email: Some("ida@example.com".into()),
        created_at: at(1),
    };
    let staff = UserRecord {
        id: UserId::generate(),
        role: Role::Staff,
        name: "Stan".into(),
        email: None,
        ..customer.clone()
    };
    let token = ApiToken::generate(KeyId::generate()).unwrap();
    let key = ApiKeyRecord {
        id: token.key_id,
        user_id: customer.id,
        secret_hash: token.secret_hash(),
        scopes: Scopes::all(),
        created_at: at(2),
        revoked_at: None,
    };
    let ticket = TicketRecord {
        id: TicketId::generate(),
        workspace_id: workspace.id,
        number: 40,
        customer_id: customer.id,
        subject: "Imported ticket".into(),
        status: TicketStatus::Resolved,
        priority: Priority::High,
        created_at: at(10),
        updated_at: at(30),
        last_message_at: at(20),
        message_count: 2,
        resolved_at: Some(at(30)),
        closed_at: None,
        category: None,
        booking_id: None,
    };
    let first = MessageRecord {
        ticket_id: ticket.id,
        seq: 1,
        id: MessageId::generate(),
        sender_id: customer.id,
        sender_role: Role::Customer,
        sender_name: "Ida (old name)".into(),
        body: "It broke.".into(),
        body_format: BodyFormat::Plain,
        encrypted: false,
        sent_at: at(10),
        numeric_id: Some(500),
        task_id: None,
    };
    let second = MessageRecord {
        seq: 2,
        id: MessageId::generate(),
        sender_id: staff.id,
        sender_role: Role::Staff,
        sender_name: "Stan".into(),
        body: "_Fixed._".into(),
        body_format: BodyFormat::Markdown,
        encrypted: true,
        sent_at: at(20),
        numeric_id: Some(1000),
        ..first.clone()
    };
    let mut users = [customer.clone(), staff];
    users.sort_by_key(|user| user.id);
    let mut records = vec![Record::Workspace(workspace.clone())];
    records.extend(users.into_iter().map(Record::User));
    records.extend([
        Record::ApiKey(key),
        Record::Ticket(ticket),
        Record::Message(first),
        Record::Message(second),
    ]);
    Imported {
        workspace,
        customer,
        token,
        records,
    }
}

pub async fn messages_get_integer_ids_unique_across_tickets(store: &Arc<dyn Store>) {
    let ws = workspace(store, "NUMBERS").await;
    let ada = actor(store, ws, Role::Customer, "Ada").await;
    let one = ticket(store, &ada, "One").await;
    let two = ticket(store, &ada, "Two").await;
    let mut ids = Vec::new();
    for target in [one.id, two.id, one.id, two.id] {
        let reply = store
            .append_message(
                &ada,
                TicketRef::Id(target),
                message("Hi", Timestamp::now()),
                None,
            )
            .await
            .map(Written::into_value)
            .unwrap();
        ids.push(reply.numeric_id);
    }
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    assert!(
        ids[0] > 1,
        "the tickets' first messages come first: {ids:?}"
    );
    // Read back as given, and in the dump.
    let thread = store
        .list_messages(
            &ada,
            TicketRef::Id(one.id),
            PageRequest {
                size: PageSize::DEFAULT,
                after: None,
            },
        )
        .await
        .unwrap();
    let read: Vec<i64> = thread
        .items
        .iter()
        .map(|message| message.numeric_id)
        .collect();
    assert_eq!(read[1..], [ids[0], ids[2]]);
    let mut dumped: Vec<i64> = export_all(store, RecordKind::Message, 3)
        .await
        .into_iter()
        .filter_map(|record| match record {
            Record::Message(message) => message.numeric_id,
            _ => None,
        })
        .collect();
    assert_eq!(dumped.len(), 6);
    dumped.sort_unstable();
    dumped.dedup();
    assert_eq!(dumped.len(), 6, "integer ids are unique");
}

pub async fn imported_records_read_back_exactly(store: &Arc<dyn Store>) {
    let imported = imported();
    let (first_batch, second_batch) = imported.records.split_at(2);
    store.import_records(first_batch.to_vec()).await.unwrap();
    store.import_records(second_batch.to_vec()).await.unwrap();
    assert!(!store.is_empty().await.unwrap());

    let mut exported = Vec::new();
    for kind in RecordKind::ALL {
        exported.extend(export_all(store, kind, 2).await);
    }
    assert_eq!(exported, imported.records);

    // The imported key authenticates its token as the imported customer.
    let credentials = store
        .find_key_credentials(imported.token.key_id)
        .await
        .unwrap()
        .unwrap();
    assert!(imported.token.verify(&credentials.secret_hash));
    assert!(!credentials.revoked);
    let ida = credentials.principal.actor;
    assert_eq!(
        (ida.user_id, ida.workspace_id, ida.role),
        (imported.customer.id, imported.workspace.id, Role::Customer)
    );
    let ticket = store
        .find_ticket(&ida, TicketRef::Number(40))
        .await
        .unwrap();
    assert_eq!(ticket.status, TicketStatus::Resolved);
    assert_eq!(ticket.customer.name, "Ida Imported");
    assert_eq!(
        ticket.resolved_at,
        Some(Timestamp::from_millis(1_700_000_000_030))
    );

    // Numbering goes on after the imported rows.
    let next = ticket_at(store, &ida, "After the import", Timestamp::now()).await;
    assert_eq!(next.number, 42);
    let reply = store
        .append_message(
            &ida,
            TicketRef::Number(40),
            message("Again", Timestamp::now()),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();
    assert_eq!(reply.seq, 3);
    // So do the integer ids of messages (the new ticket's first took 1001).
    assert_eq!(reply.numeric_id, 1002);
    let created = store
        .create_workspace(NewWorkspace {
            id: WorkspaceId::generate(),
            name: "New".into(),
            code: WorkspaceCode::parse("NEW").unwrap(),
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    assert!(created.numeric_id > 9, "{created:?}");
}

pub async fn a_refused_import_batch_keeps_nothing(store: &Arc<dyn Store>) {
    let imported = imported();
    let dangling = TicketRecord {
        customer_id: UserId::generate(),
        ..match &imported.records[4] {
            Record::Ticket(ticket) => ticket.clone(),
            other => panic!("{other:?}"),
        }
    };
    let refused = store
        .import_records(vec![
            Record::Workspace(imported.workspace.clone()),
            Record::Ticket(dangling),
        ])
        .await;
    assert_eq!(refused, Err(StoreError::Conflict(Constraint::ForeignKey)));
    assert!(
        store.is_empty().await.unwrap(),
        "the refused batch left rows"
    );

    store
        .import_records(vec![Record::Workspace(imported.workspace.clone())])
        .await
        .unwrap();
    let twice = store
        .import_records(vec![
            Record::User(imported.customer.clone()),
            Record::Workspace(imported.workspace.clone()),
        ])
        .await;
    // Both backends name the constraint the schema declares.
    assert_eq!(
        twice,
        Err(StoreError::Conflict(Constraint::from_name(
            "workspace_pkey"
        )))
    );
    assert_eq!(export_all(store, RecordKind::Workspace, 10).await.len(), 1);
    assert_eq!(export_all(store, RecordKind::User, 10).await, []);
}

/// A ticket of one workspace naming a customer of another, with a message
/// from them: what an edited dump held before import checked references
/// (the store's import checks only the schema). Every lookup and list also
/// filters by the actor's workspace: the foreign customer (whose list
/// filtered on `customer_id` alone) reaches it in no way, and the ticket's
/// own workspace neither lists nor finds it (it would show the other
/// workspace's customer).
pub async fn records_crossing_workspaces_are_read_by_neither(store: &Arc<dyn Store>) {
    let at = Timestamp::from_millis(1_700_000_000_000);
    let alpha = WorkspaceRecord {
        id: WorkspaceId::generate(),
        numeric_id: 1,
        name: "Alpha".into(),
        code: "ALPHA".into(),
        plan: "standard".into(),
        last_ticket_number: 0,
        created_at: at,
        agency_signature_kid: None,
    };
    let bravo = WorkspaceRecord {
        id: WorkspaceId::generate(),
        numeric_id: 2,
        name: "Bravo".into(),
        code: "BRAVO".into(),
        last_ticket_number: 1,
        ..alpha.clone()
    };
    let user = |workspace: &WorkspaceRecord, role: Role, name: &str| UserRecord {
        id: UserId::generate(),
        workspace_id: workspace.id,
        role,
        name: name.into(),
        email: None,
        created_at: at,
    };
    let alice = user(&alpha, Role::Customer, "Alice of Alpha");
    let bob = user(&bravo, Role::Staff, "Bob of Bravo");
    let ticket = TicketRecord {
        id: TicketId::generate(),
        workspace_id: bravo.id,
        number: 1,
        customer_id: alice.id,
        subject: "Bravo's ticket".into(),
        status: TicketStatus::Open,
        priority: Priority::Normal,
        created_at: at,
        updated_at: at,
        last_message_at: at,
        message_count: 1,
        resolved_at: None,
        closed_at: None,
        category: None,
        booking_id: None,
    };
    let message = MessageRecord {
        ticket_id: ticket.id,
        seq: 1,
        id: MessageId::generate(),
        sender_id: alice.id,
        sender_role: Role::Customer,
        sender_name: alice.name.clone(),
        body: "Bravo's secret".into(),
        body_format: BodyFormat::Plain,
        encrypted: false,
        sent_at: at,
        numeric_id: Some(1),
        task_id: None,
    };
    let mut users = [alice.clone(), bob.clone()];
    users.sort_by_key(|user| user.id);
    let mut records = vec![Record::Workspace(alpha.clone()), Record::Workspace(bravo)];
    records.extend(users.into_iter().map(Record::User));
    records.extend([
        Record::Ticket(ticket.clone()),
        Record::Message(message.clone()),
    ]);
    store.import_records(records).await.unwrap();

    let as_actor = |user: &UserRecord| Actor {
        workspace_id: user.workspace_id,
        user_id: user.id,
        role: user.role,
        name: user.name.clone(),
        scope: TicketScope::ByRole,
    };
    let (alice, bob) = (as_actor(&alice), as_actor(&bob));
    let page = PageRequest {
        size: size(10),
        after: None,
    };
    for viewer in [&alice, &bob] {
        for status in [None, Some(TicketStatus::Open)] {
            let list = store
                .list_tickets(viewer, TicketFilter { status }, page)
                .await
                .unwrap();
            assert_eq!(list.items, [], "{:?} {status:?}", viewer.role);
        }
        for reference in [TicketRef::Id(ticket.id), TicketRef::Number(1)] {
            assert_eq!(
                store.find_ticket(viewer, reference).await,
                Err(StoreError::NotFound),
                "{:?}",
                viewer.role
            );
        }
    }
    // Neither reaches its thread nor writes to it: the thread and the
    // writes locate the ticket by the rule that finds and lists it.
    let thread = PageRequest {
        size: size(10),
        after: None,
    };
    for viewer in [&alice, &bob] {
        for reference in [TicketRef::Id(ticket.id), TicketRef::Number(1)] {
            let who = format!("{:?} {reference:?}", viewer.role);
            assert_eq!(
                store.list_messages(viewer, reference, thread).await,
                Err(StoreError::NotFound),
                "{who}"
            );
            assert_eq!(
                store.find_message(viewer, reference, message.id).await,
                Err(StoreError::NotFound),
                "{who}"
            );
            assert_eq!(
                store
                    .append_message(
                        viewer,
                        reference,
                        fixtures::message("hi", Timestamp::now()),
                        None
                    )
                    .await
                    .map(Written::into_value),
                Err(StoreError::NotFound),
                "{who}"
            );
            for action in [TicketAction::Resolve, TicketAction::Close] {
                assert_eq!(
                    store
                        .apply_action(viewer, reference, action, Timestamp::now(), None)
                        .await
                        .map(Written::into_value),
                    Err(StoreError::NotFound),
                    "{who} {action:?}"
                );
            }
        }
    }
    assert_eq!(
        export_all(store, RecordKind::Ticket, 10).await,
        [Record::Ticket(ticket)]
    );
    assert_eq!(
        export_all(store, RecordKind::Message, 10).await,
        [Record::Message(message)]
    );
}

pub async fn export_pages_cross_thousands_of_messages(store: &Arc<dyn Store>) {
    let imported = imported();
    let mut records: Vec<Record> = imported
        .records
        .iter()
        .filter(|record| record.kind() < RecordKind::Ticket)
        .cloned()
        .collect();
    let template = match &imported.records[4] {
        Record::Ticket(ticket) => ticket.clone(),
        other => panic!("{other:?}"),
    };
    let mut tickets: Vec<TicketRecord> = (1..=3)
        .map(|number| TicketRecord {
            id: TicketId::generate(),
            number,
            message_count: 1000,
            ..template.clone()
        })
        .collect();
    tickets.sort_by_key(|ticket| ticket.id);
    records.extend(tickets.iter().cloned().map(Record::Ticket));
    for ticket in &tickets {
        records.extend((1..=1000).map(|seq| {
            Record::Message(MessageRecord {
                ticket_id: ticket.id,
                seq,
                id: MessageId::generate(),
                sender_id: imported.customer.id,
                sender_role: Role::Customer,
                sender_name: "Ida".into(),
                body: format!("message {seq}"),
                body_format: BodyFormat::Plain,
                encrypted: seq % 2 == 0,
                sent_at: Timestamp::from_millis(1_700_000_000_000 + seq),
                numeric_id: Some(ticket.number * 1000 + seq),
                task_id: None,
            })
        }));
    }
    for batch in records.chunks(1000) {
        store.import_records(batch.to_vec()).await.unwrap();
    }

    let expected: Vec<Record> = records
        .iter()
        .filter(|record| record.kind() == RecordKind::Message)
        .cloned()
        .collect();
    let by_seven = export_all(store, RecordKind::Message, 7).await;
    assert_eq!(by_seven.len(), 3000);
    assert_eq!(by_seven, expected);
    assert_eq!(export_all(store, RecordKind::Message, 1000).await, expected);
}

// Idempotency records.

/// The server a test's claims are held by: node `node`, process
/// `instance`.
fn holder(node: &str, instance: &str) -> ClaimHolder {
    ClaimHolder {
        node: node.into(),
        instance: instance.into(),
    }
}

/// A claim of `key` for API key `api_key`, for a request with `body`, at
/// `now`: a 30-second lease, a day to live, held by node `a`'s process `1`.
fn claim_request(api_key: KeyId, key: &str, body: &str, now: Timestamp) -> ClaimRequest {
    ClaimRequest {
        api_key,
        key: IdempotencyKey::parse(key).unwrap(),
        fingerprint: Fingerprint::of_request(
            &FingerprintKey::derive(&ServerSecret::new([7; 32])),
            "POST",
            "/test",
            body.as_bytes(),
        ),
        token: ClaimToken::generate(),
        holder: holder("a", "1"),
        now,
        lease_until: Timestamp::from_millis(now.millis() + 30_000),
        expires_at: Timestamp::from_millis(now.millis() + 86_400_000),
    }
}

#[track_caller]
fn claimed(outcome: ClaimOutcome) -> Claim {
    match outcome {
        ClaimOutcome::Claimed(claim) => claim,
        other => panic!("expected a claim, got {other:?}"),
    }
}

/// Completes a claim with a response naming the message.
fn reply_completion(claim: Claim, expires_at: Timestamp) -> Completion<Message> {
    Completion {
        claim,
        expires_at,
        render: Box::new(|message: &Message| {
            Ok(StoredResponse {
                status: 201,
                location: Some(format!("/messages/{}", message.id)),
                body: format!("{} {}", message.seq, message.body).into_bytes(),
            })
        }),
    }
}

/// Completes a claim with a response naming the ticket's status.
fn ticket_completion(claim: Claim) -> Completion<Ticket> {
    Completion {
        claim,
        expires_at: Timestamp::from_millis(Timestamp::now().millis() + 60_000),
        render: Box::new(|ticket: &Ticket| {
            Ok(StoredResponse {
                status: 200,
                location: None,
                body: format!("{} {}", ticket.number, ticket.status.as_str()).into_bytes(),
            })
        }),
    }
}

async fn message_count(store: &Arc<dyn Store>, actor: &Actor, ticket: TicketId) -> i64 {
    store
        .find_ticket(actor, TicketRef::Id(ticket))
        .await
        .unwrap()
        .message_count
}

pub async fn idempotent_writes_complete_their_record_and_replay(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let api_key = key(store, jane.user_id, Scopes::all()).await.key_id;
    let opened = ticket(store, &jane, "Keyed").await;
    let now = Timestamp::now();
    let day = Timestamp::from_millis(now.millis() + 86_400_000);

    let request = claim_request(api_key, "reply-1", "hello", now);
    let claim = claimed(store.claim_idempotency_key(request.clone()).await.unwrap());
    assert_eq!(claim, request.claim());
    let response = store
        .append_message(
            &jane,
            TicketRef::Id(opened.id),
            message("hello", now),
            Some(reply_completion(claim, day)),
        )
        .await
        .map(|written| written.response.expect("a completed write"))
        .unwrap();
    assert_eq!(response.status, 201);
    assert_eq!(response.body, b"2 hello");
    assert_eq!(message_count(store, &jane, opened.id).await, 2);

    // The same request again, even right away: its response, nothing new.
    let again = claim_request(api_key, "reply-1", "hello", now);
    assert_eq!(
        store.claim_idempotency_key(again).await.unwrap(),
        ClaimOutcome::Replay(response.clone())
    );
    // Another request under the same key: refused.
    let other = claim_request(api_key, "reply-1", "goodbye", now);
    assert_eq!(
        store.claim_idempotency_key(other).await.unwrap(),
        ClaimOutcome::Mismatch
    );
    // Keys belong to their API key: another key (of the same user) starts
    // its own record.
    let second_key = key(store, jane.user_id, Scopes::all()).await.key_id;
    let elsewhere = claim_request(second_key, "reply-1", "hello", now);
    claimed(store.claim_idempotency_key(elsewhere).await.unwrap());
    assert_eq!(message_count(store, &jane, opened.id).await, 2);

    // Ticket creation and lifecycle actions complete records too.
    let create = claimed(
        store
            .claim_idempotency_key(claim_request(api_key, "open-1", "open", now))
            .await
            .unwrap(),
    );
    let created = store
        .create_ticket(
            &jane,
            new_ticket("Opened once", None, now),
            Some(ticket_completion(create)),
        )
        .await
        .map(|written| written.response.expect("a completed write"))
        .unwrap();
    assert_eq!(created.body, b"2 open");
    let close = claimed(
        store
            .claim_idempotency_key(claim_request(api_key, "close-1", "", now))
            .await
            .unwrap(),
    );
    let closed = store
        .apply_action(
            &jane,
            TicketRef::Number(2),
            TicketAction::Close,
            now,
            Some(ticket_completion(close)),
        )
        .await
        .map(|written| written.response.expect("a completed write"))
        .unwrap();
    assert_eq!(closed.body, b"2 closed");
    // Reopened since; the replay still says what the close answered.
    store
        .apply_action(&jane, TicketRef::Number(2), TicketAction::Reopen, now, None)
        .await
        .map(Written::into_value)
        .unwrap();
    assert_eq!(
        store
            .claim_idempotency_key(claim_request(api_key, "close-1", "", now))
            .await
            .unwrap(),
        ClaimOutcome::Replay(closed)
    );
}

pub async fn a_renewed_claim_holds_until_its_new_lease_ends(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let api_key = key(store, jane.user_id, Scopes::all()).await.key_id;
    let opened = ticket(store, &jane, "Long request").await;
    let t0 = Timestamp::now();
    let at = |millis: i64| Timestamp::from_millis(t0.millis() + millis);
    let claim = claimed(
        store
            .claim_idempotency_key(claim_request(api_key, "k", "hi", t0))
            .await
            .unwrap(),
    );
    // Renewed to 45 s: a retry at 40 s is told how long is left.
    assert!(
        store
            .renew_idempotency_claim(&claim, at(45_000))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .claim_idempotency_key(claim_request(api_key, "k", "hi", at(40_000)))
            .await
            .unwrap(),
        ClaimOutcome::InProgress { until: at(45_000) }
    );
    // Another token renews nothing; a completed claim is no longer held.
    let stranger = Claim {
        token: ClaimToken::generate(),
        ..claim.clone()
    };
    assert!(
        !store
            .renew_idempotency_claim(&stranger, at(90_000))
            .await
            .unwrap()
    );
    store
        .append_message(
            &jane,
            TicketRef::Id(opened.id),
            message("hi", t0),
            Some(reply_completion(claim.clone(), at(86_400_000))),
        )
        .await
        .unwrap();
    assert!(
        !store
            .renew_idempotency_claim(&claim, at(90_000))
            .await
            .unwrap()
    );
}

pub async fn a_restarted_node_releases_the_claims_its_earlier_process_left(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let api_key = key(store, jane.user_id, Scopes::all()).await.key_id;
    let opened = ticket(store, &jane, "Crash").await;
    let now = Timestamp::now();
    let held_by = |key: &str, node: &str, instance: &str| ClaimRequest {
        holder: holder(node, instance),
        ..claim_request(api_key, key, "hi", now)
    };
    // Node a's first process claimed two keys and completed one before it
    // died; its second process has claimed one of its own.
    let left = claimed(
        store
            .claim_idempotency_key(held_by("left", "a", "1"))
            .await
            .unwrap(),
    );
    let done = claimed(
        store
            .claim_idempotency_key(held_by("done", "a", "1"))
            .await
            .unwrap(),
    );
    store
        .append_message(
            &jane,
            TicketRef::Id(opened.id),
            message("done", now),
            Some(reply_completion(
                done,
                Timestamp::from_millis(now.millis() + 86_400_000),
            )),
        )
        .await
        .unwrap();
    let own = claimed(
        store
            .claim_idempotency_key(held_by("own", "a", "2"))
            .await
            .unwrap(),
    );

    assert_eq!(
        store
            .release_abandoned_claims(&holder("a", "2"))
            .await
            .unwrap(),
        1
    );
    // The abandoned claim is free at once, within its lease; the completed
    // record replays; the new process's own claim still holds.
    assert!(matches!(
        store
            .claim_idempotency_key(held_by("left", "a", "2"))
            .await
            .unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    assert!(matches!(
        store
            .claim_idempotency_key(held_by("done", "a", "2"))
            .await
            .unwrap(),
        ClaimOutcome::Replay(_)
    ));
    assert!(matches!(
        store
            .claim_idempotency_key(held_by("own", "b", "1"))
            .await
            .unwrap(),
        ClaimOutcome::InProgress { .. }
    ));
    assert!(store.renew_idempotency_claim(&own, now).await.unwrap());
    assert!(!store.renew_idempotency_claim(&left, now).await.unwrap());
}

pub async fn idempotency_claims_are_taken_over_only_after_their_lease(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let api_key = key(store, jane.user_id, Scopes::all()).await.key_id;
    let opened = ticket(store, &jane, "Crashy").await;
    let reference = TicketRef::Id(opened.id);
    let t0 = Timestamp::now();
    let at = |millis: i64| Timestamp::from_millis(t0.millis() + millis);
    let day = at(86_400_000);

    let first = claimed(
        store
            .claim_idempotency_key(claim_request(api_key, "k", "hi", t0))
            .await
            .unwrap(),
    );
    // While its lease runs, a duplicate is told to wait, another request
    // under the key is refused.
    assert_eq!(
        store
            .claim_idempotency_key(claim_request(api_key, "k", "hi", at(29_999)))
            .await
            .unwrap(),
        ClaimOutcome::InProgress { until: at(30_000) }
    );
    assert_eq!(
        store
            .claim_idempotency_key(claim_request(api_key, "k", "other", at(31_000)))
            .await
            .unwrap(),
        ClaimOutcome::Mismatch
    );
    // The lease ran out (its holder crashed, say): a retry takes over.
    let retry = claimed(
        store
            .claim_idempotency_key(claim_request(api_key, "k", "hi", at(30_000)))
            .await
            .unwrap(),
    );
    assert_ne!(retry.token, first.token);
    // The first holder comes back: its write is refused and leaves nothing.
    assert_eq!(
        store
            .append_message(
                &jane,
                reference,
                message("hi", t0),
                Some(reply_completion(first.clone(), day))
            )
            .await
            .map(|written| written.response.expect("a completed write")),
        Err(StoreError::ClaimLost)
    );
    assert_eq!(message_count(store, &jane, opened.id).await, 1);
    // Its release does not disturb the retry's claim.
    store.release_idempotency_key(&first).await.unwrap();
    let response = store
        .append_message(
            &jane,
            reference,
            message("hi", at(30_000)),
            Some(reply_completion(retry.clone(), day)),
        )
        .await
        .map(|written| written.response.expect("a completed write"))
        .unwrap();
    assert_eq!(response.body, b"2 hi");
    assert_eq!(message_count(store, &jane, opened.id).await, 2);
    // A completed record is never taken over, however late the retry.
    assert_eq!(
        store
            .claim_idempotency_key(claim_request(api_key, "k", "hi", at(3_600_000)))
            .await
            .unwrap(),
        ClaimOutcome::Replay(response)
    );
    // Nor completed twice.
    assert_eq!(
        store
            .append_message(
                &jane,
                reference,
                message("hi", t0),
                Some(reply_completion(retry, day))
            )
            .await
            .map(|written| written.response.expect("a completed write")),
        Err(StoreError::ClaimLost)
    );
    assert_eq!(message_count(store, &jane, opened.id).await, 2);
}

pub async fn failed_idempotent_writes_keep_nothing_and_release_their_claim(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let api_key = key(store, jane.user_id, Scopes::all()).await.key_id;
    let opened = ticket(store, &jane, "Closed").await;
    let reference = TicketRef::Id(opened.id);
    store
        .apply_action(
            &jane,
            reference,
            TicketAction::Close,
            Timestamp::now(),
            None,
        )
        .await
        .map(Written::into_value)
        .unwrap();
    let now = Timestamp::now();
    let day = Timestamp::from_millis(now.millis() + 86_400_000);

    let claim = claimed(
        store
            .claim_idempotency_key(claim_request(api_key, "k", "hi", now))
            .await
            .unwrap(),
    );
    assert_eq!(
        store
            .append_message(
                &jane,
                reference,
                message("hi", now),
                Some(reply_completion(claim.clone(), day))
            )
            .await
            .map(|written| written.response.expect("a completed write")),
        Err(StoreError::Lifecycle(LifecycleError::TicketClosed))
    );
    assert_eq!(message_count(store, &jane, opened.id).await, 1);
    // The claim stands until released...
    assert_eq!(
        store
            .claim_idempotency_key(claim_request(api_key, "k", "hi", now))
            .await
            .unwrap(),
        ClaimOutcome::InProgress {
            until: Timestamp::from_millis(now.millis() + 30_000)
        }
    );
    // ...by its own token only.
    let stranger = Claim {
        token: ClaimToken::generate(),
        ..claim.clone()
    };
    store.release_idempotency_key(&stranger).await.unwrap();
    assert_eq!(
        store
            .claim_idempotency_key(claim_request(api_key, "k", "hi", now))
            .await
            .unwrap(),
        ClaimOutcome::InProgress {
            until: Timestamp::from_millis(now.millis() + 30_000)
        }
    );
    store.release_idempotency_key(&claim).await.unwrap();

    // Released, the key is free again: the retry (after a reopen) writes.
    store
        .apply_action(&jane, reference, TicketAction::Reopen, now, None)
        .await
        .map(Written::into_value)
        .unwrap();
    let retry = claimed(
        store
            .claim_idempotency_key(claim_request(api_key, "k", "hi", now))
            .await
            .unwrap(),
    );
    let response = store
        .append_message(
            &jane,
            reference,
            message("hi", now),
            Some(reply_completion(retry, day)),
        )
        .await
        .map(|written| written.response.expect("a completed write"))
        .unwrap();
    assert_eq!(response.body, b"2 hi");
    // Releasing a completed record changes nothing.
    store.release_idempotency_key(&claim).await.unwrap();
    assert_eq!(
        store
            .claim_idempotency_key(claim_request(api_key, "k", "hi", now))
            .await
            .unwrap(),
        ClaimOutcome::Replay(response)
    );
}

pub async fn expired_idempotency_records_are_ignored_and_swept(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let api_key = key(store, jane.user_id, Scopes::all()).await.key_id;
    let opened = ticket(store, &jane, "Old").await;
    let reference = TicketRef::Id(opened.id);
    let t0 = Timestamp::now();
    let at = |millis: i64| Timestamp::from_millis(t0.millis() + millis);

    // Three records that expire after a second, one that lives a day.
    for (name, lifetime) in [
        ("old-1", 1_000),
        ("old-2", 1_000),
        ("old-3", 1_000),
        ("live", 86_400_000),
    ] {
        let claim = claimed(
            store
                .claim_idempotency_key(claim_request(api_key, name, name, t0))
                .await
                .unwrap(),
        );
        store
            .append_message(
                &jane,
                reference,
                message(name, t0),
                Some(reply_completion(claim, at(lifetime))),
            )
            .await
            .map(|written| written.response.expect("a completed write"))
            .unwrap();
    }
    assert_eq!(store.sweep_idempotency_keys(at(999), 10).await.unwrap(), 0);

    // Expired, a record is ignored even before it is swept: its key starts
    // afresh, for any request.
    let fresh = claimed(
        store
            .claim_idempotency_key(claim_request(api_key, "old-1", "something else", at(1_000)))
            .await
            .unwrap(),
    );
    // Released, that one is gone; the sweep takes the other two, in batches.
    store.release_idempotency_key(&fresh).await.unwrap();
    assert_eq!(store.sweep_idempotency_keys(at(2_000), 1).await.unwrap(), 1);
    assert_eq!(store.sweep_idempotency_keys(at(2_000), 1).await.unwrap(), 1);
    assert_eq!(store.sweep_idempotency_keys(at(2_000), 1).await.unwrap(), 0);
    assert!(matches!(
        store
            .claim_idempotency_key(claim_request(api_key, "live", "live", at(2_000)))
            .await
            .unwrap(),
        ClaimOutcome::Replay(_)
    ));
    assert_eq!(message_count(store, &jane, opened.id).await, 5);
}

pub async fn concurrent_claims_grant_a_key_once(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, Role::Customer, "Jane Example").await;
    let api_key = key(store, jane.user_id, Scopes::all()).await.key_id;
    let now = Timestamp::now();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                store
                    .claim_idempotency_key(claim_request(api_key, "burst", "same", now))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        match task.await.unwrap() {
            ClaimOutcome::Claimed(_) => granted += 1,
            ClaimOutcome::InProgress { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(granted, 1);
}

pub async fn ticket_rows_carry_unread_counts_previews_and_totals(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ROWS").await;
    let ada = actor(store, ws, Role::Customer, "Ada").await;
    let bob = actor(store, ws, Role::Customer, "Bob").await;
    let sam = actor(store, ws, Role::Staff, "Sam").await;
    let base = Timestamp::now().millis();
    let mut tickets = Vec::new();
    for n in 0..5 {
        let at = Timestamp::from_millis(base + n);
        tickets.push(ticket_at(store, &ada, &format!("Ticket {n}"), at).await);
    }
    ticket(store, &bob, "Not Ada's").await;
    let reply = |text: &str, n: i64| message(text, Timestamp::from_millis(base + 10 + n));
    let long = "ü".repeat(150);
    store
        .append_message(&sam, TicketRef::Id(tickets[0].id), reply(&long, 0), None)
        .await
        .unwrap();
    store
        .append_message(&sam, TicketRef::Id(tickets[0].id), reply("Done?", 1), None)
        .await
        .unwrap();
    let query = |statuses: Vec<TicketStatus>, offset: u64, limit: u32| TicketRowQuery {
        statuses,
        search: None,
        offset,
        limit,
    };
    let rows = store
        .list_ticket_rows(&ada, &query(Vec::new(), 0, 10))
        .await
        .unwrap();
    assert_eq!(rows.total, 5);
    let latest = &rows.rows[0];
    assert_eq!(latest.ticket.id, tickets[0].id);
    assert_eq!(latest.unread_count, 2);
    assert_eq!(latest.last_message, MessagePreview::Text("Done?".into()));
    assert!(rows.rows[1..].iter().all(|row| row.unread_count == 0));
    // A slice, and a filter on several statuses.
    let page = store
        .list_ticket_rows(&ada, &query(Vec::new(), 3, 10))
        .await
        .unwrap();
    assert_eq!((page.rows.len(), page.total), (2, 5));
    let past = store
        .list_ticket_rows(&ada, &query(Vec::new(), 50, 10))
        .await
        .unwrap();
    assert_eq!((past.rows.len(), past.total), (0, 5));
    let answered = store
        .list_ticket_rows(
            &ada,
            &query(
                vec![TicketStatus::InProgress, TicketStatus::AwaitingResponse],
                0,
                10,
            ),
        )
        .await
        .unwrap();
    assert_eq!(answered.total, 1);
    // Previews are cut at 100 characters, plus one to tell it was cut.
    store
        .append_message(&sam, TicketRef::Id(tickets[1].id), reply(&long, 2), None)
        .await
        .unwrap();
    let rows = store
        .list_ticket_rows(&ada, &query(Vec::new(), 0, 1))
        .await
        .unwrap();
    assert_eq!(
        rows.rows[0].last_message,
        MessagePreview::Text("ü".repeat(MessagePreview::CHARS + 1))
    );
    // Markers only move forward, and per user.
    store.mark_read(&ada, tickets[0].id, 3).await.unwrap();
    store.mark_read(&ada, tickets[0].id, 1).await.unwrap();
    let staff_rows = store
        .list_ticket_rows(&sam, &query(Vec::new(), 0, 10))
        .await
        .unwrap();
    assert_eq!(staff_rows.total, 6);
    let rows = store
        .list_ticket_rows(&ada, &query(Vec::new(), 0, 10))
        .await
        .unwrap();
    let first = rows
        .rows
        .iter()
        .find(|row| row.ticket.id == tickets[0].id)
        .unwrap();
    assert_eq!(first.unread_count, 0);
    // A search finds subjects holding its text, in either case, and a
    // ticket by its number; wildcards stand for themselves.
    let found = |search: &str| {
        let store = Arc::clone(store);
        let ada = ada.clone();
        let search = search.to_owned();
        async move {
            store
                .list_ticket_rows(
                    &ada,
                    &TicketRowQuery {
                        statuses: Vec::new(),
                        search: Some(search),
                        offset: 0,
                        limit: 10,
                    },
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(found("TICKET").await.total, 5);
    let third = found("Ticket 3").await;
    assert_eq!(third.total, 1);
    assert_eq!(third.rows[0].ticket.id, tickets[3].id);
    let by_number = found(&tickets[2].number.to_string()).await;
    assert!(
        by_number
            .rows
            .iter()
            .any(|row| row.ticket.id == tickets[2].id)
    );
    assert_eq!(found("%").await.total, 0);
    assert_eq!(found("_").await.total, 0);
    let markers = export_all(store, RecordKind::ReadMarker, 2).await;
    assert!(markers.contains(&Record::ReadMarker(ReadMarkerRecord {
        ticket_id: tickets[0].id,
        user_id: ada.user_id,
        last_read_seq: 3,
    })));
}

pub async fn messages_keep_their_task_and_lists_filter_by_task_and_time(store: &Arc<dyn Store>) {
    let ws = workspace(store, "TASKS").await;
    let ada = actor(store, ws, Role::Customer, "Ada").await;
    let sam = actor(store, ws, Role::Staff, "Sam").await;
    let thread = ticket(store, &ada, "Tasks").await;
    let (one, two) = (
        TaskRef::from_uuid("0190A5B6-7C8D-7E9F-8A0B-1C2D3E4F5A6B").unwrap(),
        TaskRef::from_uuid("0190a5b6-7c8d-7e9f-8a0b-1c2d3e4f5a6c").unwrap(),
    );
    let base = Timestamp::now().millis() + 1000;
    let mut sent = Vec::new();
    for (n, (task, who)) in [
        (Some(one), &ada),
        (None, &sam),
        (Some(two), &sam),
        (Some(one), &sam),
    ]
    .into_iter()
    .enumerate()
    {
        let at = Timestamp::from_millis(base + n as i64 * 10);
        let new = NewMessage {
            task,
            ..message(&format!("Message {n}"), at)
        };
        let written = store
            .append_message(who, TicketRef::Id(thread.id), new, None)
            .await
            .map(Written::into_value)
            .unwrap();
        assert_eq!(written.task, task);
        sent.push(written);
    }
    let page = PageRequest {
        size: size(10),
        after: None,
    };
    let listed = |filter: MessageFilter| {
        let store = Arc::clone(store);
        let ada = ada.clone();
        async move {
            store
                .list_messages_where(&ada, TicketRef::Id(thread.id), filter, page)
                .await
                .unwrap()
                .items
                .iter()
                .map(|message| (message.body.clone(), message.task))
                .collect::<Vec<_>>()
        }
    };
    let of_one = listed(MessageFilter {
        task: Some(one),
        since: None,
    })
    .await;
    assert_eq!(
        of_one,
        [
            ("Message 0".to_owned(), Some(one)),
            ("Message 3".to_owned(), Some(one))
        ]
    );
    let after_second = listed(MessageFilter {
        task: None,
        since: Some(sent[1].sent_at),
    })
    .await;
    assert_eq!(after_second.len(), 2, "{after_second:?}");
    assert_eq!(after_second[0].0, "Message 2");
    let both = listed(MessageFilter {
        task: Some(one),
        since: Some(sent[1].sent_at),
    })
    .await;
    assert_eq!(both, [("Message 3".to_owned(), Some(one))]);
    // The first message (the ticket's own) has none; everything reads back.
    let all = listed(MessageFilter::default()).await;
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].1, None);
    let records = export_all(store, RecordKind::Message, 10).await;
    let tasks: Vec<Option<TaskRef>> = records
        .iter()
        .filter_map(|record| match record {
            Record::Message(message) if message.ticket_id == thread.id => Some(message.task_id),
            _ => None,
        })
        .collect();
    assert_eq!(tasks, [None, Some(one), None, Some(two), Some(one)]);
}
