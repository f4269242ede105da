//! Prometheus metrics: what ticketd measures, and the text exposition
//! `GET /metrics` serves.
//!
//! Metrics are recorded only once [`install`] has run (a server with
//! `metrics_token` or `metrics_listen` set); until then every `record_*`
//! function returns after one atomic load, building no labels. The
//! recorder is the process's own (the `metrics` crate's global one), so
//! servers in one process share it.
//!
//! Every label takes one of a few values fixed here or by the code: the
//! route *template* a request matched (`/api/v2/support/tickets/{id}`,
//! never a path), a method among the standard ones, a status class, a
//! backend, an operation kind, an outcome. No label carries an id, a token
//! or anything a client sent.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The recorder's handle, once installed.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Requests answered, by route, method and status class.
pub const HTTP_REQUESTS: &str = "ticketd_http_requests_total";
/// Time to answer a request, by route and method.
pub const HTTP_REQUEST_SECONDS: &str = "ticketd_http_request_duration_seconds";
/// Store operations, by backend and kind (`read` or `write` on SQLite;
/// `connection` on PostgreSQL: each operation holds one pooled connection).
pub const STORE_OPERATIONS: &str = "ticketd_store_operations_total";
/// Time a store operation took, by backend and kind.
pub const STORE_OPERATION_SECONDS: &str = "ticketd_store_operation_duration_seconds";
/// Writes committed together by the SQLite writer, per commit.
pub const SQLITE_GROUP_SIZE: &str = "ticketd_sqlite_write_group_size";
/// Time of a SQLite group's COMMIT.
pub const SQLITE_COMMIT_SECONDS: &str = "ticketd_sqlite_commit_duration_seconds";
/// Time of an fsync of the SQLite WAL.
pub const SQLITE_FSYNC_SECONDS: &str = "ticketd_sqlite_fsync_duration_seconds";
/// The SQLite WAL file's size.
pub const SQLITE_WAL_BYTES: &str = "ticketd_sqlite_wal_bytes";
/// Passive checkpoints of the SQLite WAL.
pub const SQLITE_CHECKPOINTS: &str = "ticketd_sqlite_checkpoints_total";
/// Restarts of the SQLite WAL.
pub const SQLITE_WAL_RESTARTS: &str = "ticketd_sqlite_wal_restarts_total";
/// PostgreSQL connections in this node's pool.
pub const POSTGRES_POOL_CONNECTIONS: &str = "ticketd_postgres_pool_connections";
/// PostgreSQL connections of the pool idle right now.
pub const POSTGRES_POOL_IDLE: &str = "ticketd_postgres_pool_idle_connections";
/// Operations waiting for a PostgreSQL connection.
pub const POSTGRES_POOL_WAITING: &str = "ticketd_postgres_pool_waiting";
/// Time an operation waited for a PostgreSQL connection.
pub const POSTGRES_POOL_WAIT_SECONDS: &str = "ticketd_postgres_pool_wait_duration_seconds";
/// Idempotency-Key claims, by outcome.
pub const IDEMPOTENCY_CLAIMS: &str = "ticketd_idempotency_claims_total";
/// Requests refused by a limit, by limit.
pub const RATE_LIMIT_REFUSALS: &str = "ticketd_rate_limit_refusals_total";
/// Uploads whose bytes were stored.
pub const UPLOADS: &str = "ticketd_uploads_total";
/// Bytes of uploads stored.
pub const UPLOAD_BYTES: &str = "ticketd_upload_bytes_total";
/// Connections open to the API listener.
pub const OPEN_CONNECTIONS: &str = "ticketd_open_connections";
/// The process's resident memory.
pub const RESIDENT_MEMORY_BYTES: &str = "ticketd_process_resident_memory_bytes";
/// Always 1, labelled with the version.
pub const BUILD_INFO: &str = "ticketd_build_info";

/// Upper bounds of the latency histograms, in seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Upper bounds of the group-size histogram.
const GROUP_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// How often histograms are compacted between scrapes, so that their
/// samples never pile up in memory.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Whether metrics are being recorded.
pub fn enabled() -> bool {
    HANDLE.get().is_some()
}

/// Installs the process's recorder, if it has none yet, and starts its
/// upkeep (on the current runtime).
///
/// # Errors
/// If the buckets are invalid, or another recorder was installed first.
pub fn install() -> Result<(), String> {
    if enabled() {
        return Ok(());
    }
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in [
        (HTTP_REQUEST_SECONDS, SECONDS_BUCKETS),
        (STORE_OPERATION_SECONDS, SECONDS_BUCKETS),
        (SQLITE_COMMIT_SECONDS, SECONDS_BUCKETS),
        (SQLITE_FSYNC_SECONDS, SECONDS_BUCKETS),
        (POSTGRES_POOL_WAIT_SECONDS, SECONDS_BUCKETS),
        (SQLITE_GROUP_SIZE, GROUP_BUCKETS),
    ] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .map_err(|error| error.to_string())?;
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if HANDLE.set(handle).is_err() {
        // Installed meanwhile by another server of this process.
        return Ok(());
    }
    metrics::set_global_recorder(recorder).map_err(|error| error.to_string())?;
    describe();
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async {
            let mut ticks = tokio::time::interval(UPKEEP_EVERY);
            loop {
                ticks.tick().await;
                if let Some(handle) = HANDLE.get() {
                    handle.run_upkeep();
                }
            }
        });
    }
    Ok(())
}

