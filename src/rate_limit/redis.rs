//! The rate limiter shared by several nodes: each key's GCRA state lives in
//! Redis, and every decision is one atomic script call, so nodes behind a
//! load balancer enforce one limit per key together.
//!
//! The script (`gcra.lua`) reads the key's theoretical arrival time (TAT),
//! takes "now" from the Redis server's clock (node clocks never enter into
//! it), stores the new TAT with an expiry at the moment the bucket is full
//! again (so idle keys vanish), and returns how far the TAT ran ahead of
//! now. The figures of the decision come from [`gcra`](super::gcra), the
//! function the in-process limiter uses, so both limiters answer alike.
//!
//! Redis being unreachable never blocks a request for long: every call is
//! bounded by a timeout and fails with [`RateLimitUnavailable`]. The
//! connection manager reconnects by itself once the server answers again.
//!
//! Failed authentications per client address ([`RedisFailureLimiter`]) are
//! counted by the same script over the same connection, in keys of their
//! own: the prefix, [`ADDRESS_KEY_INFIX`], then the address.

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Script};
use async_trait::async_trait;

use crate::core::id::KeyId;
use crate::rate_limit::auth_failures::FailureLimiter;
use crate::rate_limit::{RateDecision, RateLimitUnavailable, RateLimiter, RatePolicy, gcra};
use crate::server::AddressGroup;

/// What follows the key prefix in the Redis key of an address's failed
/// authentications (`ticketd:rl:addr:192.0.2.1`, `ticketd:rl:addr:2001:db8::/64`);
/// API key ids start with `key_`, so the two kinds never meet.
pub const ADDRESS_KEY_INFIX: &str = "addr:";

/// The largest capacity (time for an empty bucket to refill) the script
/// computes exactly: Lua numbers are doubles, exact below 2^53, and the
/// script adds up to a second of nanoseconds to the capacity.
const MAX_CAPACITY_NANOS: u128 = 1 << 52;

/// The address of a Redis server, as given in the configuration.
///
/// `Debug` and [`redacted`](Self::redacted) hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    url: String,
    redacted: String,
}

impl RedisUrl {
    /// Parses `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (or
    /// `redis+unix:///PATH?db=N&pass=...`).
    ///
    /// # Errors
    /// A message saying what is wrong, never echoing the URL (it may hold a
    /// password).
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(mut parsed) = ::redis::parse_redis_url(text) else {
            return Err("expected a URL like redis://127.0.0.1:6379/0".into());
        };
        if matches!(parsed.scheme(), "rediss" | "valkeys") {
            return Err(
                "TLS (rediss://) is not supported; use redis:// over a trusted network".into(),
            );
        }
        Client::open(text).map_err(|error| format!("not a usable Redis URL: {error}"))?;
        if parsed.password().is_some() {
            // Cannot fail: a URL with a password has a host.
            let _ = parsed.set_password(Some("***"));
        }
        let is_secret = |name: &str| matches!(name, "pass" | "password");
        if parsed.query_pairs().any(|(name, _)| is_secret(&name)) {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(name, value)| {
                    let value = if is_secret(&name) {
                        "***".to_owned()
                    } else {
                        value.into_owned()
                    };
                    (name.into_owned(), value)
                })
                .collect();
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        Ok(Self {
            url: text.to_owned(),
            redacted: parsed.as_str().to_owned(),
        })
    }

    /// The URL as it was given, password and all.
    pub fn as_given(&self) -> &str {
        &self.url
    }

    /// The URL with its password replaced by `***`, safe to log.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.redacted).finish()
    }
}

/// Checks that `policy` can be enforced by [`RedisRateLimiter`] exactly.
///
/// # Errors
/// A message when a full bucket would take longer than about 52 days to
/// refill (`burst x 60 s / per_minute`).
pub fn check_policy(policy: RatePolicy) -> Result<(), String> {
    if policy.capacity().as_nanos() > MAX_CAPACITY_NANOS {
        return Err(
            "with a Redis rate limiter, burst x 60 s / per-minute rate must be at most 52 days"
                .into(),
        );
    }
    Ok(())
}

/// A [`RateLimiter`] whose state lives in Redis, shared by every node using
/// the same server and key prefix.
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    script: Script,
    key_prefix: String,
    policy: RatePolicy,
    interval_nanos: u64,
    capacity_nanos: u64,
    timeout: Duration,
}

