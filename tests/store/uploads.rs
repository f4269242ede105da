//! Conformance tests of the upload records.

use std::sync::Arc;

use ticketd::core::access::{Actor, Role};
use ticketd::core::id::UploadId;
use ticketd::core::message::NewMessage;
use ticketd::core::page::{PageRequest, PageSize};
use ticketd::core::ticket::TicketRef;
use ticketd::core::time::Timestamp;
use ticketd::core::upload::attach::{AttachRefusal, UploadProblem};
use ticketd::core::upload::media::KnownType;
use ticketd::core::upload::{Filename, NewUpload, Upload};
use ticketd::store::{Store, StoreError};

use crate::fixtures::{actor, message, new_ticket, ticket, workspace};

fn new_upload(name: &str, created_at: i64, expires_at: i64) -> NewUpload {
    NewUpload {
        id: UploadId::generate(),
        filename: Filename::parse(name).unwrap(),
        content_type: KnownType::Png,
        content_key: None,
        created_at: Timestamp::from_millis(created_at),
        expires_at: Timestamp::from_millis(expires_at),
    }
}

async fn people(store: &Arc<dyn Store>) -> (Actor, Actor, Actor) {
    let acme = workspace(store, "ACME").await;
    let other = workspace(store, "OTHER").await;
    (
        actor(store, acme, Role::Customer, "Ada").await,
        actor(store, acme, Role::Staff, "Sam").await,
        actor(store, other, Role::Customer, "Eve").await,
    )
}

pub async fn uploads_are_recorded_pending_then_stored_and_seen_by_their_owner_only(
    store: &Arc<dyn Store>,
) {
    let (ada, sam, eve) = people(store).await;
    let new = new_upload("Überweisung März.png", 1_000, 90_000);
    let id = new.id;
    let pending = store.create_upload(&ada, new).await.unwrap();
    assert_eq!(pending.id, id);
    assert_eq!(pending.workspace_id, ada.workspace_id);
    assert_eq!(pending.owner_id, ada.user_id);
    assert_eq!(pending.filename, "Überweisung März.png");
    assert_eq!(pending.content_type, "image/png");
    assert!(!pending.stored && !pending.attached && !pending.encrypted());
    assert_eq!((pending.size, pending.sha256.as_str()), (0, ""));
    assert_eq!(pending.created_at, Timestamp::from_millis(1_000));
    assert_eq!(pending.expires_at, Timestamp::from_millis(90_000));

    let sha = "ab".repeat(32);
    let stored = store
        .store_upload(
            id,
            5_000_000_000,
            sha.clone(),
            Timestamp::from_millis(95_000),
            None,
        )
        .await
        .unwrap()
        .value;
    assert!(stored.stored);
    // Its time to be attached counts from when its bytes arrived.
    assert_eq!(stored.expires_at, Timestamp::from_millis(95_000));
    assert_eq!(
        (stored.size, stored.sha256.as_str()),
        (5_000_000_000, sha.as_str())
    );
    assert_eq!(store.find_upload(&ada, id).await.unwrap(), stored);
    // Stored once: a second completion finds nothing pending.
    assert_eq!(
        store
            .store_upload(id, 1, sha.clone(), Timestamp::from_millis(95_000), None)
            .await
            .map(|written| written.value),
        Err(StoreError::NotFound)
    );
    for stranger in [&sam, &eve] {
        assert_eq!(
            store.find_upload(stranger, id).await,
            Err(StoreError::NotFound)
        );
    }
    assert_eq!(
        store.find_upload(&ada, UploadId::generate()).await,
        Err(StoreError::NotFound)
    );
}

pub async fn the_sweep_takes_expired_unattached_uploads_in_steps(store: &Arc<dyn Store>) {
    let (ada, _, _) = people(store).await;
    let expired = store
        .create_upload(&ada, new_upload("old.png", 0, 10_000))
        .await
        .unwrap();
    let live = store
        .create_upload(&ada, new_upload("new.png", 0, 50_000))
        .await
        .unwrap();
    let now = Timestamp::from_millis(20_000);

    assert_eq!(
        store.uploads_to_sweep(now, 100).await.unwrap(),
        [expired.id]
    );
    assert!(!store.start_deleting_upload(live.id, now).await.unwrap());
    // Deleting only applies to an upload marked deleting.
    store.delete_upload(live.id).await.unwrap();
    assert!(store.find_upload(&ada, live.id).await.is_ok());

    assert!(store.start_deleting_upload(expired.id, now).await.unwrap());
    // Marked deleting, it is swept whatever the time (a crash after the
    // mark is finished by the next sweep).
    let before = Timestamp::from_millis(0);
    assert_eq!(
        store.uploads_to_sweep(before, 100).await.unwrap(),
        [expired.id]
    );
    assert!(
        store
            .start_deleting_upload(expired.id, before)
            .await
            .unwrap()
    );
    // A deleting upload is not stored any more.
    assert_eq!(
        store
            .store_upload(expired.id, 1, "00".repeat(32), now, None)
            .await,
        Err(StoreError::NotFound)
    );
    store.delete_upload(expired.id).await.unwrap();
    assert_eq!(
        store.find_upload(&ada, expired.id).await,
        Err(StoreError::NotFound)
    );
    assert!(!store.start_deleting_upload(expired.id, now).await.unwrap());
    assert!(store.uploads_to_sweep(now, 100).await.unwrap().is_empty());

    // The sweep walks in batches, oldest expiry first.
    let mut ids = Vec::new();
    for expiry in [3_000, 1_000, 2_000] {
        ids.push(
            store
                .create_upload(&ada, new_upload("a.png", 0, expiry))
                .await
                .unwrap()
                .id,
        );
    }
    assert_eq!(
        store.uploads_to_sweep(now, 2).await.unwrap(),
        [ids[1], ids[2]]
    );
}

