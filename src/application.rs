//! The one assembly of a running ticketd: what `ticketd serve` runs and what
//! the API tests spawn. It owns the order in which the parts are built (the
//! store, its encryption layer, the listener, the rate limiters, the API
//! state), so that a test server is the production server on another
//! [`Config`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::{ApiSettings, AppState};
use crate::config::Config;
use crate::core::crypto::DataKeyId;
use crate::core::idempotency::FingerprintKey;
use crate::encryption::{self, ContentKeyring, EncryptedStore, ExportBodies, MissingKeyFile};
use crate::rate_limit::{self, RateLimitStore};
use crate::service::{RandomIds, SystemClock, UploadPolicy, Uploads};
use crate::store::idempotency::ClaimHolder;
use crate::store::{self, Store};

/// A ticketd assembled from a [`Config`] and bound to its address, not yet
/// serving.
pub struct Application {
    config: Config,
    listener: TcpListener,
    /// The listener of `metrics_listen`, if set.
    metrics_listener: Option<TcpListener>,
    local_addr: SocketAddr,
    state: AppState,
    fingerprint_key: FingerprintKey,
    encryption_key: DataKeyId,
}

impl Application {
    /// Opens the configured database and assembles the server on it (see
    /// [`Application::build_with_store`]).
    ///
    /// # Errors
    /// One readable message: the database cannot be opened, the key file
    /// cannot be read or created, the address cannot be bound, or the rate
    /// limiter's store cannot be reached.
    pub async fn build(config: Config) -> Result<Self, String> {
        // The address first: a server that cannot listen creates no
        // database and no key file.
        let listeners = listen(&config)?;
        let store = store::open_with(&config.database, config.database_pool)
            .await
            .map_err(encryption::describe)?;
        Self::assemble(config, store, listeners).await
    }

    /// Assembles the server on `store`, a handle already opened on
    /// `config.database` (a test keeps its own handle on the raw database
    /// this way): wraps it in the encryption layer of
    /// `config.encryption_key_file` (creating the key file for a new
    /// database), binds `config.listen`, opens the rate limiters and builds
    /// the API state.
    ///
    /// # Errors
    /// As [`Application::build`], except for opening the database.
    pub async fn build_with_store(config: Config, store: Arc<dyn Store>) -> Result<Self, String> {
        let listeners = listen(&config)?;
        Self::assemble(config, store, listeners).await
    }

    /// The rest of [`Application::build_with_store`], once the address is
    /// bound.
    async fn assemble(
        config: Config,
        store: Arc<dyn Store>,
        (listener, metrics_listener): Listeners,
    ) -> Result<Self, String> {
        if config.metrics_enabled() {
            crate::metrics::install()?;
        }
        let encryption = encryption::setup(
            store.as_ref(),
            &config.encryption_key_file,
            MissingKeyFile::CreateForNewDatabase,
        )
        .await?;
        let encryption_key = encryption::current_key(&encryption);
        let fingerprint_key = encryption.fingerprint_key();
        let upload_url_key = encryption.upload_url_key();
        let agency_signatures = encryption.agency_signature_key();
        let content_keys = ContentKeyring::new(Arc::clone(&encryption), Arc::clone(&store));
        let store = EncryptedStore::wrap(store, encryption, ExportBodies::Sealed);
        let blobs = crate::blob::open(&config.blob_store, &config.database)?;
        let uploads = Uploads::new(
            Arc::clone(&store),
            blobs,
            Arc::new(content_keys),
            Arc::new(SystemClock),
            Arc::new(RandomIds),
            upload_url_key,
            UploadPolicy {
                max_bytes: config.max_upload_bytes,
                ttl: config.upload_ttl,
                media: config.upload_media.clone(),
                url_ttl: config.upload_url_ttl,
            },
        );
        let local_addr = listener.local_addr().map_err(|error| error.to_string())?;
        let settings = ApiSettings {
            public_url: config
                .public_url
                .clone()
                .unwrap_or_else(|| derived_public_url(local_addr)),
            request_timeout: config.request_timeout,
            body_read_timeout: config.body_read_timeout,
            max_body_bytes: config.max_body_bytes,
            max_buffered_body_bytes: config.max_buffered_body_bytes,
            max_concurrent_requests: config.max_concurrent_requests,
            max_concurrent_requests_per_key: config.max_concurrent_requests_per_key,
            text_limits: config.text_limits,
            connections: config.connections,
            idempotency_ttl: config.idempotency_ttl,
            metrics_token: config.metrics_token.clone(),
            claim_holder: ClaimHolder {
                node: config.node_id.as_str().into(),
                instance: crate::core::id::new_ulid().to_string().into(),
            },
            api_key_cache: config.api_key_cache,
            html_cache_bytes: config.html_cache_bytes,
            attach_limits: config.attach_limits,
            profiles: config.profiles.clone(),
        };
        let limiters = rate_limit::open(
            &config.rate_limit_store,
            config.rate_limit,
            config.auth_failure_limit,
        )
        .await?;
        let state = AppState::new(
            store,
            limiters,
            settings,
            fingerprint_key.clone(),
            agency_signatures,
            uploads,
        );
        let released = state
            .idempotency
            .release_abandoned_claims()
            .await
            .map_err(|error| format!("cannot release the claims of an earlier start: {error}"))?;
        if released > 0 {
            tracing::info!(
                target: "ticketd::cli",
                released,
                node_id = %config.node_id,
                "released the idempotency claims an earlier process left in progress"
            );
        }
        Ok(Self {
            config,
            listener,
            metrics_listener,
            local_addr,
            state,
            fingerprint_key,
            encryption_key,
        })
    }

