//! [`Idempotency`]: claims on idempotency keys, for the writes of every API.
//!
//! A keyed write first claims its key ([`Idempotency::claim`]). A granted
//! claim is a [`HeldClaim`]: the write it protects completes the claim's
//! record with its response in the write's own transaction (the
//! [`GrantedClaim::completion`] passed to the use case). A request that
//! wrote nothing gives the claim back, so that a retry runs afresh; so does
//! a request dropped midway (a timeout, a client gone, a panic).
//!
//! A claim's lease is short ([`CLAIM_LEASE`]) and renewed while its request
//! runs (every [`RENEW_EVERY`], by a task the [`HeldClaim`] stops when it is
//! dropped), so a claim whose server died lapses within seconds and a
//! retry, on any node, then takes it over. A server that starts releases
//! the claims its earlier processes left at once
//! ([`crate::store::IdempotencyStore::release_abandoned_claims`]). A retry
//! that finds the claim still held is told how long its lease has left.
//! Records expire the idempotency TTL after the request that claimed them
//! and are swept by [`Idempotency::sweep_expired_records`].

use std::sync::Arc;
use std::time::Duration;

use crate::core::id::KeyId;
use crate::core::idempotency::{Fingerprint, IdempotencyKey};
use crate::core::time::Timestamp;
use crate::service::{Clock, IdSource, RandomIds, ServiceError, SystemClock};
use crate::store::Store;
use crate::store::idempotency::{
    Claim, ClaimHolder, ClaimOutcome, ClaimRequest, Completion, Render, StoredResponse,
};

/// How often expired records are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How long a claim holds without being renewed: how soon after its server
/// died a retry on another node takes it over.
pub const CLAIM_LEASE: Duration = Duration::from_secs(5);

/// How often a request renews its claim's lease while it runs; a request
/// answered sooner (most are) never does.
pub const RENEW_EVERY: Duration = Duration::from_millis(1_500);

/// Records deleted per sweeping transaction.
const SWEEP_BATCH: u32 = 1_000;

/// How long records last, and who holds the claims.
#[derive(Debug, Clone)]
pub struct IdempotencyPolicy {
    /// How long a completed record answers retries.
    pub ttl: Duration,
    /// How long a claim in progress may not be taken over unless renewed
    /// ([`CLAIM_LEASE`]).
    pub lease: Duration,
    /// The server claims are taken for.
    pub holder: ClaimHolder,
}

/// A keyed request, as it asks for its key.
#[derive(Debug, Clone)]
pub struct KeyedRequest {
    /// The API key it authenticated with: idempotency keys are scoped to it.
    pub api_key: KeyId,
    /// The idempotency key it carries.
    pub key: IdempotencyKey,
    /// What identifies the request, so that another one reusing the key is
    /// told apart from a retry.
    pub fingerprint: Fingerprint,
}

/// What a claim came to.
pub enum ClaimAnswer {
    /// The key is the request's: run it, completing or releasing the claim.
    Granted(HeldClaim),
    /// The same request completed before: answer with its response again.
    Replay(StoredResponse),
    /// The same request is still running elsewhere; retry once its claim's
    /// lease may have run out, in `retry_after`.
    InProgress {
        /// How long the claim's lease has left (at least a second).
        retry_after: Duration,
    },
    /// The key was used for another request.
    Reused,
}

/// Claims on idempotency keys, with the times and tokens they carry.
#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    policy: IdempotencyPolicy,
}

impl Idempotency {
    /// Claims over `store`, with the system clock and random tokens.
    pub fn new(store: Arc<dyn Store>, policy: IdempotencyPolicy) -> Self {
        Self::with(store, Arc::new(SystemClock), Arc::new(RandomIds), policy)
    }

    /// Claims over `store`, taking times from `clock` and tokens from `ids`.
    pub fn with(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        policy: IdempotencyPolicy,
    ) -> Self {
        Self {
            store,
            clock,
            ids,
            policy,
        }
    }

    /// Claims `request`'s key for it, in a transaction of its own.
    ///
    /// # Errors
    /// Storage failures (`Unavailable` or `Internal`).
    pub async fn claim(&self, request: KeyedRequest) -> Result<ClaimAnswer, ServiceError> {
        let now = self.clock.now();
        let expires_at = now.plus(self.policy.ttl);
        let outcome = self
            .store
            .claim_idempotency_key(ClaimRequest {
                api_key: request.api_key,
                key: request.key,
                fingerprint: request.fingerprint,
                token: self.ids.claim_token(),
                holder: self.policy.holder.clone(),
                now,
                lease_until: now.plus(self.policy.lease),
                expires_at,
            })
            .await?;
        let counted = match &outcome {
            ClaimOutcome::Claimed(_) => "claimed",
            ClaimOutcome::Replay(_) => "replayed",
            ClaimOutcome::InProgress { .. } => "in_progress",
            ClaimOutcome::Mismatch => "reused",
        };
        crate::metrics::count(
            crate::metrics::IDEMPOTENCY_CLAIMS,
            Some(("outcome", counted)),
            1,
        );
        Ok(match outcome {
            ClaimOutcome::Claimed(claim) => ClaimAnswer::Granted(HeldClaim {
                store: Arc::clone(&self.store),
                renewal: self.renew_while_held(claim.clone()),
                granted: GrantedClaim { claim, expires_at },
                held: true,
            }),
            ClaimOutcome::Replay(stored) => ClaimAnswer::Replay(stored),
            ClaimOutcome::InProgress { until } => ClaimAnswer::InProgress {
                retry_after: Duration::from_millis(
                    u64::try_from(until.millis().saturating_sub(now.millis())).unwrap_or(0),
                )
                .max(Duration::from_secs(1)),
            },
            ClaimOutcome::Mismatch => ClaimAnswer::Reused,
        })
    }

