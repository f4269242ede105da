//! The closed-loop load generator: `concurrency` workers, each on its own
//! keep-alive HTTP/1.1 connection, send a request, wait for the whole
//! response, record its latency, and send the next. With several server
//! addresses, worker `i` connects to address `i mod n`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A small, fast generator for picking targets (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound.max(1) as u64) as usize
    }
}

/// Builds the next request a worker sends.
pub type RequestFactory = Arc<dyn Fn(&mut Rng) -> Request<Full<Bytes>> + Send + Sync>;

/// What a load run measured.
pub struct LoadOutcome {
    /// Latencies of requests completed in the measurement window, in µs.
    pub latencies: Histogram<u64>,
    /// Responses by status over the whole run (warm-up included); status 0
    /// counts transport errors.
    pub statuses_total: BTreeMap<u16, u64>,
    /// Responses by status within the measurement window.
    pub statuses_measured: BTreeMap<u16, u64>,
    /// Length of the measurement window.
    pub window: Duration,
}

impl LoadOutcome {
    /// Responses in the measurement window that were transport errors or
    /// 4xx/5xx.
    pub fn errors(&self) -> u64 {
        self.statuses_measured
            .iter()
            .filter(|(status, _)| **status == 0 || **status >= 400)
            .map(|(_, count)| count)
            .sum()
    }

    /// Completed requests per second in the measurement window.
    pub fn throughput(&self) -> f64 {
        let completed: u64 = self.statuses_measured.values().sum();
        completed as f64 / self.window.as_secs_f64()
    }
}

async fn connect(addr: SocketAddr) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

struct WorkerResult {
    latencies: Histogram<u64>,
    total: BTreeMap<u16, u64>,
    measured: BTreeMap<u16, u64>,
}

/// An empty histogram for 1 µs to 60 s at three significant figures.
fn new_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|error| error.to_string())
}

async fn worker(
    id: u64,
    latencies: Histogram<u64>,
    addr: SocketAddr,
    factory: RequestFactory,
    measure_from: Instant,
    stop_at: Instant,
) -> WorkerResult {
    let mut rng = Rng::new(id + 1);
    let mut result = WorkerResult {
        latencies,
        total: BTreeMap::new(),
        measured: BTreeMap::new(),
    };
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < stop_at {
        let ready = match sender.as_mut() {
            Some(ready) => ready,
            None => match connect(addr).await {
                Ok(fresh) => sender.insert(fresh),
                Err(_) => {
                    *result.total.entry(0).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let request = factory(&mut rng);
        let started = Instant::now();
        let status = match ready.send_request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.into_body().collect().await {
                    Ok(_) => status,
                    Err(_) => 0,
                }
            }
            Err(_) => 0,
        };
        let finished = Instant::now();
        if status == 0 {
            sender = None;
        }
        *result.total.entry(status).or_default() += 1;
        if started >= measure_from && finished <= stop_at {
            *result.measured.entry(status).or_default() += 1;
            let micros = u64::try_from((finished - started).as_micros()).unwrap_or(u64::MAX);
            let _ = result.latencies.record(micros.max(1));
        }
    }
    result
}

/// Runs `concurrency` workers for `warmup + duration`, measuring only the
/// last `duration`. The workers' connections are spread round-robin over
/// `addrs`, which must not be empty.
pub async fn run(
    addrs: &[SocketAddr],
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    factory: RequestFactory,
) -> Result<LoadOutcome, String> {
    if addrs.is_empty() {
        return Err("the load needs at least one server address".into());
    }
    let empty = new_histogram()?;
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop_at = measure_from + duration;
    let workers: Vec<_> = (0..concurrency as u64)
        .map(|id| {
            tokio::spawn(worker(
                id,
                empty.clone(),
                addrs[id as usize % addrs.len()],
                Arc::clone(&factory),
                measure_from,
                stop_at,
            ))
        })
        .collect();
    let mut outcome = LoadOutcome {
        latencies: empty,
        statuses_total: BTreeMap::new(),
        statuses_measured: BTreeMap::new(),
        window: duration,
    };
    for handle in workers {
        let Ok(result) = handle.await else { continue };
        let _ = outcome.latencies.add(&result.latencies);
        for (status, count) in result.total {
            *outcome.statuses_total.entry(status).or_default() += count;
        }
        for (status, count) in result.measured {
            *outcome.statuses_measured.entry(status).or_default() += count;
        }
    }
    Ok(outcome)
}

/// Sends one request on a fresh connection and returns status and body.
pub async fn send_once(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> std::io::Result<(u16, Bytes)> {
    let mut sender = connect(addr).await?;
    let response = sender
        .send_request(request)
        .await
        .map_err(std::io::Error::other)?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok((status, body))
}
