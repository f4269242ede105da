//! The upload use cases over each backend and its default blob store:
//! checked bytes are kept, refused or broken ones leave nothing, the sweep
//! takes expired uploads with their bytes, an upload URL works once, and
//! a sealed upload is stored sealed, opens whole or in part, and holds its
//! data key until its content key is re-sealed.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use sha2::{Digest, Sha256};
use ticketd::blob::inspect::UploadRefusal;
use ticketd::blob::{BlobError, BlobStore, ByteStream};
use ticketd::core::access::{KeyWorkspace, Principal, Role, Scopes};
use ticketd::core::crypto::{self, ContentKey, DataKey, Keyring};
use ticketd::core::id::KeyId;
use ticketd::core::id::UploadId;
use ticketd::core::server_secret::{SECRET_BYTES, ServerSecret};
use ticketd::core::time::Timestamp;
use ticketd::core::upload::media::MediaError;
use ticketd::core::upload::signed_url::{SignedUrlError, UploadUrlKey};
use ticketd::core::upload::{Filename, Upload};
use ticketd::service::{
    Clock, ContentKeys, IncomingFile, RandomIds, ServiceError, UploadError, UploadPolicy, Uploads,
};
use ticketd::store::{Constraint, RegisteredKey, Store, StoreError, UploadKeyReseal};

use crate::fixtures::{actor, workspace};

/// A clock the test moves.
#[derive(Default)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

impl TestClock {
    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

/// Content keys under a fixed keyring.
struct TestKeys(Keyring);

#[async_trait::async_trait]
impl ContentKeys for TestKeys {
    fn generate(&self, upload: UploadId) -> Result<(ContentKey, String), ServiceError> {
        let key = ContentKey::generate().unwrap();
        let sealed = crypto::seal_content_key(self.0.current(), upload, &key).unwrap();
        Ok((key, sealed))
    }

    async fn open(&self, upload: UploadId, sealed: &str) -> Result<ContentKey, ServiceError> {
        crypto::open_content_key(&self.0, upload, sealed)
            .map_err(|error| ServiceError::Internal(error.to_string()))
    }

    async fn refresh(&self) {}
}

/// A new data key, registered with `store`.
async fn registered_key(store: &Arc<dyn Store>) -> DataKey {
    let key = DataKey::generate().unwrap();
    let registration = RegisteredKey {
        id: key.id(),
        check_value: crypto::check_value(&key).unwrap(),
        retiring: false,
    };
    let mut known = store.encryption_keys().await.unwrap();
    known.push(registration);
    store
        .register_encryption_keys(known, Timestamp::from_millis(0))
        .await
        .unwrap();
    key
}

/// The use cases over `store` and `blobs`, on `clock`, sealing under a
/// key `store` does not know (for tests of plain uploads).
fn uploads(
    store: &Arc<dyn Store>,
    blobs: &Arc<dyn BlobStore>,
    clock: &Arc<TestClock>,
    policy: UploadPolicy,
) -> Uploads {
    let keys = Keyring::new(vec![DataKey::generate().unwrap()]).unwrap();
    sealing_uploads(store, blobs, clock, policy, keys)
}

/// The use cases over `store` and `blobs`, on `clock`, sealing under
/// `keys`.
fn sealing_uploads(
    store: &Arc<dyn Store>,
    blobs: &Arc<dyn BlobStore>,
    clock: &Arc<TestClock>,
    policy: UploadPolicy,
    keys: Keyring,
) -> Uploads {
    Uploads::new(
        Arc::clone(store),
        Arc::clone(blobs),
        Arc::new(TestKeys(keys)),
        Arc::clone(clock) as Arc<dyn Clock>,
        Arc::new(RandomIds),
        UploadUrlKey::new(&ServerSecret::new([7; SECRET_BYTES])),
        policy,
    )
}

fn png(len: usize) -> Vec<u8> {
    let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
    data.extend((0..len.saturating_sub(8)).map(|i| (i % 251) as u8));
    data
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn chunks(data: &[u8]) -> ByteStream {
    let pieces: Vec<io::Result<Bytes>> = data
        .chunks(64 * 1024)
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    Box::pin(stream::iter(pieces))
}

fn file(name: &str, content_type: &str) -> IncomingFile {
    IncomingFile {
        filename: Filename::parse(name).unwrap(),
        content_type: content_type.to_owned(),
        encrypted: false,
    }
}

async fn read(blobs: &dyn BlobStore, id: UploadId) -> Result<Vec<u8>, BlobError> {
    collect(blobs.get(id, None).await?).await
}

async fn collect(mut stream: ByteStream) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(|error| BlobError::Source(error.into()))?);
    }
    Ok(out)
}

