//! What the stores keep for idempotency keys: one record per (API key,
//! idempotency key), first claimed by the request that brings the key, then
//! completed with that request's response in the same transaction as the
//! write it protects.
//!
//! A claim is committed on its own, so that a duplicate arriving meanwhile
//! (on any node) sees it and is told to retry later. The claim carries a
//! [`ClaimToken`], its [`ClaimHolder`] and a short lease that its request
//! renews while it runs: the write completes the record only while the
//! record still carries its token, so a request whose lease ran out and
//! whose claim was taken over by a retry can never write as well. Leases
//! and holders decide only when a claim left behind (a crash, a timeout)
//! may be taken over; exactly-once never depends on clocks.
//!
//! Both backends follow one flow: an upsert whose condition is
//! [`Decision::about`]'s rule; if it took nothing, the record is read back
//! and answered by the same rule, and a record that changed in between
//! (released, swept, expired) is tried again, [`CLAIM_ATTEMPTS`] times in
//! all, before the answer is "in progress". A write completes its record
//! with an UPDATE that must change exactly one row carrying its token, or it
//! fails with `ClaimLost`.

use std::sync::Arc;

use crate::core::id::KeyId;
use crate::core::idempotency::{ClaimToken, Fingerprint, IdempotencyKey};
use crate::core::time::Timestamp;
use crate::store::Cause;

/// How often a claim tries again when the record it found changed before
/// it could read it, before answering "in progress".
pub const CLAIM_ATTEMPTS: usize = 3;

/// The running server that holds a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHolder {
    /// The node: the stable `node_id` setting, the same across restarts.
    pub node: Arc<str>,
    /// This process: new at every start.
    pub instance: Arc<str>,
}

/// A request's bid for an idempotency key.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The API key the request authenticated with: keys are scoped to it.
    pub api_key: KeyId,
    /// The idempotency key.
    pub key: IdempotencyKey,
    /// The request's fingerprint.
    pub fingerprint: Fingerprint,
    /// The token the claim will carry if granted.
    pub token: ClaimToken,
    /// The server that will hold it.
    pub holder: ClaimHolder,
    /// The current time.
    pub now: Timestamp,
    /// Until when the claim may not be taken over.
    pub lease_until: Timestamp,
    /// When the record expires: from then on it is ignored, and swept.
    pub expires_at: Timestamp,
}

/// What a claim came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The key is this request's: go ahead and write, completing the record
    /// with the claim.
    Claimed(Claim),
    /// The same request already completed: here is its response.
    Replay(StoredResponse),
    /// The same request is still being processed: its claim's lease runs
    /// until `until` (unless renewed).
    InProgress {
        /// When the lease runs out.
        until: Timestamp,
    },
    /// The key was used for a different request (another fingerprint).
    Mismatch,
}

/// A claim held on an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The API key the record belongs to.
    pub api_key: KeyId,
    /// The idempotency key.
    pub key: IdempotencyKey,
    /// The token the record carries while this claim holds it.
    pub token: ClaimToken,
}

/// The response of a completed write, as replayed to its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status.
    pub status: u16,
    /// The `Location` header, if the response had one.
    pub location: Option<String>,
    /// The body (JSON).
    pub body: Vec<u8>,
}

/// Renders the response of a write from what it wrote, inside the write's
/// transaction. An error (a [`Cause`], which the write fails with as
/// [`StoreError::Other`](crate::store::StoreError::Other)) aborts the write.
/// A write that is retried within its transaction renders again, so it may
/// be called more than once.
pub type Render<T> = Box<dyn Fn(&T) -> Result<StoredResponse, Cause> + Send + Sync>;

/// How a write completes the record of the claim it runs under.
pub struct Completion<T> {
    /// The claim; the write happens only while the record carries its token.
    pub claim: Claim,
    /// When the completed record expires.
    pub expires_at: Timestamp,
    /// The response to store (and return) for what was written.
    pub render: Render<T>,
}

/// A stored record, as a claim finds it.
#[derive(Debug, Clone)]
pub struct Existing {
    /// The fingerprint of the request that claimed the key.
    pub fingerprint: Fingerprint,
    /// Until when an in-progress claim may not be taken over; `None` once
    /// completed.
    pub lease_until: Option<Timestamp>,
    /// When the record expires.
    pub expires_at: Timestamp,
    /// The response, once completed.
    pub response: Option<StoredResponse>,
}

/// What a claim should do about the record it found: the rule both
/// backends follow (PostgreSQL also states it in SQL, in the condition of
/// its upsert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write a fresh in-progress record carrying the new token: there is
    /// none, it expired, or it is the same request's abandoned claim.
    Take,
    /// Answer without claiming.
    Answer(ClaimOutcome),
}

