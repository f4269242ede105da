//! `ticketd serve`: run the API until SIGINT or SIGTERM.

use clap::Args;

use super::CliError;
use crate::application::Application;
use crate::config::{Config, Settings};

/// Flags of `serve`: every setting (see [`Settings`]) but the global
/// `--database` and `--encryption-key-file`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// The settings given as flags or `TICKETD_*` environment variables.
    #[command(flatten)]
    pub settings: Settings,
}

pub(super) async fn serve(config: Config) -> Result<(), CliError> {
    let _log = crate::telemetry::init(config.log_format);
    let application = Application::build(config).await?;
    application
        .run_until(shutdown_signal())
        .await
        .map_err(|error| CliError::caused_by(format!("server failed: {error}"), error))?;
    tracing::info!(target: "ticketd::cli", "ticketd stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!(
        target: "ticketd::cli",
        "shutdown signal received; finishing in-flight requests"
    );
}
