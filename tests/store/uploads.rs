//! Conformance tests of the upload records.

use std::sync::Arc;

use ticketd::core::access::{Actor, Role};
use ticketd::core::id::UploadId;
use ticketd::core::time::Timestamp;
use ticketd::core::upload::media::KnownType;
use ticketd::core::upload::{Filename, NewUpload};
use ticketd::store::{Store, StoreError};

use crate::fixtures::{actor, workspace};

fn new_upload(name: &str, created_at: i64, expires_at: i64) -> NewUpload {
    NewUpload {
        id: UploadId::generate(),
        filename: Filename::parse(name).unwrap(),
        content_type: KnownType::Png,
        encrypted: false,
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
    assert!(!pending.stored && !pending.attached && !pending.encrypted);
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
        )
        .await
        .unwrap();
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
            .store_upload(id, 1, sha.clone(), Timestamp::from_millis(95_000))
            .await,
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
            .store_upload(expired.id, 1, "00".repeat(32), now)
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