impl RedisRateLimiter {
    /// How long a decision may wait for Redis before the request is refused
    /// with 503: long enough for a server on the same network under load,
    /// short enough that an outage costs clients little time.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

    /// The default prefix of the Redis keys, followed by the API key id.
    pub const DEFAULT_KEY_PREFIX: &'static str = "ticketd:rl:";

    /// A limiter enforcing `policy` per key in the Redis at `url`, under
    /// keys `key_prefix` + key id. Connects on first use (so it can start
    /// while Redis is down); every call waits at most `timeout`.
    ///
    /// # Errors
    /// A message if `policy` is out of range ([`check_policy`]) or the
    /// connection cannot be set up at all (not if Redis is unreachable).
    pub async fn open(
        url: &RedisUrl,
        key_prefix: &str,
        policy: RatePolicy,
        timeout: Duration,
    ) -> Result<Self, String> {
        check_policy(policy)?;
        let client =
            Client::open(url.url.as_str()).map_err(|error| format!("rate limiter: {error}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // A few quick retries hide a server restart; beyond them each
            // later request starts a new attempt.
            .set_number_of_retries(3)
            .set_min_delay(Duration::from_millis(25))
            .set_max_delay(timeout / 2);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|error| format!("rate limiter: {error}"))?;
        Ok(Self::on(connection, key_prefix.to_owned(), policy, timeout))
    }

    fn on(
        connection: ConnectionManager,
        key_prefix: String,
        policy: RatePolicy,
        timeout: Duration,
    ) -> Self {
        let interval_nanos = u64::try_from(policy.interval().as_nanos()).unwrap_or(u64::MAX);
        let capacity_nanos = u64::try_from(policy.capacity().as_nanos()).unwrap_or(u64::MAX);
        Self {
            connection,
            script: Script::new(include_str!("gcra.lua")),
            key_prefix,
            policy,
            interval_nanos,
            capacity_nanos,
            timeout,
        }
    }

    /// The Redis key holding `subject`'s state.
    fn redis_key(&self, subject: impl fmt::Display) -> String {
        format!("{}{subject}", self.key_prefix)
    }

    fn unavailable(&self, error: impl fmt::Display) -> RateLimitUnavailable {
        RateLimitUnavailable(format!("redis: {error}"))
    }

    /// One decision for `subject`, at Redis's current time or at `now`
    /// (seconds since the Unix epoch; tests use this to compare with
    /// [`gcra`]).
    async fn decide(
        &self,
        subject: impl fmt::Display,
        now: Option<Duration>,
    ) -> Result<RateDecision, RateLimitUnavailable> {
        let mut invocation = self.script.key(self.redis_key(subject));
        invocation.arg(self.interval_nanos).arg(self.capacity_nanos);
        if let Some(now) = now {
            invocation.arg(now.as_secs()).arg(now.subsec_nanos());
        }
        let mut connection = self.connection.clone();
        let (allowed, backlog): (u8, u64) =
            tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| self.unavailable(format_args!("no answer within {:?}", self.timeout)))?
                .map_err(|error| self.unavailable(error))?;
        // The script decided on the same exact integers; recompute the
        // figures with the in-process limiter's function.
        let (decision, _) = gcra(
            self.policy,
            Some(Duration::from_nanos(backlog)),
            Duration::ZERO,
        );
        if decision.allowed != (allowed == 1) {
            return Err(self.unavailable(format_args!(
                "the script's decision ({allowed}) and its backlog ({backlog} ns) disagree"
            )));
        }
        Ok(decision)
    }
}

/// A [`FailureLimiter`] whose state lives in Redis: every node using the
/// same server and key prefix counts an address's failures in one bucket.
pub struct RedisFailureLimiter(RedisRateLimiter);

impl RedisFailureLimiter {
    /// A limiter allowing `policy` failures per address, in the Redis of
    /// `keys` and over its connection, under keys `keys`' prefix +
    /// [`ADDRESS_KEY_INFIX`] + address.
    ///
    /// # Errors
    /// A message if `policy` is out of range ([`check_policy`]).
    pub fn sharing(keys: &RedisRateLimiter, policy: RatePolicy) -> Result<Self, String> {
        check_policy(policy)?;
        Ok(Self(RedisRateLimiter::on(
            keys.connection.clone(),
            format!("{}{ADDRESS_KEY_INFIX}", keys.key_prefix),
            policy,
            keys.timeout,
        )))
    }
}

