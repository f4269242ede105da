//! Blobs as objects in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW,
//! Garage, ...), so that every node shares the bytes without a database
//! holding them. Each blob is the object `<prefix>/<upload id>`.
//!
//! A file that fits in one part ([`PART_BYTES`]) is sent as one PUT with
//! `If-None-Match: *`, so the server itself refuses a second blob under the
//! id. A larger one goes up as a multipart upload, at most
//! [`PARTS_IN_FLIGHT`] parts at a time, so no more than a few parts of a file
//! are ever held in memory; the object appears, whole, only when the upload
//! is completed, and an upload whose source fails, or whose parts do, is
//! aborted, leaving nothing under the id. The multipart API has no
//! create-only mode here, so for those the id is checked with a HEAD
//! request before the upload starts: two writers of one id racing would
//! leave the later's bytes, which ticketd never does (each upload id is
//! new, and its bytes are written once, by the request that uploads them).
//!
//! A server without conditional writes can be used with
//! `AWS_CONDITIONAL_PUT=disabled`; every write then checks with HEAD first.

use std::io;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::{StreamExt, TryStreamExt};
use object_store::ClientConfigKey;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, MultipartUpload, ObjectStore, PutMode, PutOptions, PutPayload,
};

use crate::blob::{BlobError, BlobStore, ByteStream};
use crate::core::id::UploadId;

/// Bytes gathered before a part is sent (the last part may be shorter, and
/// a part may be longer by less than one chunk of the source). Above S3's
/// 5 MiB minimum part size.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of one blob being sent at once; with the part being gathered, at
/// most this many plus one are in memory.
pub const PARTS_IN_FLIGHT: usize = 2;

/// Blobs as objects in one bucket, under an optional key prefix.
#[derive(Clone)]
pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl std::fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Blobs")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix.as_ref())
            .finish()
    }
}

fn storage(error: object_store::Error) -> BlobError {
    BlobError::storage(io::Error::other(error))
}

impl S3Blobs {
    /// Blobs in `store` (a bucket), keyed `<prefix>/<upload id>`, or by the
    /// id alone when `prefix` is empty.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        Self { store, prefix }
    }

    /// Blobs in `bucket` under `prefix`, reached as the standard AWS
    /// variables say: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN`; without keys, the instance's or web identity's
    /// credentials), `AWS_REGION` or `AWS_DEFAULT_REGION` (default
    /// `us-east-1`) and, for a server other than AWS, `AWS_ENDPOINT_URL`,
    /// addressed path-style (`ENDPOINT/BUCKET/KEY`) unless
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`. Plain `http://` is allowed
    /// for an endpoint on loopback, and elsewhere only with
    /// `AWS_ALLOW_HTTP=true`. Nothing is sent until the first request.
    ///
    /// # Errors
    /// A message naming the setting that is invalid.
    pub fn from_env(bucket: &str, prefix: Path) -> Result<Self, String> {
        Self::from_builder(AmazonS3Builder::from_env(), bucket, prefix)
    }

    /// Blobs in `bucket` under `prefix`, reached as `builder` says, with
    /// plain `http://` allowed for an endpoint on loopback (as
    /// [`S3Blobs::from_env`], with the settings given rather than read).
    ///
    /// # Errors
    /// A message naming the setting that is invalid.
    pub fn from_builder(
        builder: AmazonS3Builder,
        bucket: &str,
        prefix: Path,
    ) -> Result<Self, String> {
        let mut builder = builder.with_bucket_name(bucket);
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        if let Some(endpoint) = endpoint.filter(|endpoint| endpoint.starts_with("http://")) {
            let allowed = builder
                .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
                .is_some_and(|allow| allow.trim().eq_ignore_ascii_case("true"));
            if is_loopback_http(&endpoint) {
                builder = builder.with_allow_http(true);
            } else if !allowed {
                // Refused here, at startup, rather than on the first upload.
                return Err(format!(
                    "the S3 endpoint {endpoint} is plain http and not on loopback; \
                     use https, or set AWS_ALLOW_HTTP=true"
                ));
            }
        }
        let store = builder
            .build()
            .map_err(|error| format!("cannot set up the S3 blob store: {error}"))?;
        Ok(Self::new(Arc::new(store), prefix))
    }

    fn path_of(&self, id: UploadId) -> Path {
        self.prefix.child(id.key())
    }

    /// Whether an object is stored at `path`.
    async fn exists(&self, path: &Path) -> Result<bool, BlobError> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(storage(error)),
        }
    }

    /// Stores `head`, the whole blob, in one create-only PUT.
    async fn put_whole(&self, path: &Path, head: Vec<Bytes>) -> Result<(), BlobError> {
        let payload: PutPayload = head.into_iter().collect();
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self.store.put_opts(path, payload.clone(), create).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(BlobError::Exists),
            Err(object_store::Error::NotImplemented) => {
                if self.exists(path).await? {
                    return Err(BlobError::Exists);
                }
                self.store
                    .put(path, payload)
                    .await
                    .map(drop)
                    .map_err(storage)
            }
            Err(error) => Err(storage(error)),
        }
    }

    /// Stores `head` and the rest of `bytes` as a multipart upload,
    /// aborted if anything fails; returns the bytes read from `bytes`.
    async fn put_in_parts(
        &self,
        path: &Path,
        head: Vec<Bytes>,
        bytes: ByteStream,
    ) -> Result<u64, BlobError> {
        if self.exists(path).await? {
            return Err(BlobError::Exists);
        }
        let mut upload = self.store.put_multipart(path).await.map_err(storage)?;
        let sent = match send_parts(upload.as_mut(), head, bytes).await {
            Ok(sent) => sent,
            Err(error) => {
                // Best effort: an upload left open holds no object, and a
                // bucket's lifecycle rule can expire what remains of it.
                let _ = upload.abort().await;
                return Err(error);
            }
        };
        if let Err(error) = upload.complete().await {
            let _ = upload.abort().await;
            return Err(storage(error));
        }
        Ok(sent)
    }
}

