//! `--soak-minutes N`: the mixed scenario for N minutes against one
//! server, measured minute by minute (throughput, p99, errors, the
//! server's RSS and, on SQLite, its WAL's size), to show that nothing
//! drifts: no leak, no WAL growing without bound, no errors.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::load::{self, RequestFactory};
use crate::procfs;

/// One minute of the soak.
#[derive(Debug, Clone, Serialize)]
pub struct Minute {
    /// From 1.
    pub minute: u64,
    /// Completed requests per second.
    pub throughput_rps: f64,
    /// The 99th percentile latency, in ms.
    pub p99_ms: f64,
    /// Responses that were transport errors or 4xx/5xx.
    pub errors: u64,
    /// The server's resident memory at the minute's end, in MiB.
    pub rss_mib: f64,
    /// The SQLite WAL's size at the minute's end, in MiB (`None` on
    /// PostgreSQL).
    pub wal_mib: Option<f64>,
}

/// Runs `minutes` one-minute windows of `factory`'s load back to back
/// (after `warmup`), printing each as it ends.
pub async fn run(
    addrs: &[SocketAddr],
    pid: u32,
    wal: Option<&Path>,
    concurrency: usize,
    warmup: Duration,
    minutes: u64,
    factory: RequestFactory,
) -> Result<Vec<Minute>, String> {
    println!("| minute | req/s | p99 ms | errors | RSS MiB | WAL MiB |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut results = Vec::new();
    for minute in 1..=minutes {
        let warmup = if minute == 1 { warmup } else { Duration::ZERO };
        let outcome = load::run(
            addrs,
            concurrency,
            warmup,
            Duration::from_secs(60),
            RequestFactory::clone(&factory),
        )
        .await?;
        let errors = outcome.errors();
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let result = Minute {
            minute,
            throughput_rps: outcome.throughput(),
            p99_ms: outcome.latencies.value_at_quantile(0.99) as f64 / 1000.0,
            errors,
            rss_mib: procfs::memory_mib(pid, "VmRSS").unwrap_or(0.0),
            wal_mib: wal.map(|path| std::fs::metadata(path).map_or(0.0, |meta| mib(meta.len()))),
        };
        println!(
            "| {} | {:.0} | {:.2} | {} | {:.1} | {} |",
            result.minute,
            result.throughput_rps,
            result.p99_ms,
            result.errors,
            result.rss_mib,
            result
                .wal_mib
                .map_or_else(|| "-".to_owned(), |wal| format!("{wal:.1}"))
        );
        results.push(result);
    }
    Ok(results)
}
