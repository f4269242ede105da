//! ticketd: a self-hosted support-ticket service.
//!
//! `api` (HTTP adapters) -> `core` (types and rules) <- `store` (databases).
//! [`serve`] runs the API on a listener ([`server`]) until a shutdown signal.

pub mod api;
pub mod application;
pub mod blob;
pub mod cli;
pub mod config;
pub mod core;
pub mod encryption;
pub mod metrics;
pub mod private_file;
pub mod rate_limit;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod transfer;

use std::future::Future;

use tokio::net::TcpListener;

pub use api::{AppState, app};

/// Serves the API on `listener`, within the connection limits of `state`'s
/// settings, until `shutdown` completes; then stops accepting connections
/// and waits for in-flight requests to finish. Meanwhile it sweeps expired
/// idempotency records and expired, unattached uploads.
///
/// # Errors
/// Only if the listener fails.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.settings.connections;
    let sweeper = tokio::spawn(state.idempotency.clone().sweep_expired_records());
    let upload_sweeper = tokio::spawn(state.uploads.clone().sweep_expired());
    let served = server::serve(listener, app(state), limits, shutdown).await;
    sweeper.abort();
    upload_sweeper.abort();
    served
}