/// The text exposition of every metric, the process's memory read now;
/// `None` unless installed.
pub fn render() -> Option<String> {
    let handle = HANDLE.get()?;
    if let Some(bytes) = resident_memory_bytes() {
        metrics::gauge!(RESIDENT_MEMORY_BYTES).set(bytes as f64);
    }
    handle.run_upkeep();
    Some(handle.render())
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "Requests answered, by matched route, method and status class."
    );
    describe_histogram!(
        HTTP_REQUEST_SECONDS,
        Unit::Seconds,
        "Time to answer a request."
    );
    describe_counter!(STORE_OPERATIONS, "Store operations, by backend and kind.");
    describe_histogram!(
        STORE_OPERATION_SECONDS,
        Unit::Seconds,
        "Time a store operation took."
    );
    describe_histogram!(
        SQLITE_GROUP_SIZE,
        "Writes the SQLite writer committed together."
    );
    describe_histogram!(
        SQLITE_COMMIT_SECONDS,
        Unit::Seconds,
        "Time of a SQLite group commit."
    );
    describe_histogram!(
        SQLITE_FSYNC_SECONDS,
        Unit::Seconds,
        "Time of an fsync of the SQLite WAL."
    );
    describe_gauge!(
        SQLITE_WAL_BYTES,
        Unit::Bytes,
        "Size of the SQLite WAL file."
    );
    describe_counter!(SQLITE_CHECKPOINTS, "Passive checkpoints of the SQLite WAL.");
    describe_counter!(SQLITE_WAL_RESTARTS, "Restarts of the SQLite WAL.");
    describe_gauge!(
        POSTGRES_POOL_CONNECTIONS,
        "PostgreSQL connections in the pool."
    );
    describe_gauge!(
        POSTGRES_POOL_IDLE,
        "Idle PostgreSQL connections in the pool."
    );
    describe_gauge!(
        POSTGRES_POOL_WAITING,
        "Operations waiting for a PostgreSQL connection."
    );
    describe_histogram!(
        POSTGRES_POOL_WAIT_SECONDS,
        Unit::Seconds,
        "Time an operation waited for a PostgreSQL connection."
    );
    describe_counter!(IDEMPOTENCY_CLAIMS, "Idempotency-Key claims, by outcome.");
    describe_counter!(RATE_LIMIT_REFUSALS, "Requests refused by a limit.");
    describe_counter!(UPLOADS, "Uploads whose bytes were stored.");
    describe_counter!(UPLOAD_BYTES, Unit::Bytes, "Bytes of uploads stored.");
    describe_gauge!(OPEN_CONNECTIONS, "Connections open to the API listener.");
    describe_gauge!(
        RESIDENT_MEMORY_BYTES,
        Unit::Bytes,
        "Resident memory of the process."
    );
    describe_gauge!(BUILD_INFO, "Always 1, labelled with the version.");
}

/// Resident memory from `/proc/self/statm` (Linux), in bytes.
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// A method as a label: the standard ones by name, anything else `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A status as its class (`2xx` ... `5xx`).
fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// A request answered: `route` is the template it matched, `None` if none.
pub fn record_request(
    route: Option<&str>,
    method: &axum::http::Method,
    status: u16,
    took: Duration,
) {
    if !enabled() {
        return;
    }
    let route = route.unwrap_or("unmatched").to_owned();
    let method = method_label(method);
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status_class(status))
        .increment(1);
    metrics::histogram!(HTTP_REQUEST_SECONDS, "route" => route, "method" => method)
        .record(took.as_secs_f64());
}

/// Times a store operation from its start until it is dropped, and then
/// records it; does nothing while metrics are off.
pub struct OperationTimer {
    started: Option<Instant>,
    backend: &'static str,
    kind: &'static str,
}

impl OperationTimer {
    /// Starts timing an operation of `kind` on `backend`.
    pub fn start(backend: &'static str, kind: &'static str) -> Self {
        Self {
            started: enabled().then(Instant::now),
            backend,
            kind,
        }
    }
}

impl Drop for OperationTimer {
    fn drop(&mut self) {
        let Some(started) = self.started else {
            return;
        };
        let (backend, kind) = (self.backend, self.kind);
        metrics::counter!(STORE_OPERATIONS, "backend" => backend, "operation" => kind).increment(1);
        metrics::histogram!(STORE_OPERATION_SECONDS, "backend" => backend, "operation" => kind)
            .record(started.elapsed().as_secs_f64());
    }
}

/// Now, if metrics are on: the start of something to time.
pub fn now() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// Records in the histogram `name` the seconds since `started` (from
/// [`now`]; nothing if metrics were off).
pub fn record_since(name: &'static str, started: Option<Instant>) {
    if let Some(started) = started {
        metrics::histogram!(name).record(started.elapsed().as_secs_f64());
    }
}

/// Records `value` in the histogram `name` (a constant of this module).
pub fn record_histogram(name: &'static str, value: f64) {
    if enabled() {
        metrics::histogram!(name).record(value);
    }
}

/// Sets the gauge `name` (a constant of this module).
pub fn set_gauge(name: &'static str, value: f64) {
    if enabled() {
        metrics::gauge!(name).set(value);
    }
}

/// Adds `delta` to the gauge `name` (a constant of this module).
pub fn add_to_gauge(name: &'static str, delta: f64) {
    if enabled() {
        metrics::gauge!(name).increment(delta);
    }
}

/// Adds `by` to the counter `name` (a constant of this module), labelled
/// `label` = `value` if given.
pub fn count(name: &'static str, label: Option<(&'static str, &'static str)>, by: u64) {
    if !enabled() {
        return;
    }
    match label {
        Some((label, value)) => metrics::counter!(name, label => value).increment(by),
        None => metrics::counter!(name).increment(by),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_take_a_few_fixed_values() {
        assert_eq!(method_label(&axum::http::Method::POST), "POST");
        let odd = axum::http::Method::from_bytes(b"BREW").expect("a method");
        assert_eq!(method_label(&odd), "other");
        assert_eq!(status_class(201), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(999), "5xx");
    }
}
