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
    for unused in &config.unused_settings {
        tracing::warn!(target: "ticketd::config", "{unused}");
    }
    // Listening for the signals starts before the server says it is
    // listening: a SIGTERM sent the moment it does must drain, not kill.
    let shutdown = shutdown_signal();
    let application = Application::build(config).await?;
    application
        .run_until(shutdown)
        .await
        .map_err(|error| CliError::caused_by(format!("server failed: {error}"), error))?;
    tracing::info!(target: "ticketd::cli", "ticketd stopped");
    Ok(())
}

/// Listens for SIGINT and SIGTERM from the call on (not from the first
/// poll), and completes when one arrives.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            async fn received(signal: std::io::Result<tokio::signal::unix::Signal>) {
                match signal {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            }
            let (interrupt, terminate) = signals;
            tokio::select! {
                () = received(interrupt) => {},
                () = received(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!(
            target: "ticketd::cli",
            "shutdown signal received; finishing in-flight requests"
        );
    }
}
