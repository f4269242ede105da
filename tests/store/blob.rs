//! The blob-store conformance suite: every test is a function over a
//! `&dyn BlobStore`, run against each implementation.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use ticketd::blob::local::LocalBlobs;
use ticketd::blob::{BlobError, BlobStore, ByteStream};
use ticketd::core::id::UploadId;

/// `data` as a stream of chunks of `chunk` bytes.
fn chunks(data: &[u8], chunk: usize) -> ByteStream {
    let pieces: Vec<io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    Box::pin(stream::iter(pieces))
}

/// `data`, then a failure (a client gone midway, or a refused check).
fn failing_after(data: &[u8]) -> ByteStream {
    let pieces = vec![
        Ok(Bytes::copy_from_slice(data)),
        Err(io::Error::other("the client went away")),
    ];
    Box::pin(stream::iter(pieces))
}

async fn read_all(blobs: &dyn BlobStore, id: UploadId, range: Option<(u64, u64)>) -> Vec<u8> {
    let mut stream = blobs
        .get(id, range.map(|(first, last)| first..=last))
        .await
        .expect("the blob reads");
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("a chunk"));
    }
    out
}

/// A few MiB of bytes that differ from position to position.
fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

pub async fn blobs_round_trip_whole_and_in_ranges(blobs: &dyn BlobStore) {
    // Not a multiple of any chunk size a store uses, and read in ranges
    // that start and end inside, on and across chunk boundaries.
    let data = sample(3 * 1024 * 1024 + 17);
    let id = UploadId::generate();
    let stored = blobs.put(id, chunks(&data, 64 * 1024 + 3)).await.unwrap();
    assert_eq!(stored, data.len() as u64);
    assert_eq!(read_all(blobs, id, None).await, data);
    let last = data.len() as u64 - 1;
    for (first, end) in [
        (0, 0),
        (0, 99),
        (1_000_000, 2_500_000),
        (last, last),
        (5, last),
    ] {
        assert_eq!(
            read_all(blobs, id, Some((first, end))).await,
            data[first as usize..=end as usize],
            "{first}-{end}"
        );
    }
    let empty = UploadId::generate();
    assert_eq!(blobs.put(empty, chunks(&[], 1)).await.unwrap(), 0);
    assert!(read_all(blobs, empty, None).await.is_empty());
}

pub async fn a_blob_is_written_once(blobs: &dyn BlobStore) {
    let id = UploadId::generate();
    blobs.put(id, chunks(b"first", 2)).await.unwrap();
    let again = blobs.put(id, chunks(b"second", 2)).await;
    assert!(matches!(again, Err(BlobError::Exists)), "{again:?}");
    assert_eq!(read_all(blobs, id, None).await, b"first");
}

pub async fn a_failed_stream_keeps_nothing(blobs: &dyn BlobStore) {
    let id = UploadId::generate();
    let failed = blobs.put(id, failing_after(&sample(200_000))).await;
    assert!(matches!(failed, Err(BlobError::Source(_))), "{failed:?}");
    assert!(matches!(
        blobs.get(id, None).await,
        Err(BlobError::NotFound)
    ));
    // The id is free for a retry.
    blobs.put(id, chunks(b"retried", 3)).await.unwrap();
    assert_eq!(read_all(blobs, id, None).await, b"retried");
}

pub async fn large_blobs_round_trip_across_part_boundaries(blobs: &dyn BlobStore) {
    // Over two of the S3 store's 8 MiB parts, read across their boundaries.
    const PART: u64 = 8 * 1024 * 1024;
    let data = sample(2 * PART as usize + 100_003);
    let id = UploadId::generate();
    let stored = blobs.put(id, chunks(&data, 256 * 1024 + 1)).await.unwrap();
    assert_eq!(stored, data.len() as u64);
    assert_eq!(read_all(blobs, id, None).await, data);
    let last = data.len() as u64 - 1;
    for (first, end) in [
        (PART - 10, PART + 10),
        (PART, 2 * PART),
        (2 * PART - 1, last),
    ] {
        assert_eq!(
            read_all(blobs, id, Some((first, end))).await,
            data[first as usize..=end as usize],
            "{first}-{end}"
        );
    }
    let again = blobs.put(id, chunks(&data, 1024 * 1024)).await;
    assert!(matches!(again, Err(BlobError::Exists)), "{again:?}");
}

