//! A bucket of its own per test on an S3-compatible server (moto in CI),
//! deleted afterwards.
//!
//! The server is at `TICKETD_TEST_S3_ENDPOINT` (default
//! [`DEFAULT_ENDPOINT`]). Buckets are made and removed with plain unsigned
//! HTTP requests, which moto accepts; the objects in them are written and
//! read through `object_store`, signed with throwaway keys. When the server
//! cannot be reached, the S3 half of the suite is skipped with a notice on
//! stderr, unless `CI` is set: under CI it is mandatory, and the test
//! panics.

#![allow(dead_code, reason = "each test binary uses a different part of it")]

use std::io::Write as _;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use ticketd::blob::s3::S3Blobs;

/// The variable naming the test server's endpoint.
pub const ENDPOINT_VAR: &str = "TICKETD_TEST_S3_ENDPOINT";

/// The endpoint used when [`ENDPOINT_VAR`] is not set.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:5055";

/// The key id and secret the test stores sign with (moto takes any).
const ACCESS_KEY: &str = "ticketd-test";

/// How long creating a bucket may take before the server counts as
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Set once the server was found unreachable, so that later tests of the
/// same binary skip at once.
static UNREACHABLE: AtomicBool = AtomicBool::new(false);

/// The skip notice is written once per test binary.
static NOTICE: Once = Once::new();

/// The test server's endpoint, without a trailing `/`.
pub fn endpoint() -> String {
    let endpoint = std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| DEFAULT_ENDPOINT.into());
    endpoint.trim_end_matches('/').to_owned()
}

/// An empty bucket of its own on the test server.
pub struct TestBucket {
    name: String,
    store: Arc<dyn ObjectStore>,
}

impl TestBucket {
    /// Creates a bucket named `ticketd-test-<ulid>`.
    ///
    /// `None` when the server is unreachable and `CI` is not set (after the
    /// skip notice). Panics when it is unreachable under CI, or when it
    /// answers but refuses to create the bucket.
    pub async fn create(test: &str) -> Option<Self> {
        if UNREACHABLE.load(Ordering::Relaxed) {
            return None;
        }
        let name = format!(
            "ticketd-test-{}",
            ulid::Ulid::new().to_string().to_ascii_lowercase()
        );
        let client = reqwest::Client::builder()
            .timeout(CONNECT_TIMEOUT)
            .build()
            .unwrap();
        let url = format!("{}/{name}", endpoint());
        let response = match client.put(&url).send().await {
            Ok(response) => response,
            Err(error) => {
                skip_or_fail(test, &error);
                return None;
            }
        };
        let status = response.status();
        assert!(
            status.is_success(),
            "the S3 server at {} refused to create the bucket {name}: {status} {}",
            endpoint(),
            response.text().await.unwrap_or_default()
        );
        let store = AmazonS3Builder::new()
            .with_endpoint(endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(ACCESS_KEY)
            .with_bucket_name(&name)
            .build()
            .unwrap();
        Some(Self {
            name,
            store: Arc::new(store),
        })
    }

    /// The bucket, for looking at its objects directly.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// A blob store in this bucket, under `prefix` (empty for none).
    pub fn blobs(&self, prefix: &str) -> S3Blobs {
        S3Blobs::new(Arc::clone(&self.store), Path::from(prefix))
    }

    /// A blob store in this bucket set up as the server sets one up (only
    /// the endpoint, region and keys given, so plain HTTP is allowed by the
    /// store's own rule for loopback endpoints).
    pub fn blobs_as_configured(&self, prefix: &str) -> S3Blobs {
        let settings = AmazonS3Builder::new()
            .with_endpoint(endpoint())
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(ACCESS_KEY);
        S3Blobs::from_builder(settings, &self.name, Path::from(prefix)).unwrap()
    }

    /// The keys of every object in the bucket, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .store
            .list(None)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// Deletes every object in the bucket, then the bucket. (A test that
    /// panics leaves its bucket behind; moto keeps it in memory only.)
    pub async fn delete(self) {
        for key in self.keys().await {
            self.store.delete(&Path::from(key)).await.unwrap();
        }
        let url = format!("{}/{}", endpoint(), self.name);
        let response = reqwest::Client::new().delete(&url).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "deleting the bucket {}: {}",
            self.name,
            response.status()
        );
    }
}

/// Fails under CI; otherwise writes the skip notice and makes the later
/// tests of this binary skip at once.
fn skip_or_fail(test: &str, error: &reqwest::Error) {
    let message = format!(
        "the S3-compatible server at {} is unreachable ({error}). Start one with: \
         python3 -m venv /tmp/moto && /tmp/moto/bin/pip install 'moto[server]==5.2.5' && \
         /tmp/moto/bin/moto_server -H 127.0.0.1 -p 5055 (or set {ENDPOINT_VAR})",
        endpoint()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {message} (CI is set, so this test fails instead of skipping)"
    );
    UNREACHABLE.store(true, Ordering::Relaxed);
    NOTICE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED the S3 blob tests (first: {test}): {message}\n"
        );
    });
}
