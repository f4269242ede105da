//! Per-key rate limiting with the generic cell rate algorithm (GCRA), a
//! token bucket that keeps one timestamp per key, and the same for failed
//! authentications per client address ([`auth_failures`]).
//!
//! A key may send `burst` requests at once and then one every
//! `60 s / per_minute`. [`RateLimiter`] is a trait with two implementations:
//! [`InProcessRateLimiter`] (the default, for one node) and
//! [`redis::RedisRateLimiter`], whose state several nodes share. [`open`]
//! picks one from the configured [`RateLimitStore`], for keys and for
//! addresses alike.

pub mod auth_failures;
pub mod redis;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::core::id::KeyId;
use crate::rate_limit::auth_failures::{AuthFailures, InProcessFailureLimiter};
use crate::rate_limit::redis::{RedisFailureLimiter, RedisRateLimiter, RedisUrl};

/// How fast keys may send requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests that may be sent at once after a quiet spell.
    pub burst: u32,
}

impl RatePolicy {
    /// The default: 600 requests a minute, all of them at once if need be.
    pub const DEFAULT: RatePolicy = RatePolicy {
        per_minute: 600,
        burst: 600,
    };

    fn interval(self) -> Duration {
        Duration::from_secs(60) / self.per_minute.max(1)
    }

    /// How far ahead of now a key's theoretical arrival time may run: the
    /// time a full bucket takes to refill.
    fn capacity(self) -> Duration {
        self.interval() * self.burst.max(1)
    }
}

/// The outcome of one request against the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The bucket's capacity (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests left right now (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// Time until the bucket is full again (`X-RateLimit-Reset`).
    pub reset_after: Duration,
    /// For a refused request, time until one would be allowed (`Retry-After`).
    pub retry_after: Option<Duration>,
}

/// The limiter could not decide (a shared backend is unreachable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct RateLimitUnavailable(pub String);

/// Decides whether a key may make one more request.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request by `key` and says whether it is allowed.
    ///
    /// # Errors
    /// [`RateLimitUnavailable`] when the state cannot be reached in time; the
    /// request must then be refused (the API answers 503).
    async fn check(&self, key: KeyId) -> Result<RateDecision, RateLimitUnavailable>;

    /// Whether [`check`](Self::check) can currently decide; for `/readyz`.
    ///
    /// # Errors
    /// [`RateLimitUnavailable`] when a shared backend does not answer.
    async fn check_ready(&self) -> Result<(), RateLimitUnavailable> {
        Ok(())
    }
}

/// Where the rate limiter keeps its state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RateLimitStore {
    /// In this process's memory: each node enforces the limit on its own.
    #[default]
    Memory,
    /// In Redis: every node using the same server and key prefix enforces
    /// one limit per key together.
    Redis {
        /// The server.
        url: RedisUrl,
        /// Prepended to the key id to form the Redis key.
        key_prefix: String,
    },
}

/// The limiters of one node: per API key, and per client address for
/// failed authentications.
pub struct Limiters {
    /// Requests per API key.
    pub keys: Arc<dyn RateLimiter>,
    /// Failed authentications per client address; `None` when unlimited.
    pub auth_failures: Option<AuthFailures>,
}

/// The limiters `store` describes, enforcing `policy` per key and
/// `auth_failure_policy` (if any) per client address. A Redis limiter
/// connects lazily: an unreachable server is logged here, shows on
/// `/readyz`, and is retried on every later request. Both limiters share
/// the store (and, for Redis, one connection); addresses' buckets are
/// named apart from keys' ([`redis::ADDRESS_KEY_INFIX`]).
///
/// # Errors
/// A message when the Redis limiter cannot be built (its URL or a policy
/// is not usable), never when the server is merely unreachable.
pub async fn open(
    store: &RateLimitStore,
    policy: RatePolicy,
    auth_failure_policy: Option<RatePolicy>,
) -> Result<Limiters, String> {
    match store {
        RateLimitStore::Memory => Ok(Limiters {
            keys: Arc::new(InProcessRateLimiter::new(policy)),
            auth_failures: auth_failure_policy
                .map(|policy| AuthFailures::new(Arc::new(InProcessFailureLimiter::new(policy)))),
        }),
        RateLimitStore::Redis { url, key_prefix } => {
            let limiter =
                RedisRateLimiter::open(url, key_prefix, policy, RedisRateLimiter::DEFAULT_TIMEOUT)
                    .await?;
            if let Err(error) = limiter.check_ready().await {
                tracing::warn!(
                    redis = %url.redacted(),
                    %error,
                    "the shared rate limiter is unreachable; authenticated requests get 503 until it answers"
                );
            }
            let auth_failures = match auth_failure_policy {
                Some(policy) => Some(AuthFailures::new(Arc::new(RedisFailureLimiter::sharing(
                    &limiter, policy,
                )?))),
                None => None,
            };
            Ok(Limiters {
                keys: Arc::new(limiter),
                auth_failures,
            })
        }
    }
}

/// One GCRA step. `tat` is the key's theoretical arrival time (`None` for a
/// key not seen before); `now` and `tat` are offsets from any fixed instant.
/// Returns the decision and the new `tat` to store.
pub fn gcra(policy: RatePolicy, tat: Option<Duration>, now: Duration) -> (RateDecision, Duration) {
    let interval = policy.interval();
    let capacity = policy.capacity();
    let start = tat.map_or(now, |tat| tat.max(now));
    let next_tat = start + interval;
    let backlog = next_tat - now;
    if backlog <= capacity {
        let remaining = (capacity - backlog).as_nanos() / interval.as_nanos().max(1);
        let decision = RateDecision {
            allowed: true,
            limit: policy.burst,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_after: backlog,
            retry_after: None,
        };
        (decision, next_tat)
    } else {
        let decision = RateDecision {
            allowed: false,
            limit: policy.burst,
            remaining: 0,
            reset_after: start - now,
            retry_after: Some(backlog - capacity),
        };
        (decision, start)
    }
}

