//! The data key registry, the server secret's check value and re-sealing:
//! the conformance tests of the storage side of encryption at rest (the sealing itself is the
//! encryption layer's, above the store).

use std::sync::Arc;

use ticketd::core::access::Actor;
use ticketd::core::crypto::{self, DataKey, DataKeyId};
use ticketd::core::message::NewMessage;
use ticketd::core::server_secret::ServerSecret;
use ticketd::core::text::MessageBody;
use ticketd::core::ticket::TicketRef;
use ticketd::core::time::Timestamp;
use ticketd::store::Constraint;
use ticketd::store::Written;
use ticketd::store::{RegisteredKey, Reseal, Store, StoreError, StoredBody};

use crate::fixtures::{actor, message, ticket, workspace};

fn registration(key: &DataKey) -> RegisteredKey {
    RegisteredKey {
        id: key.id(),
        check_value: crypto::check_value(key).unwrap(),
        retiring: false,
    }
}

fn ids(keys: &[RegisteredKey]) -> Vec<(DataKeyId, bool)> {
    keys.iter().map(|key| (key.id, key.retiring)).collect()
}

/// A message whose body is `text` sealed with `key` (or plaintext marked
/// encrypted, as a body from before encryption is stored).
fn sealed(key: Option<&DataKey>, ticket: &ticketd::core::ticket::Ticket, text: &str) -> NewMessage {
    let mut new = message(text, Timestamp::now());
    new.encrypted = true;
    if let Some(key) = key {
        let body = crypto::seal(key, ticket.id, new.id, text).unwrap();
        new.body = MessageBody::sealed(body);
    }
    new
}

async fn append(
    store: &Arc<dyn Store>,
    actor: &Actor,
    ticket: &ticketd::core::ticket::Ticket,
    new: NewMessage,
) -> Result<String, StoreError> {
    store
        .append_message(actor, TicketRef::Id(ticket.id), new, None)
        .await
        .map(Written::into_value)
        .map(|message| message.body)
}

pub async fn keys_register_once_and_a_foreign_key_file_is_refused(store: &Arc<dyn Store>) {
    let (a, b, c) = (
        DataKey::generate().unwrap(),
        DataKey::generate().unwrap(),
        DataKey::generate().unwrap(),
    );
    assert_eq!(store.encryption_keys().await.unwrap(), Vec::new());
    let at = Timestamp::from_millis(1_000);
    let first = store
        .register_encryption_keys(vec![registration(&a)], at)
        .await
        .unwrap();
    assert_eq!(ids(&first), vec![(a.id(), false)]);
    // Registering again changes nothing; a new key beside a known one is added.
    let later = Timestamp::from_millis(2_000);
    let both = store
        .register_encryption_keys(vec![registration(&a), registration(&b)], later)
        .await
        .unwrap();
    assert_eq!(ids(&both), vec![(a.id(), false), (b.id(), false)]);
    assert_eq!(both[0].check_value, first[0].check_value);
    assert!(crypto::verify_check_value(&a, &both[0].check_value));
    // Keys none of which is registered belong to another database.
    let foreign = store
        .register_encryption_keys(vec![registration(&c)], later)
        .await
        .unwrap();
    assert_eq!(foreign, both);
    assert_eq!(store.encryption_keys().await.unwrap(), both);
}

pub async fn sealed_bodies_need_a_registered_key_that_is_not_retiring(store: &Arc<dyn Store>) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, ticketd::core::access::Role::Customer, "Jane").await;
    let thread = ticket(store, &jane, "Keys").await;
    let (a, b) = (DataKey::generate().unwrap(), DataKey::generate().unwrap());

    let unregistered = append(store, &jane, &thread, sealed(Some(&a), &thread, "x")).await;
    assert_eq!(
        unregistered,
        Err(StoreError::Conflict(Constraint::SealedKey))
    );
    store
        .register_encryption_keys(vec![registration(&a), registration(&b)], Timestamp::now())
        .await
        .unwrap();
    let body = append(store, &jane, &thread, sealed(Some(&a), &thread, "under a"))
        .await
        .unwrap();
    assert_eq!(crypto::sealed_key_id(&body), Some(a.id()));

    assert_eq!(
        store
            .retire_encryption_keys_except(DataKeyId::generate())
            .await,
        Err(StoreError::NotFound)
    );
    store.retire_encryption_keys_except(b.id()).await.unwrap();
    let mut state = ids(&store.encryption_keys().await.unwrap());
    state.sort();
    let mut expected = vec![(a.id(), true), (b.id(), false)];
    expected.sort();
    assert_eq!(state, expected);
    let retiring = append(store, &jane, &thread, sealed(Some(&a), &thread, "late")).await;
    assert_eq!(retiring, Err(StoreError::Conflict(Constraint::SealedKey)));
    append(store, &jane, &thread, sealed(Some(&b), &thread, "under b"))
        .await
        .unwrap();
    // Unencrypted messages, and encrypted plaintext from before encryption,
    // are not the registry's concern.
    append(store, &jane, &thread, message("plain", Timestamp::now()))
        .await
        .unwrap();
    append(store, &jane, &thread, sealed(None, &thread, "legacy"))
        .await
        .unwrap();
    // The refused writes left nothing: first message, a, b, plain, legacy.
    let found = store
        .find_ticket(&jane, TicketRef::Id(thread.id))
        .await
        .unwrap();
    assert_eq!(found.message_count, 5);
}

