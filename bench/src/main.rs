//! ticketd-bench: drives a real `ticketd serve` (release build) with a
//! closed-loop HTTP load, and the same load against a bare baseline server
//! whose throughput is the ceiling each figure is reported against.
//!
//! Run it from the repository root:
//! `cargo run --release -p ticketd-bench -- --help`.

mod baseline;
mod load;
mod postgres;
mod procfs;
mod provision;
mod rendering;
mod report;
mod server;
mod soak;

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use http_body_util::Full;
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use ticketd::core::page::{Cursor, MessageCursor};
use ticketd::store::DatabaseUrl;

use crate::load::{RequestFactory, Rng};
use crate::provision::{Fixture, Growth};
use crate::report::{CeilingResult, Latency, Machine, Report, ScenarioResult};
use crate::server::{ServerProcess, free_addr};

/// Load benchmark for ticketd.
#[derive(Debug, Parser)]
#[command(name = "ticketd-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Internal>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// The bare baseline server (started by the benchmark itself).
    #[command(hide = true)]
    Baseline {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        response_bytes: usize,
    },
}

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    /// GET /api/v2/support/tickets/{id}
    GetTicket,
    /// GET /api/v2/support/tickets/{id}/messages, a page from anywhere in the thread
    ListMessages,
    /// 80% reads (get ticket, list messages), 20% replies
    Mixed,
    /// POST /api/v2/support/tickets
    CreateTicket,
    /// POST /api/v2/support/tickets/{id}/messages (the headline)
    Reply,
    /// POST /api/v2/support/uploads, a file of --upload-bytes as the raw
    /// body (not in the default list: every upload stays on disk until the
    /// run ends)
    Upload,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::GetTicket => "get-ticket",
            Scenario::ListMessages => "list-messages",
            Scenario::Mixed => "mixed",
            Scenario::CreateTicket => "create-ticket",
            Scenario::Reply => "reply",
            Scenario::Upload => "upload",
        }
    }

    /// The clients the scenario runs with: --upload-concurrency for
    /// uploads, whose bytes would otherwise fill the disk (and the
    /// loopback) many times faster than replies do, --concurrency for the
    /// rest.
    fn concurrency(self, args: &RunArgs) -> usize {
        match self {
            Scenario::Upload => args.upload_concurrency,
            _ => args.concurrency,
        }
    }
}

/// The database the servers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum Backend {
    /// A SQLite file in the data directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server of --postgres-url.
    Postgres,
}

#[derive(Debug, clap::Args, serde::Serialize)]
struct RunArgs {
    /// The database backend the servers use.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// PostgreSQL URL with rights to create databases; the run gets a fresh
    /// database (ticketd_bench_<ulid>) on the same server.
    #[arg(long, default_value = postgres::DEFAULT_ADMIN_URL)]
    #[serde(skip)]
    postgres_url: String,
    /// `ticketd serve` processes sharing the database (more than 1 needs
    /// --backend postgres); clients are spread round-robin over them.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Keep the run's database (the SQLite file, or the PostgreSQL
    /// database) instead of removing it at the end; the server logs are
    /// kept either way.
    #[arg(long)]
    keep_data: bool,
    /// Scenarios to run, in order (writes last, so reads see the stated size).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "get-ticket,list-messages,mixed,create-ticket,reply"
    )]
    scenarios: Vec<Scenario>,
    /// Stored messages to measure at, ascending; the database grows between
    /// sizes. Default: 10000,100000,1000000 on SQLite; 10000 on PostgreSQL,
    /// where growing the database one append at a time is slow.
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<i64>>,
    /// Concurrent clients (one keep-alive connection each).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Bytes of each file the `upload` scenario sends (ticketd's default
    /// limit, max_upload_bytes, is 26214400).
    #[arg(long, default_value_t = 1024 * 1024)]
    upload_bytes: usize,
    /// Concurrent clients of the `upload` scenario, in place of
    /// --concurrency.
    #[arg(long, default_value_t = 8)]
    upload_concurrency: usize,
    /// Seconds measured per scenario.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Tickets to spread the load over.
    #[arg(long, default_value_t = 1000)]
    tickets: usize,
    /// Customers owning those tickets (one API key each).
    #[arg(long, default_value_t = 100)]
    customers: usize,
    /// The ticketd binary; default: build target/release/ticketd first.
    #[arg(long)]
    server_binary: Option<PathBuf>,
    /// Where the SQLite database and the server logs go; default: a fresh
    /// directory under target/bench-data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Send replies (in `reply` and `mixed`) with `"encrypted": true`, so
    /// that they are sealed at rest: the cost of encryption is this run
    /// against one without the flag.
    #[arg(long)]
    encrypted: bool,
    /// Directory for the JSON result file.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Send a fresh Idempotency-Key with every write (replies, ticket
    /// creations), so that runs with and without it show what idempotency
    /// costs on the write path.
    #[arg(long)]
    idempotency_keys: bool,
    /// Only measure what hostile Markdown costs to render (in-process, no
    /// servers); every full run reports it too.
    #[arg(long)]
    rendering_only: bool,
    /// Instead of the scenarios, run the mixed one for this many minutes
    /// against one server at the first size, reported minute by minute
    /// (throughput, p99, errors, RSS, WAL size).
    #[arg(long)]
    soak_minutes: Option<u64>,
    /// Run the servers with Prometheus metrics on (a `metrics_token`, and a
    /// scrape of `/metrics` every second), so that runs with and without it
    /// show what recording them costs.
    #[arg(long)]
    metrics: bool,
}