/// Entries a [`GcraTable`] holds before it first drops those at rest.
const MIN_PRUNE_AT: usize = 1024;

/// GCRA state for many subjects in this process's memory. A subject whose
/// bucket is full again needs no entry (an absent one means the same), so
/// such entries are dropped whenever the table has doubled since it last
/// did so: its size follows the subjects active within one refill time,
/// however many come and go.
struct GcraTable<K> {
    policy: RatePolicy,
    epoch: Instant,
    table: Mutex<Table<K>>,
}

struct Table<K> {
    tats: HashMap<K, Duration>,
    prune_at: usize,
}

impl<K: Hash + Eq> GcraTable<K> {
    fn new(policy: RatePolicy) -> Self {
        Self {
            policy,
            epoch: Instant::now(),
            table: Mutex::new(Table {
                tats: HashMap::new(),
                prune_at: MIN_PRUNE_AT,
            }),
        }
    }

    /// Counts one request by `key`.
    fn check(&self, key: K) -> RateDecision {
        self.check_at(key, self.epoch.elapsed())
    }

    /// Counts one request by `key` at `now` (since the table's epoch).
    fn check_at(&self, key: K, now: Duration) -> RateDecision {
        // Plain data, consistent after every update.
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let (decision, tat) = gcra(self.policy, table.tats.get(&key).copied(), now);
        // A refusal leaves the state as it was.
        if decision.allowed {
            if table.tats.len() >= table.prune_at && !table.tats.contains_key(&key) {
                table.tats.retain(|_, tat| *tat > now);
                table.prune_at = (table.tats.len() * 2).max(MIN_PRUNE_AT);
            }
            table.tats.insert(key, tat);
        }
        decision
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tats
            .len()
    }
}

/// The single-node limiter: state in this process's memory.
pub struct InProcessRateLimiter {
    table: GcraTable<KeyId>,
}

impl InProcessRateLimiter {
    /// A limiter enforcing `policy` per key.
    pub fn new(policy: RatePolicy) -> Self {
        Self {
            table: GcraTable::new(policy),
        }
    }
}

#[async_trait]
impl RateLimiter for InProcessRateLimiter {
    async fn check(&self, key: KeyId) -> Result<RateDecision, RateLimitUnavailable> {
        Ok(self.table.check(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RatePolicy = RatePolicy {
        per_minute: 60,
        burst: 3,
    };

    #[test]
    fn allows_a_burst_then_one_per_interval() {
        let now = Duration::from_secs(100);
        let mut tat = None;
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let (decision, next) = gcra(POLICY, tat, now);
            assert!(decision.allowed);
            remaining.push(decision.remaining);
            tat = Some(next);
        }
        assert_eq!(remaining, vec![2, 1, 0]);

        let (refused, same) = gcra(POLICY, tat, now);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(refused.reset_after, Duration::from_secs(3));
        assert_eq!(Some(same), tat, "a refused request costs nothing");

        let (later, _) = gcra(POLICY, tat, now + Duration::from_secs(1));
        assert!(later.allowed);
        assert_eq!(later.remaining, 0);
    }

    #[test]
    fn a_quiet_key_refills_to_its_burst() {
        let (first, tat) = gcra(POLICY, None, Duration::from_secs(10));
        assert_eq!((first.limit, first.remaining), (3, 2));
        let (after_rest, _) = gcra(POLICY, Some(tat), Duration::from_secs(1000));
        assert_eq!(after_rest.remaining, 2);
        assert_eq!(after_rest.reset_after, Duration::from_secs(1));
    }

    #[tokio::test]
    async fn keys_are_limited_independently() {
        let limiter = InProcessRateLimiter::new(RatePolicy {
            per_minute: 1,
            burst: 1,
        });
        let (a, b) = (KeyId::generate(), KeyId::generate());
        assert!(limiter.check(a).await.is_ok_and(|d| d.allowed));
        assert!(limiter.check(a).await.is_ok_and(|d| !d.allowed));
        assert!(limiter.check(b).await.is_ok_and(|d| d.allowed));
    }

    #[test]
    fn a_table_drops_subjects_at_rest_as_it_grows() {
        // 6,000 a minute with a burst of 1: a subject is at rest 10 ms after
        // its request.
        let table = GcraTable::new(RatePolicy {
            per_minute: 6000,
            burst: 1,
        });
        let start = Duration::from_secs(1);
        for subject in 0..MIN_PRUNE_AT {
            assert!(table.check_at(subject, start).allowed);
        }
        assert_eq!(table.len(), MIN_PRUNE_AT);
        let later = start + Duration::from_millis(20);
        assert!(table.check_at(MIN_PRUNE_AT, later).allowed);
        assert_eq!(table.len(), 1, "the entries at rest were kept");

        // Busy subjects are kept, and so is their state.
        let busy = GcraTable::new(RatePolicy {
            per_minute: 1,
            burst: 1,
        });
        for subject in 0..=MIN_PRUNE_AT {
            assert!(busy.check_at(subject, start).allowed);
        }
        assert_eq!(busy.len(), MIN_PRUNE_AT + 1);
        assert!(
            !busy.check_at(0, later).allowed,
            "a busy subject's state was lost"
        );
    }
}