pub async fn retiring_keys_are_deleted_only_once_nothing_is_sealed_with_them(
    store: &Arc<dyn Store>,
) {
    let ws = workspace(store, "ACME").await;
    let jane = actor(store, ws, ticketd::core::access::Role::Customer, "Jane").await;
    let (a, b) = (DataKey::generate().unwrap(), DataKey::generate().unwrap());
    store
        .register_encryption_keys(vec![registration(&a), registration(&b)], Timestamp::now())
        .await
        .unwrap();
    let one = ticket(store, &jane, "one").await;
    let two = ticket(store, &jane, "two").await;
    let mut written = Vec::new();
    for (thread, text) in [
        (&one, "1a"),
        (&two, "2a"),
        (&one, "1b"),
        (&two, "2b"),
        (&one, "1c"),
    ] {
        let key = if text.ends_with('b') { &b } else { &a };
        append(store, &jane, thread, sealed(Some(key), thread, text))
            .await
            .unwrap();
        written.push(text);
    }
    append(store, &jane, &one, sealed(None, &one, "legacy"))
        .await
        .unwrap();
    assert_eq!(written.len(), 5);

    // Not retiring yet: never deleted.
    assert!(!store.delete_encryption_key(a.id()).await.unwrap());
    store.retire_encryption_keys_except(b.id()).await.unwrap();
    assert!(
        !store.delete_encryption_key(a.id()).await.unwrap(),
        "a is in use"
    );
    assert!(
        !store.delete_encryption_key(b.id()).await.unwrap(),
        "b is current"
    );

    // Every encrypted body not sealed with b, in (ticket, seq) order, paged.
    let mut pending: Vec<StoredBody> = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .encrypted_messages(Some(b.id()), after, 2)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some((last.ticket_id, last.seq));
        pending.extend(page);
    }
    // Thread one: 1 unencrypted, 2 (a), 3 (b), 4 (a), 5 (plaintext);
    // thread two: 1 unencrypted, 2 (a), 3 (b).
    let mut expected: Vec<(ticketd::core::id::TicketId, i64)> =
        vec![(one.id, 2), (one.id, 4), (one.id, 5), (two.id, 2)];
    expected.sort();
    let listed: Vec<_> = pending
        .iter()
        .map(|body| (body.ticket_id, body.seq))
        .collect();
    assert_eq!(listed, expected);
    let all = store.encrypted_messages(None, None, 100).await.unwrap();
    assert_eq!(all.len(), 6, "every encrypted message, whatever its key");

    // Re-seal everything pending under b; a stale body is not overwritten.
    let reseals: Vec<Reseal> = pending
        .iter()
        .map(|stored| Reseal {
            ticket_id: stored.ticket_id,
            seq: stored.seq,
            old: stored.body.clone(),
            new: crypto::seal(&b, stored.ticket_id, stored.id, "resealed")
                .unwrap()
                .into_string(),
        })
        .collect();
    let mut stale = reseals[0].clone();
    stale.old = "not what is stored".into();
    assert_eq!(store.reseal_messages(vec![stale]).await.unwrap(), 0);
    assert_eq!(store.reseal_messages(reseals).await.unwrap(), 4);
    assert_eq!(
        store
            .encrypted_messages(Some(b.id()), None, 100)
            .await
            .unwrap(),
        Vec::new()
    );
    // A re-seal under a retiring key is refused, and changes nothing.
    let target = &all[0];
    let refused = store
        .reseal_messages(vec![Reseal {
            ticket_id: target.ticket_id,
            seq: target.seq,
            old: store.encrypted_messages(None, None, 1).await.unwrap()[0]
                .body
                .clone(),
            new: crypto::seal(&a, target.ticket_id, target.id, "back")
                .unwrap()
                .into_string(),
        }])
        .await;
    assert_eq!(refused, Err(StoreError::Conflict(Constraint::SealedKey)));

    assert!(store.delete_encryption_key(a.id()).await.unwrap());
    assert_eq!(
        ids(&store.encryption_keys().await.unwrap()),
        vec![(b.id(), false)]
    );
    assert!(
        !store.delete_encryption_key(a.id()).await.unwrap(),
        "gone already"
    );
}

pub async fn the_server_secret_registers_once(store: &Arc<dyn Store>) {
    let (one, two) = (
        ServerSecret::generate().unwrap(),
        ServerSecret::generate().unwrap(),
    );
    assert_eq!(store.server_secret_check().await.unwrap(), None);
    let at = Timestamp::from_millis(1_000);
    // Nodes adding a secret at once: the first registration wins, and
    // every one of them is told which.
    let (a, b) = tokio::join!(
        store.register_server_secret(one.check_value(), at),
        store.register_server_secret(two.check_value(), at),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    assert!(
        one.verify_check_value(&a) != two.verify_check_value(&a),
        "exactly one of the two secrets is registered"
    );
    let winner = if one.verify_check_value(&a) {
        &one
    } else {
        &two
    };
    let loser = if one.verify_check_value(&a) {
        &two
    } else {
        &one
    };
    // Registering again, the same or another secret, changes nothing.
    assert_eq!(
        store
            .register_server_secret(loser.check_value(), at)
            .await
            .unwrap(),
        a
    );
    assert_eq!(
        store
            .register_server_secret(winner.check_value(), at)
            .await
            .unwrap(),
        a
    );
    assert_eq!(store.server_secret_check().await.unwrap(), Some(a));
}