/// Sends `head`, then the rest of `bytes`, as parts of `upload`, waiting
/// for one to finish before starting more than [`PARTS_IN_FLIGHT`]; returns
/// the bytes read from `bytes`.
async fn send_parts(
    upload: &mut dyn MultipartUpload,
    head: Vec<Bytes>,
    mut bytes: ByteStream,
) -> Result<u64, BlobError> {
    let mut in_flight = FuturesUnordered::new();
    let mut sent = head.iter().map(|chunk| chunk.len() as u64).sum::<u64>();
    let mut part = head;
    let mut held = 0usize;
    in_flight.push(upload.put_part(std::mem::take(&mut part).into_iter().collect()));
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.map_err(|error| BlobError::Source(Arc::new(error)))?;
        sent += chunk.len() as u64;
        held += chunk.len();
        part.push(chunk);
        if held < PART_BYTES {
            continue;
        }
        while in_flight.len() >= PARTS_IN_FLIGHT {
            if let Some(done) = in_flight.next().await {
                done.map_err(storage)?;
            }
        }
        in_flight.push(upload.put_part(std::mem::take(&mut part).into_iter().collect()));
        held = 0;
    }
    if held > 0 {
        in_flight.push(upload.put_part(part.into_iter().collect()));
    }
    while let Some(done) = in_flight.next().await {
        done.map_err(storage)?;
    }
    Ok(sent)
}

