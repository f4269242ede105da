//! The benchmark's results: a table on stdout and a JSON document.

use serde::Serialize;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles from a histogram in microseconds.
    pub fn from_histogram(histogram: &hdrhistogram::Histogram<u64>) -> Self {
        let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        Self {
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: histogram.max() as f64 / 1000.0,
        }
    }
}

/// One scenario measured against the bare baseline.
#[derive(Debug, Clone, Serialize)]
pub struct CeilingResult {
    pub scenario: String,
    pub throughput_rps: f64,
    /// `upload` only: file bytes a second, in MiB.
    pub throughput_mib_per_s: Option<f64>,
    pub latency: Latency,
    pub response_bytes: usize,
}

/// One scenario measured against ticketd at one database size.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub messages_at_start: i64,
    pub throughput_rps: f64,
    /// The clients of the load (`--upload-concurrency` for `upload`).
    pub concurrency: usize,
    /// `upload` only: the size of each file sent.
    pub upload_bytes: Option<usize>,
    /// `upload` only: file bytes a second, in MiB (req/s times the size).
    pub throughput_mib_per_s: Option<f64>,
    pub ratio_to_ceiling: f64,
    pub latency: Latency,
    /// Responses by status in the measurement window ("0" = transport error).
    pub statuses: std::collections::BTreeMap<String, u64>,
    pub errors: u64,
    /// CPU seconds of all nodes together, warm-up and window.
    pub server_cpu_seconds: f64,
    /// The largest node's peak RSS.
    pub server_peak_rss_mib: f64,
    /// CPU seconds of each node, in node order.
    pub server_cpu_seconds_per_node: Vec<f64>,
    /// Peak RSS of each node, in node order.
    pub server_peak_rss_mib_per_node: Vec<f64>,
    /// CPU seconds of the PostgreSQL server's processes (all of them, not
    /// only those serving the benchmark), when they are visible in /proc.
    pub postgres_cpu_seconds: Option<f64>,
    /// 201 responses over the whole run, warm-up included.
    pub created: u64,
    /// Message rows added during the run, counted in the database.
    pub messages_added: i64,
    /// Stored upload records added during the run, counted in the database.
    pub uploads_added: i64,
    /// Whether every 201 left exactly one new message row (one new stored
    /// upload, for `upload`).
    pub stored_matches_created: bool,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_at: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// `ticketd serve` processes sharing the database.
    pub nodes: usize,
    /// The database the servers used (a password, if any, redacted).
    pub database: String,
    pub machine: Machine,
    pub settings: serde_json::Value,
    pub idle_rss_mib: f64,
    pub ceilings: Vec<CeilingResult>,
    pub results: Vec<ScenarioResult>,
    /// What the hostile Markdown bodies cost to render.
    pub rendering: Vec<crate::rendering::RenderResult>,
}

/// Where the run happened.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    /// Reads the machine's description from /proc.
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map_or("unknown", |(_, name)| name.trim())
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find(|line| line.starts_with("MemTotal"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0.0);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

/// The human-readable table.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "machine: {} ({} cores, {} GiB), kernel {}\nidle RSS after start: {:.1} MiB\n\n",
        report.machine.cpu,
        report.machine.cores,
        report.machine.memory_gib,
        report.machine.kernel,
        report.idle_rss_mib
    ));
    out.push_str(&format!(
        "backend: {}, {} node{} ({})\n",
        report.backend,
        report.nodes,
        if report.nodes == 1 { "" } else { "s" },
        report.database
    ));
    if report.nodes > 1 {
        out.push_str("cpu s: all nodes together; peak MiB: the largest node's\n");
    }
    if report.settings["idempotency_keys"] == true {
        out.push_str("every write carries a fresh Idempotency-Key\n");
    }
    out.push('\n');
    out.push_str("ceiling (bare baseline server, same load):\n");
    out.push_str(&format!(
        "  {:<14} {:>10} {:>8} {:>8} {:>8} {:>8}\n",
        "scenario", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9"
    ));
    for ceiling in &report.ceilings {
        out.push_str(&format!(
            "  {:<14} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}\n",
            ceiling.scenario,
            ceiling.throughput_rps,
            ceiling.latency.p50_ms,
            ceiling.latency.p90_ms,
            ceiling.latency.p99_ms,
            ceiling.latency.p999_ms
        ));
    }
    let postgres_cpu = report
        .results
        .iter()
        .any(|result| result.postgres_cpu_seconds.is_some());
    out.push_str("\nticketd:\n");
    out.push_str(&format!(
        "  {:<14} {:>9} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7} {:>8} {:>6}",
        "scenario",
        "messages",
        "req/s",
        "ratio",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9",
        "errors",
        "cpu s",
        "peak MiB",
        "stored"
    ));
    if postgres_cpu {
        out.push_str(&format!(" {:>8}", "pg cpu s"));
    }
    out.push('\n');
    for result in &report.results {
        out.push_str(&format!(
            "  {:<14} {:>9} {:>9.0} {:>5.0}% {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>7.1} {:>8.1} {:>6}",
            result.scenario,
            result.messages_at_start,
            result.throughput_rps,
            result.ratio_to_ceiling * 100.0,
            result.latency.p50_ms,
            result.latency.p90_ms,
            result.latency.p99_ms,
            result.latency.p999_ms,
            result.errors,
            result.server_cpu_seconds,
            result.server_peak_rss_mib,
            if result.stored_matches_created { "ok" } else { "MISMATCH" }
        ));
        if postgres_cpu {
            match result.postgres_cpu_seconds {
                Some(seconds) => out.push_str(&format!(" {seconds:>8.1}")),
                None => out.push_str(&format!(" {:>8}", "-")),
            }
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&upload_note(report));
    out.push_str(&crate::rendering::table(&report.rendering));
    out
}

/// The closing note on the `upload` runs: file bytes a second against the
/// ceiling's, and the server's peak RSS, which streaming keeps from
/// growing with the file size.
fn upload_note(report: &Report) -> String {
    let ceiling = report
        .ceilings
        .iter()
        .find(|ceiling| ceiling.scenario == "upload")
        .and_then(|ceiling| ceiling.throughput_mib_per_s);
    let mut out = String::new();
    for result in &report.results {
        let (Some(bytes), Some(mib_per_s)) = (result.upload_bytes, result.throughput_mib_per_s)
        else {
            continue;
        };
        out.push_str(&format!(
            "upload: {:.1} MiB files, {} clients, at {} messages: {mib_per_s:.1} MiB/s",
            bytes as f64 / (1024.0 * 1024.0),
            result.concurrency,
            result.messages_at_start,
        ));
        if let Some(ceiling) = ceiling.filter(|ceiling| *ceiling > 0.0) {
            out.push_str(&format!(
                " ({:.0}% of the baseline's {ceiling:.1} MiB/s)",
                mib_per_s / ceiling * 100.0
            ));
        }
        out.push_str(&format!(
            "; server peak RSS {:.1} MiB (idle {:.1} MiB)\n",
            result.server_peak_rss_mib, report.idle_rss_mib
        ));
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}