const REPLY_BODY: &str = r#"{"message":"Here are the extra details you asked for."}"#;
const ENCRYPTED_REPLY_BODY: &str =
    r#"{"message":"Here are the extra details you asked for.","encrypted":true}"#;
const CREATE_BODY: &str = r#"{"subject":"Benchmark ticket","message":"Opened by the benchmark."}"#;

/// Where the `upload` scenario posts its files.
const UPLOAD_PATH: &str = "/api/v2/support/uploads?filename=bench.png";

/// The PNG signature, which ticketd's upload check wants first.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The file every upload sends: `bytes` long, the PNG signature and then
/// pseudo-random bytes (which neither compress nor repeat in short runs).
/// Built once and shared, so the load generator copies nothing per request.
fn upload_file(bytes: usize) -> Bytes {
    let mut rng = Rng::new(0x5eed);
    let mut data = Vec::with_capacity(bytes);
    data.extend_from_slice(&PNG_SIGNATURE[..PNG_SIGNATURE.len().min(bytes)]);
    while data.len() < bytes {
        let word = rng.next_u64().to_le_bytes();
        let room = (bytes - data.len()).min(word.len());
        data.extend_from_slice(&word[..room]);
    }
    Bytes::from(data)
}

/// `POST UPLOAD_PATH` with `file` as the raw body, declared a PNG.
fn upload_request(auth: &HeaderValue, file: &Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method("POST")
        .uri(UPLOAD_PATH)
        .header(HOST, "127.0.0.1")
        .header(AUTHORIZATION, auth.clone())
        .header(CONTENT_TYPE, "image/png")
        .body(Full::new(file.clone()))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// A target ticket as the load sees it.
struct Target {
    path: String,
    auth: HeaderValue,
    messages: i64,
}

fn request(
    method: &str,
    path: &str,
    auth: &HeaderValue,
    body: Option<&'static str>,
) -> Request<Full<Bytes>> {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "127.0.0.1")
        .header(AUTHORIZATION, auth.clone());
    let built = match body {
        Some(body) => builder
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes()))),
        None => builder.body(Full::new(Bytes::new())),
    };
    built.unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// Fresh idempotency keys: a prefix of this run's own and a counter, so
/// that no key repeats, across sizes and runs on one database alike.
struct KeySource {
    prefix: String,
    next: AtomicU64,
}

impl KeySource {
    fn new() -> Self {
        Self {
            prefix: ulid::Ulid::new().to_string().to_ascii_lowercase(),
            next: AtomicU64::new(0),
        }
    }

    /// `request` with the next key, if keys are on.
    fn key(keys: Option<&KeySource>, mut request: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
        if let Some(keys) = keys {
            let n = keys.next.fetch_add(1, Ordering::Relaxed);
            if let Ok(value) = HeaderValue::from_str(&format!("{}-{n}", keys.prefix)) {
                request.headers_mut().insert("idempotency-key", value);
            }
        }
        request
    }
}