impl Decision {
    /// The rule: an expired record counts as none; a record for another
    /// request is a mismatch; a completed one is replayed; an in-progress
    /// one is taken over once its lease has run out, and otherwise answered
    /// "in progress".
    pub fn about(existing: Option<&Existing>, request: &ClaimRequest) -> Self {
        let Some(existing) = existing else {
            return Decision::Take;
        };
        if existing.expires_at <= request.now {
            return Decision::Take;
        }
        if existing.fingerprint != request.fingerprint {
            return Decision::Answer(ClaimOutcome::Mismatch);
        }
        match (&existing.response, existing.lease_until) {
            (Some(response), _) => Decision::Answer(ClaimOutcome::Replay(response.clone())),
            (None, Some(lease)) if lease > request.now => {
                Decision::Answer(ClaimOutcome::InProgress { until: lease })
            }
            (None, _) => Decision::Take,
        }
    }
}

impl Decision {
    /// What a claim answers after its upsert took nothing, given the record
    /// read back then; `None` if that record is claimable after all (it
    /// changed in between), to try again.
    pub fn after_upsert(
        existing: Option<&Existing>,
        request: &ClaimRequest,
    ) -> Option<ClaimOutcome> {
        match Decision::about(existing, request) {
            Decision::Answer(outcome) => Some(outcome),
            Decision::Take => None,
        }
    }
}

impl ClaimRequest {
    /// The claim this request holds once granted.
    pub fn claim(&self) -> Claim {
        Claim {
            api_key: self.api_key,
            key: self.key.clone(),
            token: self.token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::idempotency::FingerprintKey;
    use crate::core::server_secret::ServerSecret;

    fn fingerprint(body: &[u8]) -> Fingerprint {
        let key = FingerprintKey::derive(&ServerSecret::new([3; 32]));
        Fingerprint::of_request(&key, "POST", "/x", body)
    }

    fn request(now: i64, body: &[u8]) -> ClaimRequest {
        ClaimRequest {
            api_key: KeyId::generate(),
            key: IdempotencyKey::parse("k").expect("a key"),
            fingerprint: fingerprint(body),
            token: ClaimToken::generate(),
            holder: ClaimHolder {
                node: "node".into(),
                instance: "instance".into(),
            },
            now: Timestamp::from_millis(now),
            lease_until: Timestamp::from_millis(now + 30),
            expires_at: Timestamp::from_millis(now + 1000),
        }
    }

    fn existing(body: &[u8], lease: Option<i64>, expires: i64) -> Existing {
        Existing {
            fingerprint: if body.is_empty() {
                Fingerprint::ERASED
            } else {
                fingerprint(body)
            },
            lease_until: lease.map(Timestamp::from_millis),
            expires_at: Timestamp::from_millis(expires),
            response: lease.is_none().then(|| StoredResponse {
                status: 201,
                location: None,
                body: b"{}".to_vec(),
            }),
        }
    }

    #[test]
    fn the_claim_rule() {
        let at = |now| request(now, b"a");
        let replay = Decision::Answer(ClaimOutcome::Replay(StoredResponse {
            status: 201,
            location: None,
            body: b"{}".to_vec(),
        }));
        let in_progress = Decision::Answer(ClaimOutcome::InProgress {
            until: Timestamp::from_millis(130),
        });
        let mismatch = Decision::Answer(ClaimOutcome::Mismatch);
        let cases = [
            (None, 100, Decision::Take),
            (Some(existing(b"a", None, 500)), 100, replay),
            (Some(existing(b"a", None, 500)), 500, Decision::Take),
            (Some(existing(b"b", None, 500)), 100, mismatch.clone()),
            (Some(existing(b"b", None, 500)), 600, Decision::Take),
            (Some(existing(b"a", Some(130), 500)), 100, in_progress),
            (Some(existing(b"a", Some(130), 500)), 130, Decision::Take),
            (Some(existing(b"b", Some(130), 500)), 100, mismatch.clone()),
            (Some(existing(b"b", Some(130), 500)), 200, mismatch.clone()),
            (Some(existing(b"b", Some(130), 500)), 500, Decision::Take),
            // A record whose fingerprint was erased at the upgrade to keyed
            // fingerprints answers as another request's until it expires,
            // whether it was completed or left in progress.
            (Some(existing(b"", None, 500)), 100, mismatch.clone()),
            (Some(existing(b"", Some(130), 500)), 200, mismatch.clone()),
            (Some(existing(b"", None, 500)), 500, Decision::Take),
        ];
        for (found, now, expected) in cases {
            assert_eq!(
                Decision::about(found.as_ref(), &at(now)),
                expected,
                "{found:?} at {now}"
            );
        }
    }
}