    /// The address the listener is bound to (the port chosen, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The API state the server runs with: its store (behind the
    /// encryption layer), limiters and settings.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The key requests with an `Idempotency-Key` are fingerprinted under
    /// (from the key file's server secret).
    pub fn fingerprint_key(&self) -> &FingerprintKey {
        &self.fingerprint_key
    }

    /// Logs that the server is listening (and a warning if the open-file
    /// limit leaves too little room for `max_connections`), then serves
    /// until `shutdown` completes and in-flight requests have finished.
    ///
    /// # Errors
    /// Only if the listener fails.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let config = &self.config;
        let rate_limiter = match &config.rate_limit_store {
            RateLimitStore::Memory => "memory",
            RateLimitStore::Redis { url, .. } => url.redacted(),
        };
        // Logged under the target it always had, so log filters and
        // searches written for `ticketd::cli` keep matching.
        tracing::info!(
            target: "ticketd::cli",
            address = %self.local_addr,
            database = %config.database.redacted(),
            rate_limiter,
            encryption_key_file = %config.encryption_key_file.display(),
            encryption_key = %self.encryption_key,
            "ticketd listening"
        );
        if let Some(limit) = crate::server::open_file_limit()
            && config.connections.max_connections > crate::server::room_for_connections(limit)
        {
            tracing::warn!(
                target: "ticketd::cli",
                max_connections = config.connections.max_connections,
                open_file_limit = limit,
                "max_connections is more than the open-file limit leaves room for; \
                 raise the limit (ulimit -n) or lower max_connections"
            );
        }
        let metrics = self.metrics_listener.map(|listener| {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(target: "ticketd::cli", %address, "serving /metrics");
            }
            tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, crate::api::metrics::router()).await {
                    tracing::error!(%error, "the metrics listener failed");
                }
            })
        });
        let served = crate::serve(self.listener, self.state, shutdown).await;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        served
    }
}

/// The URL clients use when none is configured: the bound address, with a
/// wildcard address replaced by `localhost`.
fn derived_public_url(bound: SocketAddr) -> String {
    if bound.ip().is_unspecified() {
        format!("http://localhost:{}", bound.port())
    } else {
        format!("http://{bound}")
    }
}

/// The API's listener, and the metrics' own if configured.
type Listeners = (TcpListener, Option<TcpListener>);

/// Binds `config.listen`, and `config.metrics_listen` if set.
fn listen(config: &Config) -> Result<Listeners, String> {
    let bind = |address: SocketAddr| {
        crate::server::bind(address).map_err(|error| format!("cannot listen on {address}: {error}"))
    };
    Ok((
        bind(config.listen)?,
        config.metrics_listen.map(bind).transpose()?,
    ))
}