pub async fn uploads_keep_checked_bytes_and_nothing_of_refused_ones(
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
) {
    let clock = Arc::new(TestClock::default());
    let policy = UploadPolicy {
        max_bytes: 2 * 1024 * 1024,
        ..UploadPolicy::default()
    };
    let uploads = uploads(&store, &blobs, &clock, policy);
    let ada = actor(
        &store,
        workspace(&store, "ACME").await,
        Role::Customer,
        "Ada",
    )
    .await;

    let data = png(1024 * 1024 + 3);
    let upload = uploads
        .upload(
            &ada,
            file("screen shot.png", "image/png"),
            chunks(&data),
            None,
        )
        .await
        .unwrap()
        .value;
    assert!(upload.stored);
    assert_eq!(upload.size, data.len() as u64);
    assert_eq!(upload.sha256, sha256_hex(&data));
    assert_eq!(upload.content_type, "image/png");
    assert_eq!(read(blobs.as_ref(), upload.id).await.unwrap(), data);
    assert_eq!(store.find_upload(&ada, upload.id).await.unwrap(), upload);

    let mut exe = b"MZ\x90\0".to_vec();
    exe.resize(10_000, 0);
    let refused = uploads
        .upload(&ada, file("x.png", "image/png"), chunks(&exe), None)
        .await;
    assert!(
        matches!(
            refused,
            Err(UploadError::Refused(UploadRefusal::Media(
                MediaError::ContentMismatch(_)
            )))
        ),
        "{refused:?}"
    );
    let refused = uploads
        .upload(
            &ada,
            file("x.svg", "image/svg+xml"),
            chunks(b"<svg/>"),
            None,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(UploadError::Refused(UploadRefusal::Media(
                MediaError::NotAllowed
            )))
        ),
        "{refused:?}"
    );
    let too_large = uploads
        .upload(
            &ada,
            file("big.png", "image/png"),
            chunks(&png(3 * 1024 * 1024)),
            None,
        )
        .await;
    assert!(
        matches!(too_large, Err(UploadError::Refused(UploadRefusal::TooLarge { limit })) if limit == 2 * 1024 * 1024),
        "{too_large:?}"
    );
    let broken: ByteStream = Box::pin(stream::iter(vec![
        Ok(Bytes::from(png(100_000))),
        Err(io::Error::other("the client went away")),
    ]));
    let broken = uploads
        .upload(&ada, file("half.png", "image/png"), broken, None)
        .await;
    assert!(matches!(broken, Err(UploadError::Incomplete)), "{broken:?}");

    // Nothing of the refused or broken files is left, record or bytes:
    // only the first upload is there for the sweep to find, once expired.
    clock.advance(Duration::from_secs(24 * 60 * 60));
    assert_eq!(
        store.uploads_to_sweep(clock.now(), 100).await.unwrap(),
        [upload.id]
    );
    assert_eq!(uploads.sweep_once().await.unwrap(), 1);
    assert_eq!(
        store.find_upload(&ada, upload.id).await,
        Err(StoreError::NotFound)
    );
    assert!(matches!(
        read(blobs.as_ref(), upload.id).await,
        Err(BlobError::NotFound)
    ));
    assert_eq!(uploads.sweep_once().await.unwrap(), 0);
}

pub async fn an_upload_url_works_once_until_it_expires(
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
) {
    let clock = Arc::new(TestClock::default());
    let uploads = uploads(&store, &blobs, &clock, UploadPolicy::default());
    let ada = actor(
        &store,
        workspace(&store, "ACME").await,
        Role::Customer,
        "Ada",
    )
    .await;
    let principal = Principal {
        key_id: KeyId::generate(),
        scopes: Scopes::all(),
        actor: ada.clone(),
        workspace: KeyWorkspace {
            numeric_id: 1,
            code: "ACME".into(),
            agency_signature_kid: None,
        },
    };
    let (token, expires_at) = uploads.sign_url(&principal);
    assert_eq!(expires_at, Timestamp::from_millis(15 * 60 * 1000));
    let grant = uploads.redeem_url(&token).await.unwrap();
    assert_eq!(
        (grant.key_id, grant.user_id),
        (principal.key_id, ada.user_id)
    );
    assert!(matches!(
        uploads.redeem_url(&token).await,
        Err(UploadError::UrlUsed)
    ));

    let (other, _) = uploads.sign_url(&principal);
    assert_ne!(other, token);
    let mut altered = other.clone().into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    assert!(matches!(
        uploads.redeem_url(&altered).await,
        Err(UploadError::Url(
            SignedUrlError::Forged | SignedUrlError::Malformed
        ))
    ));
    clock.advance(Duration::from_secs(15 * 60));
    assert!(matches!(
        uploads.redeem_url(&other).await,
        Err(UploadError::Url(SignedUrlError::Expired))
    ));
    // The sweep forgets used URLs once they expired.
    uploads.sweep_once().await.unwrap();
}

