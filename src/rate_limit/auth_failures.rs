//! Failed authentications per client address.
//!
//! Every request that fails authentication (no, a malformed, an unknown or
//! a revoked API key, or a wrong secret) costs its address (an IPv6 /64,
//! see [`AddressGroup`]) one request of a GCRA bucket, kept where the
//! per-key buckets are: in this process, or in Redis, where every node
//! shares one bucket per address. Once the bucket is empty, the address's
//! failures are answered 429 instead of 401, and until the bucket has room
//! again the node refuses the address's requests before their key is read
//! from the database (see [`AuthFailures::blocked`]), so that guessing keys
//! costs the database nothing either.
//!
//! Checking the bucket on every request would cost a Redis round trip per
//! request; instead each node remembers the addresses it saw go over the
//! limit, for as long as the limiter said to wait. A node that has not yet
//! seen an address fail lets it try once more, finds the bucket empty, and
//! remembers it from then on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::rate_limit::{GcraTable, RateDecision, RateLimitUnavailable, RatePolicy};
use crate::server::AddressGroup;

/// How many remembered blocks a node keeps before it first drops the ones
/// that are over.
const MIN_PRUNE_AT: usize = 1024;

/// Counts failed authentications per address.
#[async_trait]
pub trait FailureLimiter: Send + Sync + 'static {
    /// Counts one failed authentication from `address` and says whether it
    /// was within the limit (`retry_after` says for how long it is not).
    ///
    /// # Errors
    /// [`RateLimitUnavailable`] when a shared backend does not answer in
    /// time; the request must then be refused (the API answers 503).
    async fn charge(&self, address: AddressGroup) -> Result<RateDecision, RateLimitUnavailable>;
}

/// The single-node failure limiter: state in this process's memory.
pub struct InProcessFailureLimiter {
    table: GcraTable<AddressGroup>,
}

impl InProcessFailureLimiter {
    /// A limiter allowing `policy` failures per address.
    pub fn new(policy: RatePolicy) -> Self {
        Self {
            table: GcraTable::new(policy),
        }
    }
}

#[async_trait]
impl FailureLimiter for InProcessFailureLimiter {
    async fn charge(&self, address: AddressGroup) -> Result<RateDecision, RateLimitUnavailable> {
        Ok(self.table.check(address))
    }
}

/// A failure limiter, and the addresses this node saw go over it.
pub struct AuthFailures {
    limiter: Arc<dyn FailureLimiter>,
    blocked: Mutex<Blocked>,
}

struct Blocked {
    until: HashMap<AddressGroup, Instant>,
    prune_at: usize,
}

impl AuthFailures {
    /// Failures counted by `limiter`.
    pub fn new(limiter: Arc<dyn FailureLimiter>) -> Self {
        Self {
            limiter,
            blocked: Mutex::new(Blocked {
                until: HashMap::new(),
                prune_at: MIN_PRUNE_AT,
            }),
        }
    }

    fn blocked_state(&self) -> std::sync::MutexGuard<'_, Blocked> {
        // Plain data, consistent after every update.
        self.blocked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How much longer `address` is refused, if this node saw it go over
    /// its limit; `None` when it may try.
    pub fn blocked(&self, address: AddressGroup) -> Option<Duration> {
        let blocked = self.blocked_state();
        let until = *blocked.until.get(&address)?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Counts a failed authentication from `address`: `None` while it is
    /// within its limit (answer 401), or how long it must wait (answer 429;
    /// the address is refused meanwhile). An address already refused is not
    /// counted again.
    ///
    /// # Errors
    /// [`RateLimitUnavailable`] when a shared limiter does not answer.
    pub async fn failed(
        &self,
        address: AddressGroup,
    ) -> Result<Option<Duration>, RateLimitUnavailable> {
        if let Some(left) = self.blocked(address) {
            return Ok(Some(left));
        }
        let decision = self.limiter.charge(address).await?;
        if decision.allowed {
            return Ok(None);
        }
        let wait = decision
            .retry_after
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(1));
        let now = Instant::now();
        let mut blocked = self.blocked_state();
        if blocked.until.len() >= blocked.prune_at && !blocked.until.contains_key(&address) {
            blocked.until.retain(|_, until| *until > now);
            blocked.prune_at = (blocked.until.len() * 2).max(MIN_PRUNE_AT);
        }
        // Once per address while this node remembers it, not on every
        // refusal of a sustained attempt.
        if blocked.until.insert(address, now + wait).is_none() {
            tracing::warn!(
                %address,
                "too many failed authentications from an address; refusing it until it is within its limit again"
            );
        }
        Ok(Some(wait))
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn address(text: &str) -> AddressGroup {
        AddressGroup::of(text.parse::<IpAddr>().expect("an address"))
    }

    /// Counts the charges it is asked for.
    struct Counting {
        inner: InProcessFailureLimiter,
        charges: Mutex<u32>,
    }

    #[async_trait]
    impl FailureLimiter for Counting {
        async fn charge(
            &self,
            address: AddressGroup,
        ) -> Result<RateDecision, RateLimitUnavailable> {
            *self.charges.lock().expect("not poisoned") += 1;
            self.inner.charge(address).await
        }
    }

    #[tokio::test]
    async fn an_address_over_its_limit_is_refused_without_asking_the_limiter_again() {
        let limiter = Arc::new(Counting {
            inner: InProcessFailureLimiter::new(RatePolicy {
                per_minute: 1,
                burst: 2,
            }),
            charges: Mutex::new(0),
        });
        let failures = AuthFailures::new(Arc::clone(&limiter) as Arc<dyn FailureLimiter>);
        let (attacker, neighbour) = (address("192.0.2.1"), address("192.0.2.2"));
        assert_eq!(failures.blocked(attacker), None);
        assert_eq!(failures.failed(attacker).await, Ok(None));
        assert_eq!(failures.failed(attacker).await, Ok(None));
        let wait = failures
            .failed(attacker)
            .await
            .expect("in memory")
            .expect("the third failure is over the limit");
        assert!(
            wait > Duration::from_secs(59) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        let left = failures.blocked(attacker).expect("refused meanwhile");
        assert!(left <= wait && left > Duration::from_secs(58), "{left:?}");
        assert_eq!(*limiter.charges.lock().expect("not poisoned"), 3);

        let again = failures.failed(attacker).await.expect("in memory");
        assert!(again.is_some_and(|left| left <= wait), "{again:?}");
        assert_eq!(
            *limiter.charges.lock().expect("not poisoned"),
            3,
            "a refused address was counted again"
        );

        assert_eq!(failures.blocked(neighbour), None);
        assert_eq!(failures.failed(neighbour).await, Ok(None));
        // An IPv6 /64 is one address.
        let v6 = address("2001:db8::1");
        for _ in 0..2 {
            assert_eq!(failures.failed(v6).await, Ok(None));
        }
        assert!(failures.blocked(address("2001:db8::ffff")).is_none());
        assert!(
            failures
                .failed(address("2001:db8::ffff"))
                .await
                .is_ok_and(|wait| wait.is_some())
        );
        assert!(failures.blocked(address("2001:db8::2")).is_some());
    }
}
