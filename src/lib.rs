//! ticketd: a self-hosted support-ticket service.
//!
//! `api` (HTTP adapters) -> `core` (types and rules) <- `store` (databases).
//! [`serve`] runs the API on a listener until a shutdown signal.

pub mod api;
pub mod cli;
pub mod config;
pub mod core;
pub mod rate_limit;
pub mod store;
pub mod telemetry;
pub mod transfer;

use std::future::Future;

use tokio::net::TcpListener;

pub use api::{AppState, app};

/// Serves the API on `listener` until `shutdown` completes, then stops
/// accepting connections and waits for in-flight requests to finish.
/// Meanwhile it sweeps expired idempotency records.
///
/// # Errors
/// Only if the listener fails.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(api::idempotency::sweep_expired_records(
        std::sync::Arc::clone(&state.store),
    ));
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    served
}