fn list_page(target: &Target, rng: &mut Rng) -> Request<Full<Bytes>> {
    let last_start = usize::try_from(target.messages - 25).unwrap_or(0);
    let seq = rng.below(last_start + 1);
    let path = if seq == 0 {
        format!("{}/messages?limit=25", target.path)
    } else {
        let cursor = MessageCursor { seq: seq as i64 }.encode();
        format!("{}/messages?limit=25&cursor={cursor}", target.path)
    };
    request("GET", &path, &target.auth, None)
}

fn factory(
    scenario: Scenario,
    fixture: &Fixture,
    encrypted: bool,
    keys: Option<Arc<KeySource>>,
    upload: &Bytes,
) -> Result<RequestFactory, String> {
    let reply_body = if encrypted {
        ENCRYPTED_REPLY_BODY
    } else {
        REPLY_BODY
    };
    let targets: Vec<Target> = fixture
        .tickets
        .iter()
        .map(|ticket| {
            HeaderValue::from_str(&format!("Bearer {}", ticket.owner_token))
                .map(|auth| Target {
                    path: format!("/api/v2/support/tickets/{}", ticket.id),
                    auth,
                    messages: ticket.messages,
                })
                .map_err(|error| error.to_string())
        })
        .collect::<Result<_, _>>()?;
    let count = targets.len();
    let pick = move |rng: &mut Rng| -> usize { rng.below(count) };
    let targets_for = Arc::new(targets);
    Ok(match scenario {
        Scenario::GetTicket => Arc::new(move |rng| {
            let target = &targets_for[pick(rng)];
            request("GET", &target.path, &target.auth, None)
        }),
        Scenario::ListMessages => Arc::new(move |rng| list_page(&targets_for[pick(rng)], rng)),
        Scenario::Reply => Arc::new(move |rng| {
            let target = &targets_for[pick(rng)];
            let reply = request(
                "POST",
                &format!("{}/messages", target.path),
                &target.auth,
                Some(reply_body),
            );
            KeySource::key(keys.as_deref(), reply)
        }),
        Scenario::CreateTicket => Arc::new(move |rng| {
            let target = &targets_for[pick(rng)];
            let create = request(
                "POST",
                "/api/v2/support/tickets",
                &target.auth,
                Some(CREATE_BODY),
            );
            KeySource::key(keys.as_deref(), create)
        }),
        Scenario::Upload => {
            let file = upload.clone();
            Arc::new(move |rng| upload_request(&targets_for[pick(rng)].auth, &file))
        }
        Scenario::Mixed => Arc::new(move |rng| {
            let target = &targets_for[pick(rng)];
            match rng.below(10) {
                0 | 1 => {
                    let reply = request(
                        "POST",
                        &format!("{}/messages", target.path),
                        &target.auth,
                        Some(reply_body),
                    );
                    KeySource::key(keys.as_deref(), reply)
                }
                2..=5 => request("GET", &target.path, &target.auth, None),
                _ => list_page(target, rng),
            }
        }),
    })
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn build_server() -> Result<PathBuf, String> {
    let root = workspace_root();
    eprintln!("building ticketd (release)...");
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--quiet", "--bin", "ticketd"])
            .current_dir(&root)
            .status()
            .map_err(|error| format!("cannot run cargo: {error}"))?;
    if !status.success() {
        return Err("building ticketd failed".into());
    }
    Ok(root.join("target/release/ticketd"))
}

fn timestamp() -> String {
    ticketd::core::time::Timestamp::now().to_string()
}

async fn measure_ceiling(
    scenario: Scenario,
    response_bytes: usize,
    args: &RunArgs,
    factory: RequestFactory,
) -> Result<CeilingResult, String> {
    let addr = free_addr().map_err(|error| error.to_string())?;
    let me = std::env::current_exe().map_err(|error| error.to_string())?;
    let baseline_args = vec![
        "baseline".to_owned(),
        "--listen".to_owned(),
        addr.to_string(),
        "--response-bytes".to_owned(),
        response_bytes.to_string(),
    ];
    let baseline = ServerProcess::start(&me, &baseline_args, addr, None).await?;
    let outcome = load::run(
        &[addr],
        scenario.concurrency(args),
        Duration::from_secs(args.warmup_secs),
        Duration::from_secs(args.duration_secs),
        factory,
    )
    .await?;
    baseline.stop().await?;
    Ok(CeilingResult {
        scenario: scenario.name().into(),
        throughput_rps: outcome.throughput(),
        throughput_mib_per_s: upload_mib_per_s(scenario, args, &outcome),
        latency: Latency::from_histogram(&outcome.latencies),
        response_bytes,
    })
}

/// The file bytes the `upload` scenario got stored a second, in MiB: the
/// 201s of the window times the file size (a refused or failed upload
/// counts for nothing); `None` for the other scenarios.
fn upload_mib_per_s(
    scenario: Scenario,
    args: &RunArgs,
    outcome: &load::LoadOutcome,
) -> Option<f64> {
    (scenario == Scenario::Upload).then(|| {
        let created = outcome.statuses_measured.get(&201).copied().unwrap_or(0);
        created as f64 / outcome.window.as_secs_f64() * args.upload_bytes as f64 / (1024.0 * 1024.0)
    })
}

/// The size of ticketd's answer to one request of the scenario.
async fn sample_response_bytes(
    addr: SocketAddr,
    factory: &RequestFactory,
) -> Result<usize, String> {
    let (status, body) = load::send_once(addr, factory(&mut Rng::new(7)))
        .await
        .map_err(|error| format!("sampling a response: {error}"))?;
    if status >= 400 {
        return Err(format!(
            "sampling a response got {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(body.len())
}

impl RunArgs {
    /// Refuses combinations the benchmark cannot run.
    fn validate(&self) -> Result<(), String> {
        if self.nodes == 0 {
            return Err("--nodes must be at least 1".into());
        }
        if self.nodes > 1 && self.backend != Backend::Postgres {
            return Err("--nodes above 1 needs --backend postgres: SQLite serves one node".into());
        }
        if self.backend == Backend::Postgres
            && !matches!(
                DatabaseUrl::parse(&self.postgres_url),
                Ok(DatabaseUrl::Postgres(_))
            )
        {
            return Err("--postgres-url must be a postgres:// URL".into());
        }
        if self.concurrency == 0
            || self.upload_concurrency == 0
            || self.tickets == 0
            || self.customers == 0
        {
            return Err(
                "--concurrency, --upload-concurrency, --tickets and --customers must be at least 1"
                    .into(),
            );
        }
        if self.upload_bytes < PNG_SIGNATURE.len() {
            return Err(format!(
                "--upload-bytes must be at least {} (a PNG signature)",
                PNG_SIGNATURE.len()
            ));
        }
        Ok(())
    }

    /// The sizes to measure at, ascending.
    fn sizes(&self) -> Vec<i64> {
        let mut sizes = self.sizes.clone().unwrap_or_else(|| match self.backend {
            Backend::Sqlite => vec![10_000, 100_000, 1_000_000],
            Backend::Postgres => vec![10_000],
        });
        sizes.sort_unstable();
        sizes
    }
}

/// The `--database` argument for `ticketd serve`.
fn database_arg(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        DatabaseUrl::Postgres(url) => url.clone(),
    }
}

/// The `ticketd serve` processes of one database size.
struct Nodes {
    servers: Vec<ServerProcess>,
    addrs: Vec<SocketAddr>,
    /// The tasks scraping each node's metrics (with --metrics).
    scrapers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for scraper in &self.scrapers {
            scraper.abort();
        }
    }
}

/// The `metrics_token` of the servers of a run with --metrics.
const METRICS_TOKEN: &str = "ticketd-bench-metrics-token";

impl Nodes {
    async fn start(
        binary: &Path,
        database: &DatabaseUrl,
        count: usize,
        data_dir: &Path,
        size: i64,
        metrics: bool,
    ) -> Result<Self, String> {
        let mut nodes = Self {
            servers: Vec::with_capacity(count),
            addrs: Vec::with_capacity(count),
            scrapers: Vec::new(),
        };
        for node in 0..count {
            let addr = free_addr().map_err(|error| error.to_string())?;
            let server_args: Vec<String> = [
                "serve",
                "--listen",
                &addr.to_string(),
                "--database",
                &database_arg(database),
                "--rate-limit-per-minute",
                "1000000000",
                "--max-concurrent-requests",
                "4096",
                // Every client connects from 127.0.0.1, and --concurrency
                // may be more than one address is allowed by default.
                "--max-connections-per-address",
                "0",
                "--max-concurrent-requests-per-key",
                "4096",
                // Every node of the run shares one key file.
                "--encryption-key-file",
                &data_dir.join("encryption.key").to_string_lossy(),
            ]
            .iter()
            .map(|arg| (*arg).to_owned())
            .chain(
                metrics
                    .then(|| ["--metrics-token".to_owned(), METRICS_TOKEN.to_owned()])
                    .into_iter()
                    .flatten(),
            )
            .collect();
            let log = if count == 1 {
                data_dir.join(format!("ticketd-serve-{size}.log"))
            } else {
                data_dir.join(format!("ticketd-serve-{size}-node{node}.log"))
            };
            let server = ServerProcess::start(binary, &server_args, addr, Some(&log)).await?;
            nodes.servers.push(server);
            nodes.addrs.push(addr);
            if metrics {
                let scraper = server::scrape_metrics(addr, METRICS_TOKEN.to_owned()).await?;
                nodes.scrapers.push(scraper);
            }
        }
        Ok(nodes)
    }

    fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(ServerProcess::pid).collect()
    }

    async fn stop(mut self) -> Result<(), String> {
        for server in std::mem::take(&mut self.servers) {
            server.stop().await?;
        }
        Ok(())
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    args.validate()?;
    let started_at = timestamp();
    let server_binary = match &args.server_binary {
        Some(path) => path.clone(),
        None => build_server()?,
    };
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => workspace_root()
            .join("target/bench-data")
            .join(started_at.replace(':', "-")),
    };
    std::fs::create_dir_all(&data_dir).map_err(|error| error.to_string())?;
    let data_dir = std::fs::canonicalize(&data_dir).map_err(|error| error.to_string())?;
    match args.backend {
        Backend::Sqlite => {
            let path = data_dir.join("ticketd.db");
            let database = DatabaseUrl::Sqlite(path.clone());
            let outcome = measure(&args, &started_at, &server_binary, &data_dir, &database).await;
            if args.keep_data {
                eprintln!("kept SQLite database {} (--keep-data)", path.display());
            } else {
                remove_sqlite_files(&path);
                remove_blobs(&data_dir.join("blobs"));
            }
            outcome
        }
        Backend::Postgres => {
            let run_database = postgres::RunDatabase::create(&args.postgres_url).await?;
            eprintln!("created PostgreSQL database {}", run_database.name());
            let database = DatabaseUrl::Postgres(run_database.url().to_owned());
            // Dropping the measurement (on Ctrl-C) kills the servers; the
            // database is dropped either way.
            let outcome = tokio::select! {
                outcome = measure(&args, &started_at, &server_binary, &data_dir, &database) => outcome,
                _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
            };
            let cleanup = if args.keep_data {
                eprintln!(
                    "kept PostgreSQL database {} (--keep-data)",
                    run_database.name()
                );
                Ok(())
            } else {
                let name = run_database.name().to_owned();
                run_database
                    .drop_database()
                    .await
                    .map(|()| eprintln!("dropped PostgreSQL database {name}"))
            };
            match (outcome, cleanup) {
                (Ok(()), cleanup) => cleanup,
                (Err(error), Ok(())) => Err(error),
                (Err(error), Err(cleanup)) => Err(format!("{error}; {cleanup}")),
            }
        }
    }
}

/// Removes the SQLite database at `path` with its WAL and shared-memory
/// files: a run at 10^6 messages leaves gigabytes behind.
fn remove_sqlite_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        if let Err(error) = std::fs::remove_file(&file)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("cannot remove {}: {error}", Path::new(&file).display());
        }
    }
}

