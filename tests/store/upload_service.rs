//! The upload use cases over each backend and its default blob store:
//! checked bytes are kept, refused or broken ones leave nothing, the sweep
//! takes expired uploads with their bytes, and an upload URL works once.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use sha2::{Digest, Sha256};
use ticketd::blob::inspect::UploadRefusal;
use ticketd::blob::{BlobError, BlobStore, ByteStream};
use ticketd::core::access::{Principal, Role, Scopes};
use ticketd::core::id::KeyId;
use ticketd::core::server_secret::{SECRET_BYTES, ServerSecret};
use ticketd::core::time::Timestamp;
use ticketd::core::upload::Filename;
use ticketd::core::upload::media::MediaError;
use ticketd::core::upload::signed_url::{SignedUrlError, UploadUrlKey};
use ticketd::service::{Clock, IncomingFile, RandomIds, UploadError, UploadPolicy, Uploads};
use ticketd::store::{Store, StoreError};

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

/// The use cases over `store` and `blobs`, on `clock`.
fn uploads(
    store: &Arc<dyn Store>,
    blobs: &Arc<dyn BlobStore>,
    clock: &Arc<TestClock>,
    policy: UploadPolicy,
) -> Uploads {
    Uploads::new(
        Arc::clone(store),
        Arc::clone(blobs),
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

async fn read(
    blobs: &dyn BlobStore,
    id: ticketd::core::id::UploadId,
) -> Result<Vec<u8>, BlobError> {
    let mut stream = blobs.get(id, None).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
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
    let digest: String = Sha256::digest(&data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(upload.sha256, digest);
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
);