/// Whether `endpoint` is a plain-HTTP URL of this machine (`localhost`,
/// 127.0.0.0/8 or `[::1]`), where TLS protects nothing.
fn is_loopback_http(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, id: UploadId, mut bytes: ByteStream) -> Result<u64, BlobError> {
        let path = self.path_of(id);
        let mut head = Vec::new();
        let mut held = 0usize;
        while held < PART_BYTES {
            match bytes.next().await {
                Some(Ok(chunk)) => {
                    held += chunk.len();
                    head.push(chunk);
                }
                Some(Err(error)) => return Err(BlobError::Source(Arc::new(error))),
                None => {
                    self.put_whole(&path, head).await?;
                    return Ok(held as u64);
                }
            }
        }
        self.put_in_parts(&path, head, bytes).await
    }

    async fn get(
        &self,
        id: UploadId,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ByteStream, BlobError> {
        let options = GetOptions {
            range: range
                .map(|range| GetRange::Bounded(*range.start()..range.end().saturating_add(1))),
            ..GetOptions::default()
        };
        match self.store.get_opts(&self.path_of(id), options).await {
            Ok(result) => Ok(Box::pin(result.into_stream().map_err(io::Error::other))),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound),
            Err(error) => Err(storage(error)),
        }
    }

    async fn delete(&self, id: UploadId) -> Result<(), BlobError> {
        match self.store.delete(&self.path_of(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(storage(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use object_store::memory::InMemory;

    use super::*;

    fn chunks(data: &[u8], chunk: usize) -> ByteStream {
        let pieces: Vec<io::Result<Bytes>> = data
            .chunks(chunk)
            .map(|piece| Ok(Bytes::copy_from_slice(piece)))
            .collect();
        Box::pin(stream::iter(pieces))
    }

    fn in_memory() -> (Arc<InMemory>, S3Blobs) {
        let memory = Arc::new(InMemory::new());
        let blobs = S3Blobs::new(memory.clone(), Path::from("uploads"));
        (memory, blobs)
    }

    async fn keys(memory: &InMemory) -> Vec<String> {
        memory
            .list(None)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .expect("lists")
    }

    #[test]
    fn plain_http_is_recognised_on_loopback_only() {
        for endpoint in [
            "http://127.0.0.1:9000",
            "http://127.1.2.3",
            "http://localhost:5055/",
            "http://LOCALHOST",
            "http://[::1]:9000/path",
            "http://user@127.0.0.1:9000",
        ] {
            assert!(is_loopback_http(endpoint), "{endpoint}");
        }
        for endpoint in [
            "https://127.0.0.1:9000",
            "http://10.0.0.1:9000",
            "http://minio.internal:9000",
            "http://127.0.0.1.example.com",
            "http://localhost.example.com",
            "http://[::2]:9000",
            "127.0.0.1:9000",
        ] {
            assert!(!is_loopback_http(endpoint), "{endpoint}");
        }
    }

    #[test]
    fn plain_http_elsewhere_is_refused_at_startup_unless_allowed() {
        let remote = || AmazonS3Builder::new().with_endpoint("http://minio.internal:9000");
        let error = S3Blobs::from_builder(remote(), "tickets", Path::default()).expect_err("http");
        assert!(error.contains("AWS_ALLOW_HTTP=true"), "{error}");
        let allowed = remote().with_allow_http(true);
        assert!(S3Blobs::from_builder(allowed, "tickets", Path::default()).is_ok());
        for endpoint in ["https://minio.internal:9000", "http://127.0.0.1:9000"] {
            let builder = AmazonS3Builder::new().with_endpoint(endpoint);
            let opened = S3Blobs::from_builder(builder, "tickets", Path::default());
            assert!(opened.is_ok(), "{endpoint}: {opened:?}");
        }
    }

    #[tokio::test]
    async fn blobs_are_keyed_under_the_prefix_and_large_ones_go_in_parts() {
        let (memory, blobs) = in_memory();
        let small = UploadId::generate();
        assert_eq!(blobs.put(small, chunks(b"small", 2)).await.ok(), Some(5));
        let large = UploadId::generate();
        let data: Vec<u8> = (0..2 * PART_BYTES + 11).map(|i| (i % 253) as u8).collect();
        let stored = blobs.put(large, chunks(&data, 100_000)).await.ok();
        assert_eq!(stored, Some(data.len() as u64));
        let mut expected = vec![
            format!("uploads/{}", small.key()),
            format!("uploads/{}", large.key()),
        ];
        expected.sort();
        let mut found = keys(&memory).await;
        found.sort();
        assert_eq!(found, expected);
        let read = memory
            .get(&Path::from(format!("uploads/{}", large.key())))
            .await
            .expect("stored")
            .bytes()
            .await
            .expect("read");
        assert_eq!(read, data);
    }

    #[tokio::test]
    async fn a_large_blob_is_refused_under_a_taken_id_and_a_failed_one_leaves_nothing() {
        let (memory, blobs) = in_memory();
        let id = UploadId::generate();
        blobs.put(id, chunks(b"first", 5)).await.ok();
        let data = vec![1u8; PART_BYTES + 1];
        let again = blobs.put(id, chunks(&data, 65_536)).await;
        assert!(matches!(again, Err(BlobError::Exists)), "{again:?}");

        let other = UploadId::generate();
        let pieces = vec![
            Ok(Bytes::from(vec![2u8; PART_BYTES + 1])),
            Ok(Bytes::from(vec![3u8; PART_BYTES])),
            Err(io::Error::other("the client went away")),
        ];
        let failed = blobs.put(other, Box::pin(stream::iter(pieces))).await;
        let Err(BlobError::Source(source)) = failed else {
            panic!("{failed:?}");
        };
        assert_eq!(source.to_string(), "the client went away");
        assert_eq!(keys(&memory).await, [format!("uploads/{}", id.key())]);
    }
}