    /// Releases the claims earlier processes of this server left behind
    /// (see [`crate::store::IdempotencyStore::release_abandoned_claims`]);
    /// run at startup, before serving. Returns how many it released.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn release_abandoned_claims(&self) -> Result<u64, ServiceError> {
        Ok(self
            .store
            .release_abandoned_claims(&self.policy.holder)
            .await?)
    }

    /// A task renewing `claim`'s lease every [`RENEW_EVERY`] until it is
    /// aborted, or finds the claim no longer held. Nothing runs without a
    /// runtime (the claim then lapses with its lease).
    fn renew_while_held(&self, claim: Claim) -> Option<tokio::task::AbortHandle> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (store, clock, lease) = (
            Arc::clone(&self.store),
            Arc::clone(&self.clock),
            self.policy.lease,
        );
        let task = runtime.spawn(async move {
            let mut ticks = tokio::time::interval(RENEW_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match store
                    .renew_idempotency_claim(&claim, clock.now().plus(lease))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(error) => {
                        tracing::warn!(%error, "renewing an idempotency claim failed; retrying");
                    }
                }
            }
        });
        Some(task.abort_handle())
    }

    /// Deletes expired records now and then every [`SWEEP_INTERVAL`], a
    /// batch per transaction; runs until dropped. Failures are logged and
    /// retried at the next round (claims ignore expired records anyway).
    pub async fn sweep_expired_records(self) {
        let mut rounds = tokio::time::interval(SWEEP_INTERVAL);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            rounds.tick().await;
            loop {
                match self
                    .store
                    .sweep_idempotency_keys(self.clock.now(), SWEEP_BATCH)
                    .await
                {
                    Ok(swept) if swept >= u64::from(SWEEP_BATCH) => continue,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%error, "sweeping expired idempotency records failed");
                        break;
                    }
                }
            }
        }
    }
}

/// A granted claim, as the write it protects needs it.
#[derive(Debug, Clone)]
pub struct GrantedClaim {
    claim: Claim,
    expires_at: Timestamp,
}

impl GrantedClaim {
    /// How the write completes the claim's record, rendering the response
    /// to store with `render`.
    pub fn completion<T>(self, render: Render<T>) -> Completion<T> {
        Completion {
            claim: self.claim,
            expires_at: self.expires_at,
            render,
        }
    }
}

/// A claim held while its request runs, its lease renewed meanwhile:
/// given back unless the request's write completed its record, also when
/// it is dropped midway.
pub struct HeldClaim {
    store: Arc<dyn Store>,
    granted: GrantedClaim,
    renewal: Option<tokio::task::AbortHandle>,
    held: bool,
}

impl HeldClaim {
    /// The claim, for the request's write.
    pub fn granted(&self) -> &GrantedClaim {
        &self.granted
    }

    /// The request's write completed the record: there is nothing to give
    /// back.
    pub fn completed(mut self) {
        self.held = false;
    }

    /// The request wrote nothing: gives the claim back so that a retry runs.
    /// Safe even while an abandoned write is still on its way: the release
    /// deletes only a record still in progress under this claim's token,
    /// and it queues behind the write (SQLite's single writer) or waits for
    /// the write's lock on the record (PostgreSQL), so it finds the record
    /// completed if the write commits.
    pub async fn release(mut self) {
        self.held = false;
        release(self.store.as_ref(), &self.granted.claim).await;
    }
}

impl Drop for HeldClaim {
    fn drop(&mut self) {
        if let Some(renewal) = &self.renewal {
            renewal.abort();
        }
        if !self.held {
            return;
        }
        // Dropped midway: release in the background. Without a runtime the
        // claim lapses with its lease.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = Arc::clone(&self.store);
            let claim = self.granted.claim.clone();
            runtime.spawn(async move { release(store.as_ref(), &claim).await });
        }
    }
}

async fn release(store: &dyn Store, claim: &Claim) {
    if let Err(error) = store.release_idempotency_key(claim).await {
        tracing::warn!(%error, "releasing an idempotency claim failed; it lapses with its lease");
    }
}