pub async fn a_sealed_upload_is_stored_sealed_and_holds_its_key_until_resealed(
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
) {
    let clock = Arc::new(TestClock::default());
    let old = registered_key(&store).await;
    let uploads = sealing_uploads(
        &store,
        &blobs,
        &clock,
        UploadPolicy::default(),
        Keyring::new(vec![old.clone()]).unwrap(),
    );
    let ada = actor(
        &store,
        workspace(&store, "ACME").await,
        Role::Customer,
        "Ada",
    )
    .await;
    let data = png(200_000);
    let sealed_file = IncomingFile {
        encrypted: true,
        ..file("scan.png", "image/png")
    };
    let upload = uploads
        .upload(&ada, sealed_file.clone(), chunks(&data), None)
        .await
        .unwrap()
        .value;
    assert!(upload.encrypted());
    assert_eq!(upload.size, data.len() as u64);
    assert_eq!(
        upload.sha256,
        sha256_hex(&data),
        "the digest is the plaintext's"
    );
    let raw = read(blobs.as_ref(), upload.id).await.unwrap();
    assert_eq!(
        raw.len() as u64,
        crypto::stream::sealed_len(data.len() as u64)
    );
    assert!(!raw.starts_with(b"\x89PNG"));
    let whole = collect(uploads.read(&upload, None).await.unwrap()).await;
    assert!(whole.unwrap() == data);
    let part = collect(uploads.read(&upload, Some(65_000..=140_000)).await.unwrap()).await;
    assert!(part.unwrap() == data[65_000..=140_000]);

    // A rotation's steps: the old key retires, and stays while the
    // upload's content key is sealed with it.
    let new = registered_key(&store).await;
    store.retire_encryption_keys_except(new.id()).await.unwrap();
    assert!(!store.delete_encryption_key(old.id()).await.unwrap());
    // Nothing new may be sealed with the retiring key.
    let refused = uploads
        .upload(&ada, sealed_file, chunks(&data), None)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, UploadError::Service(ServiceError::Unavailable(_))),
        "{refused:?}"
    );
    let pending = store
        .uploads_to_sweep(Timestamp::from_millis(4_000_000_000_000), 10)
        .await;
    assert_eq!(
        pending.unwrap(),
        vec![upload.id],
        "the refused upload left a record"
    );
    assert!(matches!(
        store
            .reseal_upload_keys(vec![UploadKeyReseal {
                id: upload.id,
                old: upload.content_key.clone().unwrap(),
                new: crypto::seal_content_key(&old, upload.id, &ContentKey::generate().unwrap())
                    .unwrap(),
            }])
            .await,
        Err(StoreError::Conflict(Constraint::UploadSealedKey))
    ));

    let listed = store
        .sealed_upload_keys(Some(new.id()), None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, upload.id);
    let both = Keyring::new(vec![old.clone(), new.clone()]).unwrap();
    let content_key = crypto::open_content_key(&both, upload.id, &listed[0].content_key).unwrap();
    let resealed = crypto::seal_content_key(&new, upload.id, &content_key).unwrap();
    let reseal = UploadKeyReseal {
        id: upload.id,
        old: listed[0].content_key.clone(),
        new: resealed.clone(),
    };
    assert_eq!(
        store
            .reseal_upload_keys(vec![reseal.clone()])
            .await
            .unwrap(),
        1
    );
    // Only once: the content key it was read with is gone.
    assert_eq!(store.reseal_upload_keys(vec![reseal]).await.unwrap(), 0);
    assert!(
        store
            .sealed_upload_keys(Some(new.id()), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.delete_encryption_key(old.id()).await.unwrap());

    // Opened with the new key, the bytes are as before.
    let reopened = sealing_uploads(
        &store,
        &blobs,
        &clock,
        UploadPolicy::default(),
        Keyring::new(vec![new]).unwrap(),
    );
    let moved = Upload {
        content_key: Some(resealed),
        ..upload
    };
    let whole = collect(reopened.read(&moved, None).await.unwrap()).await;
    assert!(whole.unwrap() == data);
}

/// Instantiates each test on SQLite with a local directory and on
/// PostgreSQL with its own blob tables.
macro_rules! upload_service {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = crate::backends::Backend::sqlite().await.unwrap();
                    let dir = tempfile::tempdir().unwrap();
                    let blobs = ticketd::blob::local::LocalBlobs::open(&dir.path().join("blobs")).unwrap();
                    super::$name(std::sync::Arc::clone(backend.store()), std::sync::Arc::new(blobs)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(backend) = crate::backends::Backend::postgres().await else {
                        return;
                    };
                    let blobs = ticketd::blob::postgres::PostgresBlobs::connect(
                        backend.url(),
                        ticketd::store::postgres::PoolOptions::default(),
                    )
                    .unwrap();
                    super::$name(std::sync::Arc::clone(backend.store()), std::sync::Arc::new(blobs)).await;
                }
            )*
        }
    };
}

upload_service!(
    uploads_keep_checked_bytes_and_nothing_of_refused_ones,
    an_upload_url_works_once_until_it_expires,
    a_sealed_upload_is_stored_sealed_and_holds_its_key_until_resealed,
);