pub async fn an_upload_url_is_used_once(store: &Arc<dyn Store>) {
    let expiry = Timestamp::from_millis(60_000);
    let nonce = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210_u128;
    assert!(store.use_upload_url(nonce, expiry).await.unwrap());
    assert!(!store.use_upload_url(nonce, expiry).await.unwrap());
    assert!(store.use_upload_url(nonce + 1, expiry).await.unwrap());
    assert!(store.use_upload_url(u128::MAX, expiry).await.unwrap());
    let early = Timestamp::from_millis(59_999);
    assert_eq!(store.sweep_upload_urls(early, 100).await.unwrap(), 0);
    assert!(!store.use_upload_url(nonce, expiry).await.unwrap());
    assert_eq!(store.sweep_upload_urls(expiry, 2).await.unwrap(), 2);
    assert_eq!(store.sweep_upload_urls(expiry, 2).await.unwrap(), 1);
}

/// An hour from now: when the uploads of the attaching tests expire (the
/// tickets they attach to are opened now).
fn in_an_hour() -> Timestamp {
    Timestamp::now().plus(std::time::Duration::from_secs(3600))
}

/// A stored upload of `owner`'s, of `size` bytes, swept in an hour unless
/// attached.
async fn stored_upload(store: &Arc<dyn Store>, owner: &Actor, name: &str, size: u64) -> Upload {
    let expires = in_an_hour();
    let created = store
        .create_upload(owner, new_upload(name, 0, expires.millis()))
        .await
        .unwrap();
    store
        .store_upload(created.id, size, "cd".repeat(32), expires, None)
        .await
        .unwrap()
        .value
}

/// Two fresh uploads of Ada's, of 3 bytes each.
async fn two_small_uploads(store: &Arc<dyn Store>, ada: &Actor) -> Vec<UploadId> {
    let mut ids = Vec::new();
    for name in ["left.png", "right.png"] {
        ids.push(stored_upload(store, ada, name, 3).await.id);
    }
    ids
}

fn reply(text: &str, attachments: Vec<UploadId>) -> NewMessage {
    let mut new = message(text, Timestamp::from_millis(1_000));
    new.attachments = attachments;
    new
}