pub async fn a_large_stream_failing_midway_keeps_nothing(blobs: &dyn BlobStore) {
    // Fails after more than one S3 part has been sent.
    let id = UploadId::generate();
    let pieces = sample(17 * 1024 * 1024)
        .chunks(512 * 1024)
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .chain([Err(io::Error::other("the client went away"))])
        .collect::<Vec<_>>();
    let failed = blobs.put(id, Box::pin(stream::iter(pieces))).await;
    let Err(BlobError::Source(source)) = &failed else {
        panic!("{failed:?}");
    };
    assert_eq!(source.to_string(), "the client went away");
    assert!(matches!(
        blobs.get(id, None).await,
        Err(BlobError::NotFound)
    ));
    blobs.put(id, chunks(b"retried", 3)).await.unwrap();
    assert_eq!(read_all(blobs, id, None).await, b"retried");
}

pub async fn deleting_is_idempotent(blobs: &dyn BlobStore) {
    let id = UploadId::generate();
    blobs.put(id, chunks(b"bytes", 5)).await.unwrap();
    blobs.delete(id).await.unwrap();
    assert!(matches!(
        blobs.get(id, None).await,
        Err(BlobError::NotFound)
    ));
    blobs.delete(id).await.unwrap();
    blobs.delete(UploadId::generate()).await.unwrap();
}

/// Instantiates every suite function per blob store.
macro_rules! blob_conformance {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let blobs = ticketd::blob::local::LocalBlobs::open(&dir.path().join("blobs")).unwrap();
                    super::$name(&blobs).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    // None: PostgreSQL is unreachable outside CI, and a
                    // notice on stderr says its half was skipped.
                    let Some(database) = crate::test_postgres::TestDatabase::create().await else {
                        return;
                    };
                    // Opening the store applies the migrations the blobs live in.
                    let url = ticketd::store::DatabaseUrl::parse(database.url()).unwrap();
                    let store = ticketd::store::open(&url).await.unwrap();
                    let blobs = ticketd::blob::postgres::PostgresBlobs::connect(
                        database.url(),
                        ticketd::store::postgres::PoolOptions::default(),
                    )
                    .unwrap();
                    super::$name(&blobs).await;
                    drop(store);
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    // None: no S3-compatible server outside CI, and a
                    // notice on stderr says its half was skipped.
                    let Some(bucket) = crate::test_s3::TestBucket::create(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&bucket.blobs_as_configured("uploads")).await;
                    bucket.delete().await;
                }
            )*
        }
    };
}

blob_conformance!(
    blobs_round_trip_whole_and_in_ranges,
    large_blobs_round_trip_across_part_boundaries,
    a_blob_is_written_once,
    a_failed_stream_keeps_nothing,
    a_large_stream_failing_midway_keeps_nothing,
    deleting_is_idempotent,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blobs_are_objects_under_the_prefix_and_failures_leave_none() {
    let Some(bucket) =
        crate::test_s3::TestBucket::create("s3_blobs_are_objects_under_the_prefix").await
    else {
        return;
    };
    let prefixed = bucket.blobs("tickets/uploads");
    let bare = bucket.blobs("");
    let (small, large, failed) = (
        UploadId::generate(),
        UploadId::generate(),
        UploadId::generate(),
    );
    prefixed.put(small, chunks(b"small", 5)).await.unwrap();
    bare.put(large, chunks(&sample(9 * 1024 * 1024), 1024 * 1024))
        .await
        .unwrap();
    let error = prefixed
        .put(failed, failing_after(&sample(9 * 1024 * 1024)))
        .await;
    assert!(matches!(error, Err(BlobError::Source(_))), "{error:?}");
    let mut expected = vec![format!("tickets/uploads/{}", small.key()), large.key()];
    expected.sort();
    assert_eq!(bucket.keys().await, expected);
    // The stores see only their own keys.
    assert!(matches!(
        bare.get(small, None).await,
        Err(BlobError::NotFound)
    ));
    prefixed.delete(small).await.unwrap();
    bare.delete(large).await.unwrap();
    assert!(bucket.keys().await.is_empty());
    bucket.delete().await;
}

#[test]
fn a_local_directory_is_owner_only_and_loses_old_temporary_files_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blobs");
    LocalBlobs::open(&path).unwrap();
    let leftover = path.join("01jz0000000000000000000000.tmp-0123456789abcdef");
    std::fs::write(&leftover, b"half a file").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&leftover)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    // Another server's upload in progress: young, so kept.
    let in_progress = path.join("01jz0000000000000000000002.tmp-fedcba9876543210");
    std::fs::write(&in_progress, b"being written").unwrap();
    let kept = path.join("01jz0000000000000000000001");
    std::fs::write(&kept, b"a whole file").unwrap();
    let _blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::open(&path).unwrap());
    assert!(!leftover.exists());
    assert!(in_progress.exists());
    assert!(kept.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }
}