#[async_trait]
impl FailureLimiter for RedisFailureLimiter {
    async fn charge(&self, address: AddressGroup) -> Result<RateDecision, RateLimitUnavailable> {
        self.0.decide(address, None).await
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: KeyId) -> Result<RateDecision, RateLimitUnavailable> {
        self.decide(key, None).await
    }

    async fn check_ready(&self) -> Result<(), RateLimitUnavailable> {
        let mut connection = self.connection.clone();
        let ping = ::redis::cmd("PING");
        tokio::time::timeout(self.timeout, ping.query_async::<String>(&mut connection))
            .await
            .map_err(|_| self.unavailable(format_args!("no answer within {:?}", self.timeout)))?
            .map_err(|error| self.unavailable(error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! These tests talk to a real Redis (`TICKETD_TEST_REDIS_URL`, default
    //! `redis://127.0.0.1:6379/0`), each under a key prefix of its own that
    //! it deletes at the end; left-overs of a failed run expire by
    //! themselves.

    use std::io::Write as _;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use ::redis::aio::MultiplexedConnection;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::{JoinHandle, JoinSet};

    use super::*;
    use crate::rate_limit::InProcessRateLimiter;

    fn test_url() -> String {
        std::env::var("TICKETD_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
    }

    /// The test Redis and a plain connection to it for inspection. When it
    /// does not answer: under CI (`CI` set) the test fails; elsewhere it is
    /// skipped with a line written straight to the terminal, past the test
    /// harness's capture, so that a skip is never mistaken for a pass.
    async fn redis_or_skip(test: &str) -> Option<(RedisUrl, MultiplexedConnection)> {
        let text = test_url();
        let url = RedisUrl::parse(&text).expect("TICKETD_TEST_REDIS_URL is a Redis URL");
        let attempt = async {
            let client = Client::open(text.as_str())?;
            let mut connection = client.get_multiplexed_async_connection().await?;
            ::redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await?;
            Ok::<_, ::redis::RedisError>(connection)
        };
        let error = match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(connection)) => return Some((url, connection)),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer within 2 s".to_owned(),
        };
        let message = format!(
            "Redis at {} is unreachable ({error}). Start it with: redis-server --daemonize yes \
             --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no --dir /var/lib/redis \
             --logfile /var/log/redis/ci.log",
            url.redacted()
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: {message} (CI is set, so this test fails instead of skipping)"
        );
        let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {message}\n");
        None
    }

    fn unique_prefix() -> String {
        format!("ticketd-test:{}:", ulid::Ulid::new())
    }

    async fn delete_keys(redis: &mut MultiplexedConnection, prefix: &str) {
        let mut cursor = 0_u64;
        loop {
            let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(redis)
                .await
                .expect("SCAN");
            if !keys.is_empty() {
                ::redis::cmd("DEL")
                    .arg(&keys)
                    .query_async::<()>(redis)
                    .await
                    .expect("DEL");
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }

    async fn limiter(url: &RedisUrl, prefix: &str, policy: RatePolicy) -> RedisRateLimiter {
        RedisRateLimiter::open(url, prefix, policy, RedisRateLimiter::DEFAULT_TIMEOUT)
            .await
            .expect("a valid limiter")
    }

    fn ceil_secs(duration: Duration) -> u64 {
        duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
    }

    /// What the HTTP headers show of a decision.
    fn as_headers(decision: RateDecision) -> (bool, u32, u32, u64, Option<u64>) {
        (
            decision.allowed,
            decision.limit,
            decision.remaining,
            ceil_secs(decision.reset_after),
            decision.retry_after.map(ceil_secs),
        )
    }

    #[tokio::test]
    async fn decides_exactly_like_the_in_process_gcra() {
        let test = "decides_exactly_like_the_in_process_gcra";
        let Some((url, mut redis)) = redis_or_skip(test).await else {
            return;
        };
        let prefix = unique_prefix();
        let epoch = Duration::new(1_700_000_000, 987_654_321);
        // 60 s / 7 is 8,571,428,571 ns: not a whole number of microseconds,
        // the resolution of Redis's own clock.
        let seventh = 8_571_428_571;
        let cases: [(RatePolicy, &[u64]); 3] = [
            (
                RatePolicy {
                    per_minute: 60,
                    burst: 3,
                },
                &[
                    0,
                    0,
                    0,
                    0,
                    500_000_000,
                    999_999_999,
                    1_000_000_000,
                    1_000_000_000,
                    2_500_000_000,
                    60_000_000_000,
                    60_000_000_000,
                ],
            ),
            (
                RatePolicy {
                    per_minute: 7,
                    burst: 4,
                },
                &[
                    0,
                    1,
                    2,
                    3,
                    4,
                    seventh - 1,
                    seventh,
                    seventh,
                    2 * seventh + 3,
                    3_600_000_000_000,
                ],
            ),
            (
                RatePolicy {
                    per_minute: 600,
                    burst: 1,
                },
                &[0, 0, 99_999_999, 100_000_000, 150_000_000, 200_000_001],
            ),
        ];
        for (policy, offsets) in cases {
            let limiter = limiter(&url, &prefix, policy).await;
            let key = KeyId::generate();
            let mut tat = None;
            for (step, &offset) in offsets.iter().enumerate() {
                let now = epoch + Duration::from_nanos(offset);
                let (expected, next) = gcra(policy, tat, now);
                tat = Some(next);
                let decided = limiter.decide(key, Some(now)).await.expect("Redis answers");
                assert_eq!(decided, expected, "{policy:?}, step {step} at +{offset} ns");
            }
        }
        delete_keys(&mut redis, &prefix).await;
    }

    #[tokio::test]
    async fn a_burst_gets_the_same_answers_as_from_the_in_process_limiter() {
        let test = "a_burst_gets_the_same_answers_as_from_the_in_process_limiter";
        let Some((url, mut redis)) = redis_or_skip(test).await else {
            return;
        };
        let prefix = unique_prefix();
        let policy = RatePolicy {
            per_minute: 60,
            burst: 5,
        };
        let shared = limiter(&url, &prefix, policy).await;
        let local = InProcessRateLimiter::new(policy);
        let key = KeyId::generate();
        let (mut from_redis, mut in_process) = (Vec::new(), Vec::new());
        for _ in 0..8 {
            from_redis.push(as_headers(shared.check(key).await.expect("Redis answers")));
            in_process.push(as_headers(local.check(key).await.expect("infallible")));
        }
        assert_eq!(from_redis, in_process);
        // And the figures are those of a 5-request bucket refilling at 1/s.
        assert_eq!(
            from_redis,
            [
                (true, 5, 4, 1, None),
                (true, 5, 3, 2, None),
                (true, 5, 2, 3, None),
                (true, 5, 1, 4, None),
                (true, 5, 0, 5, None),
                (false, 5, 0, 5, Some(1)),
                (false, 5, 0, 5, Some(1)),
                (false, 5, 0, 5, Some(1)),
            ]
        );
        delete_keys(&mut redis, &prefix).await;
    }

    #[tokio::test]
    async fn two_nodes_sharing_a_prefix_allow_no_more_than_the_burst() {
        let test = "two_nodes_sharing_a_prefix_allow_no_more_than_the_burst";
        let Some((url, mut redis)) = redis_or_skip(test).await else {
            return;
        };
        let prefix = unique_prefix();
        // One request a minute after the burst: none is refilled during the test.
        let policy = RatePolicy {
            per_minute: 1,
            burst: 5,
        };
        let nodes = [
            Arc::new(limiter(&url, &prefix, policy).await),
            Arc::new(limiter(&url, &prefix, policy).await),
        ];
        let (key, other_key) = (KeyId::generate(), KeyId::generate());
        let mut requests = JoinSet::new();
        for i in 0..24 {
            let node = Arc::clone(&nodes[i % 2]);
            requests.spawn(async move { node.check(key).await });
        }
        let decisions: Vec<RateDecision> = requests
            .join_all()
            .await
            .into_iter()
            .map(|decision| decision.expect("Redis answers"))
            .collect();

        let mut remaining: Vec<u32> = decisions
            .iter()
            .filter(|decision| decision.allowed)
            .map(|decision| decision.remaining)
            .collect();
        remaining.sort_unstable();
        assert_eq!(remaining, [0, 1, 2, 3, 4], "{decisions:?}");
        for refused in decisions.iter().filter(|decision| !decision.allowed) {
            assert_eq!((refused.limit, refused.remaining), (5, 0));
            let retry_after = refused.retry_after.expect("a refusal says when to retry");
            assert!(
                retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60),
                "{refused:?}"
            );
            assert!(
                refused.reset_after > Duration::from_secs(4 * 60),
                "{refused:?}"
            );
        }
        // Another key is untouched by all this, on either node.
        for node in &nodes {
            let fresh = node.check(other_key).await.expect("Redis answers");
            assert!(fresh.allowed, "{fresh:?}");
        }
        delete_keys(&mut redis, &prefix).await;
    }

    #[tokio::test]
    async fn nodes_share_one_failure_bucket_per_address_apart_from_the_keys() {
        let test = "nodes_share_one_failure_bucket_per_address_apart_from_the_keys";
        let Some((url, mut redis)) = redis_or_skip(test).await else {
            return;
        };
        let prefix = unique_prefix();
        let failures = RatePolicy {
            per_minute: 1,
            burst: 2,
        };
        let nodes = [
            limiter(&url, &prefix, RatePolicy::DEFAULT).await,
            limiter(&url, &prefix, RatePolicy::DEFAULT).await,
        ];
        let addresses = [
            RedisFailureLimiter::sharing(&nodes[0], failures).expect("a valid policy"),
            RedisFailureLimiter::sharing(&nodes[1], failures).expect("a valid policy"),
        ];
        let attacker = AddressGroup::of("2001:db8:1:2::7".parse().expect("an address"));
        let mut allowed = Vec::new();
        for turn in 0..4 {
            let decision = addresses[turn % 2]
                .charge(attacker)
                .await
                .expect("Redis answers");
            allowed.push(decision.allowed);
        }
        assert_eq!(allowed, [true, true, false, false]);
        let exists: bool = ::redis::cmd("EXISTS")
            .arg(format!("{prefix}addr:2001:db8:1:2::/64"))
            .query_async(&mut redis)
            .await
            .expect("EXISTS");
        assert!(exists, "the address's bucket is not where the docs say");
        // The keys' limiter is untouched by the address's failures.
        let key = nodes[0]
            .check(KeyId::generate())
            .await
            .expect("Redis answers");
        assert_eq!((key.allowed, key.remaining), (true, 599));
        let other = AddressGroup::of("192.0.2.1".parse().expect("an address"));
        assert!(addresses[1].charge(other).await.is_ok_and(|d| d.allowed));
        delete_keys(&mut redis, &prefix).await;
    }

    #[tokio::test]
    async fn a_key_at_rest_expires_from_redis() {
        let test = "a_key_at_rest_expires_from_redis";
        let Some((url, mut redis)) = redis_or_skip(test).await else {
            return;
        };
        let prefix = unique_prefix();
        let key = KeyId::generate();
        let redis_key = format!("{prefix}{key}");
        let pttl = |redis: &mut MultiplexedConnection| {
            let mut redis = redis.clone();
            let redis_key = redis_key.clone();
            async move {
                ::redis::cmd("PTTL")
                    .arg(&redis_key)
                    .query_async::<i64>(&mut redis)
                    .await
                    .expect("PTTL")
            }
        };

        // Three requests of a 10-a-minute bucket: full again in 18 s.
        let slow = limiter(
            &url,
            &prefix,
            RatePolicy {
                per_minute: 10,
                burst: 5,
            },
        )
        .await;
        for _ in 0..3 {
            slow.check(key).await.expect("Redis answers");
        }
        let ttl = pttl(&mut redis).await;
        assert!((17_000..=18_000).contains(&ttl), "PTTL {ttl}");

        // 6,000 a minute: a key is at rest 10 ms after its last request.
        let fast = limiter(
            &url,
            &prefix,
            RatePolicy {
                per_minute: 6000,
                burst: 1,
            },
        )
        .await;
        let other = KeyId::generate();
        fast.check(other).await.expect("Redis answers");
        let other_key = format!("{prefix}{other}");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let exists: bool = ::redis::cmd("EXISTS")
                .arg(&other_key)
                .query_async(&mut redis)
                .await
                .expect("EXISTS");
            if !exists {
                break;
            }
            assert!(Instant::now() < deadline, "{other_key} never expired");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        delete_keys(&mut redis, &prefix).await;
    }

    #[tokio::test]
    async fn a_redis_that_refuses_connections_fails_fast() {
        let url = RedisUrl::parse("redis://127.0.0.1:1/0").expect("valid");
        let limiter = RedisRateLimiter::open(
            &url,
            "ticketd-test:",
            RatePolicy::DEFAULT,
            Duration::from_millis(300),
        )
        .await
        .expect("connects lazily");
        for _ in 0..3 {
            let started = Instant::now();
            let error = limiter.check(KeyId::generate()).await.unwrap_err();
            assert!(error.0.starts_with("redis: "), "{error}");
            assert!(started.elapsed() < Duration::from_secs(2), "{error}");
        }
        let started = Instant::now();
        limiter.check_ready().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_redis_that_never_answers_fails_within_the_timeout() {
        // Accepts connections and never answers, like a hung server.
        let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = silent.local_addr().expect("address");
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                held.push(stream);
            }
        });
        let url = RedisUrl::parse(&format!("redis://{address}/0")).expect("valid");
        let timeout = Duration::from_millis(250);
        let limiter = RedisRateLimiter::open(&url, "ticketd-test:", RatePolicy::DEFAULT, timeout)
            .await
            .expect("connects lazily");
        let started = Instant::now();
        let error = limiter.check(KeyId::generate()).await.unwrap_err();
        let waited = started.elapsed();
        assert!(
            waited >= timeout && waited < timeout + Duration::from_millis(1500),
            "{waited:?}: {error}"
        );
        holder.abort();
    }

    /// A TCP relay to the test Redis that can be cut and restored, to play
    /// an outage without touching the server other tests share.
    struct Relay {
        address: SocketAddr,
        up: Arc<AtomicBool>,
        links: Arc<Mutex<JoinSet<()>>>,
        acceptor: JoinHandle<()>,
    }

    impl Relay {
        async fn start(target: (String, u16)) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("address");
            let up = Arc::new(AtomicBool::new(true));
            let links = Arc::new(Mutex::new(JoinSet::new()));
            let acceptor = tokio::spawn({
                let (up, links) = (Arc::clone(&up), Arc::clone(&links));
                async move {
                    while let Ok((mut inbound, _)) = listener.accept().await {
                        if !up.load(Ordering::SeqCst) {
                            continue; // dropped: the client sees the connection close
                        }
                        let target = target.clone();
                        links.lock().expect("lock").spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                            }
                        });
                    }
                }
            });
            Self {
                address,
                up,
                links,
                acceptor,
            }
        }

        /// Drops every open connection and every new one.
        fn cut(&self) {
            self.up.store(false, Ordering::SeqCst);
            self.links.lock().expect("lock").abort_all();
        }

        fn restore(&self) {
            self.up.store(true, Ordering::SeqCst);
        }
    }

    impl Drop for Relay {
        fn drop(&mut self) {
            self.acceptor.abort();
            self.links.lock().expect("lock").abort_all();
        }
    }

    #[tokio::test]
    async fn the_limiter_recovers_when_redis_comes_back() {
        let test = "the_limiter_recovers_when_redis_comes_back";
        let Some((_, mut redis)) = redis_or_skip(test).await else {
            return;
        };
        let mut relayed = ::redis::parse_redis_url(&test_url()).expect("a TCP Redis URL");
        let target = (
            relayed.host_str().expect("a host").to_owned(),
            relayed.port().unwrap_or(6379),
        );
        let relay = Relay::start(target).await;
        relayed.set_ip_host(relay.address.ip()).expect("an IP host");
        relayed
            .set_port(Some(relay.address.port()))
            .expect("a port");
        let url = RedisUrl::parse(relayed.as_str()).expect("valid");

        // Down from the start: a node can boot while Redis is away.
        relay.cut();
        let prefix = unique_prefix();
        let limiter = limiter(
            &url,
            &prefix,
            RatePolicy {
                per_minute: 1,
                burst: 3,
            },
        )
        .await;
        let key = KeyId::generate();
        let started = Instant::now();
        limiter.check(key).await.unwrap_err();
        limiter.check_ready().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));

        // Each time Redis comes back the limiter finds it again by itself,
        // and the key's state outlives the outages.
        for remaining in [2, 1] {
            relay.restore();
            let deadline = Instant::now() + Duration::from_secs(10);
            let decision = loop {
                match limiter.check(key).await {
                    Ok(decision) => break decision,
                    Err(error) => assert!(Instant::now() < deadline, "never recovered: {error}"),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert_eq!(decision.remaining, remaining, "{decision:?}");
            limiter.check_ready().await.expect("ready again");

            relay.cut();
            let started = Instant::now();
            limiter.check(key).await.unwrap_err();
            limiter.check_ready().await.unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(3));
        }
        delete_keys(&mut redis, &prefix).await;
    }
}