pub async fn messages_attach_their_senders_uploads_in_one_write(store: &Arc<dyn Store>) {
    let (ada, sam, _) = people(store).await;
    let ticket = ticket(store, &ada, "Broken screen").await;
    let one = stored_upload(store, &ada, "front.png", 100).await;
    let two = stored_upload(store, &ada, "back.png", 0).await;
    let sent = store
        .append_message(
            &ada,
            TicketRef::Id(ticket.id),
            reply("Photos", vec![two.id, one.id]),
            None,
        )
        .await
        .unwrap()
        .value;
    assert_eq!(sent.attachments, [two.attachment(), one.attachment()]);
    assert_eq!(sent.attachments[0].filename, "back.png");
    // Every read of the message carries them, for the owner and for staff.
    for reader in [&ada, &sam] {
        let page = store
            .list_messages(
                reader,
                TicketRef::Id(ticket.id),
                PageRequest {
                    size: PageSize::new(10).unwrap(),
                    after: None,
                },
            )
            .await
            .unwrap();
        assert!(
            page.items[0].attachments.is_empty(),
            "the first message has none"
        );
        assert_eq!(page.items[1].attachments, sent.attachments);
        let found = store
            .find_message(reader, TicketRef::Id(ticket.id), sent.id)
            .await
            .unwrap();
        assert_eq!(found.attachments, sent.attachments);
    }
    // A message's file is found by the message, and only by it.
    let by_message = store.attached_upload(sent.id, one.id).await.unwrap();
    assert_eq!((by_message.id, by_message.size), (one.id, 100));
    let first_message = store
        .list_messages(
            &ada,
            TicketRef::Id(ticket.id),
            PageRequest {
                size: PageSize::new(1).unwrap(),
                after: None,
            },
        )
        .await
        .unwrap()
        .items[0]
        .id;
    let never_uploaded = UploadId::generate();
    for (message, upload) in [(sent.id, never_uploaded), (first_message, one.id)] {
        assert_eq!(
            store.attached_upload(message, upload).await,
            Err(StoreError::NotFound)
        );
    }
    // Attached, an upload is out of the sweep's reach.
    assert!(store.find_upload(&ada, one.id).await.unwrap().attached);
    let later = in_an_hour().plus(std::time::Duration::from_secs(3600));
    assert!(store.uploads_to_sweep(later, 100).await.unwrap().is_empty());
    assert!(!store.start_deleting_upload(one.id, later).await.unwrap());

    // A new ticket's first message attaches as a reply does.
    let three = stored_upload(store, &ada, "receipt.pdf", 7).await;
    let mut opening = new_ticket("With a receipt", None, Timestamp::from_millis(2_000));
    opening.first_message.attachments = vec![three.id];
    let opened = store
        .create_ticket(&ada, opening, None)
        .await
        .unwrap()
        .value;
    let first = store
        .list_messages(
            &ada,
            TicketRef::Id(opened.id),
            PageRequest {
                size: PageSize::new(10).unwrap(),
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items[0].attachments, [three.attachment()]);
}

pub async fn uploads_that_cannot_be_attached_refuse_the_whole_message(store: &Arc<dyn Store>) {
    let (ada, sam, eve) = people(store).await;
    let ticket = ticket(store, &ada, "Broken screen").await;
    let mine = stored_upload(store, &ada, "mine.png", 10).await;
    let sams = stored_upload(store, &sam, "sams.png", 10).await;
    let eves = stored_upload(store, &eve, "eves.png", 10).await;
    let pending = store
        .create_upload(&ada, new_upload("pending.png", 0, in_an_hour().millis()))
        .await
        .unwrap();
    let refused = store
        .append_message(
            &ada,
            TicketRef::Id(ticket.id),
            reply(
                "Files",
                vec![
                    mine.id,
                    sams.id,
                    eves.id,
                    pending.id,
                    UploadId::generate(),
                    mine.id,
                ],
            ),
            None,
        )
        .await;
    assert_eq!(
        refused.map(|written| written.value),
        Err(StoreError::Attachments(AttachRefusal::Uploads(vec![
            (1, UploadProblem::Unknown),
            (2, UploadProblem::Unknown),
            (3, UploadProblem::Unknown),
            (4, UploadProblem::Unknown),
            (5, UploadProblem::AlreadyAttached),
        ])))
    );
    // Nothing was written: no message, and the good upload is still free.
    let after = store
        .find_ticket(&ada, TicketRef::Id(ticket.id))
        .await
        .unwrap();
    assert_eq!(after.message_count, 1);
    assert!(!store.find_upload(&ada, mine.id).await.unwrap().attached);

    store
        .append_message(
            &ada,
            TicketRef::Id(ticket.id),
            reply("One", vec![mine.id]),
            None,
        )
        .await
        .unwrap();
    let again = store
        .append_message(
            &ada,
            TicketRef::Id(ticket.id),
            reply("Again", vec![mine.id]),
            None,
        )
        .await
        .map(|written| written.value);
    assert_eq!(
        again,
        Err(StoreError::Attachments(AttachRefusal::Uploads(vec![(
            0,
            UploadProblem::AlreadyAttached
        )])))
    );
    let mut many = Vec::new();
    for n in 0..11 {
        many.push(stored_upload(store, &ada, &format!("{n}.png"), 1).await.id);
    }
    let too_many = store
        .append_message(&ada, TicketRef::Id(ticket.id), reply("Many", many), None)
        .await
        .map(|written| written.value);
    assert_eq!(
        too_many,
        Err(StoreError::Attachments(AttachRefusal::TooMany {
            limit: 10
        }))
    );
    // The limits come with the message: the store applies those it is given.
    let mut strict = reply("Two files", two_small_uploads(store, &ada).await);
    strict.attach_limits.per_message = 1;
    assert_eq!(
        store
            .append_message(&ada, TicketRef::Id(ticket.id), strict.clone(), None)
            .await
            .map(|written| written.value.id),
        Err(StoreError::Attachments(AttachRefusal::TooMany { limit: 1 }))
    );
    strict.attach_limits.per_message = 2;
    strict.attach_limits.per_ticket_bytes = 5;
    assert_eq!(
        store
            .append_message(&ada, TicketRef::Id(ticket.id), strict, None)
            .await
            .map(|written| written.value.id),
        Err(StoreError::Attachments(AttachRefusal::TicketFull {
            limit: 5
        }))
    );
    assert_eq!(
        store
            .find_ticket(&ada, TicketRef::Id(ticket.id))
            .await
            .unwrap()
            .message_count,
        2
    );
}