/// Removes the blob directory beside the SQLite file: every file the
/// `upload` scenario sent is there (unattached uploads are only swept a day
/// later), gigabytes after a run.
fn remove_blobs(dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("cannot remove {}: {error}", dir.display());
    }
}

/// Provisions `database`, runs every size and scenario against it, prints
/// the table and writes the JSON report.
async fn measure(
    args: &RunArgs,
    started_at: &str,
    server_binary: &Path,
    data_dir: &Path,
    database: &DatabaseUrl,
) -> Result<(), String> {
    let growth = match database {
        DatabaseUrl::Sqlite(_) => Growth::TicketByTicket,
        DatabaseUrl::Postgres(_) => Growth::RoundRobin,
    };
    eprintln!(
        "provisioning {} customers and {} tickets...",
        args.customers, args.tickets
    );
    let mut fixture = {
        let store = provision::open(database).await?;
        provision::provision(&store, args.customers, args.tickets).await?
    };
    let postgres_server = match database {
        DatabaseUrl::Postgres(url) => {
            let found = postgres::ServerProcesses::find(url).await?;
            if found.is_none() {
                eprintln!(
                    "the PostgreSQL server's processes are not visible here; not measuring their CPU"
                );
            }
            found
        }
        DatabaseUrl::Sqlite(_) => None,
    };

    let keys = args.idempotency_keys.then(|| Arc::new(KeySource::new()));
    let upload = upload_file(args.upload_bytes);
    let mut ceilings: BTreeMap<Scenario, CeilingResult> = BTreeMap::new();
    let mut results = Vec::new();
    let mut idle_rss_mib = f64::MAX;
    for size in args.sizes() {
        {
            eprintln!("growing the database to {size} messages...");
            let store = provision::open(database).await?;
            provision::grow_to(&store, &mut fixture, size, growth).await?;
        }
        let nodes = Nodes::start(
            server_binary,
            database,
            args.nodes,
            data_dir,
            size,
            args.metrics,
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = nodes
            .pids()
            .into_iter()
            .map(|pid| procfs::memory_mib(pid, "VmRSS").unwrap_or(0.0))
            .fold(0.0, f64::max);
        idle_rss_mib = idle_rss_mib.min(idle);

        if let Some(minutes) = args.soak_minutes {
            let factory = factory(
                Scenario::Mixed,
                &fixture,
                args.encrypted,
                keys.clone(),
                &upload,
            )?;
            let wal = match database {
                DatabaseUrl::Sqlite(path) => {
                    let mut wal = path.as_os_str().to_owned();
                    wal.push("-wal");
                    Some(PathBuf::from(wal))
                }
                DatabaseUrl::Postgres(_) => None,
            };
            eprintln!("soaking: the mixed scenario for {minutes} minutes at {size} messages...");
            let minutes = soak::run(
                &nodes.addrs,
                nodes.pids()[0],
                wal.as_deref(),
                args.concurrency,
                Duration::from_secs(args.warmup_secs),
                minutes,
                factory,
            )
            .await?;
            nodes.stop().await?;
            let path = args
                .out
                .join(format!("soak-{}.json", started_at.replace(':', "-")));
            std::fs::create_dir_all(&args.out).map_err(|error| error.to_string())?;
            let json = serde_json::to_string_pretty(&minutes).map_err(|error| error.to_string())?;
            std::fs::write(&path, json).map_err(|error| error.to_string())?;
            eprintln!("wrote {}", path.display());
            return Ok(());
        }
        for &scenario in &args.scenarios {
            let factory = factory(scenario, &fixture, args.encrypted, keys.clone(), &upload)?;
            if let Entry::Vacant(slot) = ceilings.entry(scenario) {
                let bytes = sample_response_bytes(nodes.addrs[0], &factory).await?;
                eprintln!(
                    "measuring the ceiling for {} ({bytes}-byte responses)...",
                    scenario.name()
                );
                slot.insert(measure_ceiling(scenario, bytes, args, Arc::clone(&factory)).await?);
            }
            eprintln!("running {} at {size} messages...", scenario.name());
            let messages_at_start = provision::count_messages(database).await?;
            let uploads_at_start = provision::count_stored_uploads(database).await?;
            let pids = nodes.pids();
            for pid in &pids {
                // Resets the peak-RSS counter so VmHWM covers this run only.
                let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
            }
            let cpu = |pid: &u32| procfs::cpu_seconds(*pid).unwrap_or(0.0);
            let cpu_before: Vec<f64> = pids.iter().map(cpu).collect();
            let postgres_before = postgres_server
                .as_ref()
                .and_then(postgres::ServerProcesses::cpu_seconds);
            let outcome = load::run(
                &nodes.addrs,
                scenario.concurrency(args),
                Duration::from_secs(args.warmup_secs),
                Duration::from_secs(args.duration_secs),
                factory,
            )
            .await?;
            let postgres_after = postgres_server
                .as_ref()
                .and_then(postgres::ServerProcesses::cpu_seconds);
            let cpu_per_node: Vec<f64> = pids
                .iter()
                .map(cpu)
                .zip(&cpu_before)
                .map(|(after, before)| after - before)
                .collect();
            let peak_per_node: Vec<f64> = pids
                .iter()
                .map(|pid| procfs::memory_mib(*pid, "VmHWM").unwrap_or(0.0))
                .collect();
            let messages_added = provision::count_messages(database).await? - messages_at_start;
            let uploads_added = provision::count_stored_uploads(database).await? - uploads_at_start;
            // What a 201 leaves: a stored upload, or a message.
            let rows_added = if scenario == Scenario::Upload {
                uploads_added
            } else {
                messages_added
            };
            let created = outcome.statuses_total.get(&201).copied().unwrap_or(0);
            let ceiling = ceilings
                .get(&scenario)
                .map_or(0.0, |ceiling| ceiling.throughput_rps);
            let errors = outcome.errors();
            results.push(ScenarioResult {
                scenario: scenario.name().into(),
                messages_at_start,
                throughput_rps: outcome.throughput(),
                concurrency: scenario.concurrency(args),
                upload_bytes: (scenario == Scenario::Upload).then_some(args.upload_bytes),
                throughput_mib_per_s: upload_mib_per_s(scenario, args, &outcome),
                ratio_to_ceiling: if ceiling > 0.0 {
                    outcome.throughput() / ceiling
                } else {
                    0.0
                },
                latency: Latency::from_histogram(&outcome.latencies),
                statuses: outcome
                    .statuses_measured
                    .iter()
                    .map(|(s, c)| (s.to_string(), *c))
                    .collect(),
                errors,
                server_cpu_seconds: cpu_per_node.iter().sum(),
                server_peak_rss_mib: peak_per_node.iter().copied().fold(0.0, f64::max),
                server_cpu_seconds_per_node: cpu_per_node,
                server_peak_rss_mib_per_node: peak_per_node,
                postgres_cpu_seconds: postgres_before
                    .zip(postgres_after)
                    .map(|(before, after)| after - before),
                created,
                messages_added,
                uploads_added,
                stored_matches_created: i64::try_from(created)
                    .is_ok_and(|created| created == rows_added),
            });
        }
        nodes.stop().await?;
    }

    let mut settings = serde_json::to_value(args).map_err(|error| error.to_string())?;
    if let Some(settings) = settings.as_object_mut() {
        settings.insert("sizes".into(), serde_json::json!(args.sizes()));
    }
    let report = Report {
        started_at: started_at.to_owned(),
        backend: match args.backend {
            Backend::Sqlite => "sqlite".into(),
            Backend::Postgres => "postgres".into(),
        },
        nodes: args.nodes,
        database: database.redacted(),
        machine: Machine::describe(),
        settings,
        idle_rss_mib,
        ceilings: ceilings.into_values().collect(),
        results,
        rendering: rendering::measure(),
    };
    println!("{}", report::table(&report));
    std::fs::create_dir_all(&args.out).map_err(|error| error.to_string())?;
    let file = args
        .out
        .join(format!("{}.json", started_at.replace(':', "-")));
    let json = serde_json::to_string_pretty(&report).map_err(|error| error.to_string())?;
    std::fs::write(&file, json).map_err(|error| error.to_string())?;
    eprintln!("results written to {}", file.display());
    let mismatches = report
        .results
        .iter()
        .filter(|result| !result.stored_matches_created)
        .count();
    if mismatches > 0 {
        return Err(format!(
            "{mismatches} scenario(s) stored a different number of messages (or uploads) \
             than they got 201s"
        ));
    }
    Ok(())
}

fn ensure_exists(path: &Path) -> Result<(), String> {
    if path.exists() {
        Ok(())
    } else {
        Err(format!("{} does not exist", path.display()))
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Internal::Baseline {
            listen,
            response_bytes,
        }) => baseline::serve(listen, response_bytes)
            .await
            .map_err(|error| error.to_string()),
        None if cli.run.rendering_only => {
            print!("{}", rendering::table(&rendering::measure()));
            Ok(())
        }
        None => match &cli.run.server_binary {
            Some(path) => match ensure_exists(path) {
                Ok(()) => run(cli.run).await,
                Err(error) => Err(error),
            },
            None => run(cli.run).await,
        },
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ticketd-bench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
