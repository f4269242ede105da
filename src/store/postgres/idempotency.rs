//! Idempotency records: claims, their release, completing them inside the
//! write they protect, and sweeping expired ones.
//!
//! A claim is one upsert, committed at once, so every node sees it. A
//! protected write first locks its record (`FOR UPDATE`) and checks that
//! the record still carries its claim's token; a retry that would take the
//! claim over waits on that lock and then finds the record completed.
//! Writes lock the record before the ticket or workspace rows, and claims
//! lock nothing else, so the two never wait on each other in a cycle.

use deadpool_postgres::{GenericClient, Object, Transaction};
use tokio_postgres::Row;

use async_trait::async_trait;

use crate::core::idempotency::Fingerprint;
use crate::core::time::Timestamp;
use crate::store::IdempotencyStore;
use crate::store::idempotency::{
    CLAIM_ATTEMPTS, Claim, ClaimHolder, ClaimOutcome, ClaimRequest, Completion, Decision, Existing,
    StoredResponse,
};
use crate::store::postgres::PostgresStore;
use crate::store::postgres::rows::{get, optional_timestamp, timestamp, to_sql_time};
use crate::store::postgres::{execute, map_error, query_opt};
use crate::store::{StoreError, Written};

/// Takes the key for `request` unless a live record says otherwise: the
/// shared flow of [`crate::store::idempotency`] (here the record can
/// change between the upsert and the read, on another node).
pub(super) async fn claim(
    client: &Object,
    request: &ClaimRequest,
) -> Result<ClaimOutcome, StoreError> {
    for _ in 0..CLAIM_ATTEMPTS {
        let taken = query_opt(
            client,
            "INSERT INTO idempotency_record AS r
                 (api_key_id, key, fingerprint, state, owner, lease_expires_at, created_at,
                  expires_at, holder_node, holder_instance)
             VALUES ($1, $2, $3, 'in_progress', $4, $5, $6, $7, $8, $9)
             ON CONFLICT (api_key_id, key) DO UPDATE
             SET fingerprint = excluded.fingerprint, state = 'in_progress', owner = excluded.owner,
                 lease_expires_at = excluded.lease_expires_at, response_status = NULL,
                 response_location = NULL, response_body = NULL,
                 created_at = excluded.created_at, expires_at = excluded.expires_at,
                 holder_node = excluded.holder_node, holder_instance = excluded.holder_instance
             WHERE r.expires_at <= excluded.created_at
                OR (r.state = 'in_progress' AND r.lease_expires_at <= excluded.created_at
                    AND r.fingerprint = excluded.fingerprint)
             RETURNING 1",
            &[
                &request.api_key.key(),
                &request.key.as_str(),
                &request.fingerprint.as_bytes().as_slice(),
                &request.token.key(),
                &to_sql_time(request.lease_until),
                &to_sql_time(request.now),
                &to_sql_time(request.expires_at),
                &request.holder.node.as_ref(),
                &request.holder.instance.as_ref(),
            ],
        )
        .await?;
        if taken.is_some() {
            return Ok(ClaimOutcome::Claimed(request.claim()));
        }
        // A new statement sees what committed since the upsert looked.
        let row = query_opt(
            client,
            "SELECT fingerprint, lease_expires_at, expires_at,
                    response_status, response_location, response_body
             FROM idempotency_record WHERE api_key_id = $1 AND key = $2",
            &[&request.api_key.key(), &request.key.as_str()],
        )
        .await?;
        let existing = row.as_ref().map(existing).transpose()?;
        if let Some(outcome) = Decision::after_upsert(existing.as_ref(), request) {
            return Ok(outcome);
        }
    }
    Ok(ClaimOutcome::InProgress { until: request.now })
}

fn existing(row: &Row) -> Result<Existing, StoreError> {
    let fingerprint: &[u8] = get(row, 0)?;
    let fingerprint = Fingerprint::from_slice(fingerprint)
        .ok_or_else(|| StoreError::Other("a stored fingerprint is not 32 bytes".into()))?;
    let status: Option<i32> = get(row, 3)?;
    let body: Option<Vec<u8>> = get(row, 5)?;
    let response = match (status, body) {
        (Some(status), Some(body)) => Some(StoredResponse {
            status: u16::try_from(status)
                .map_err(|_| StoreError::other(format!("stored status {status}")))?,
            location: get(row, 4)?,
            body,
        }),
        _ => None,
    };
    Ok(Existing {
        fingerprint,
        lease_until: optional_timestamp(row, 1)?,
        expires_at: timestamp(row, 2)?,
        response,
    })
}

pub(super) async fn release(client: &Object, claim: &Claim) -> Result<(), StoreError> {
    execute(
        client,
        "DELETE FROM idempotency_record
         WHERE api_key_id = $1 AND key = $2 AND owner = $3 AND state = 'in_progress'",
        &[
            &claim.api_key.key(),
            &claim.key.as_str(),
            &claim.token.key(),
        ],
    )
    .await?;
    Ok(())
}

/// Locks the claim's record for the transaction; `ClaimLost` unless it is
/// still in progress under the claim's token.
async fn hold<C: GenericClient>(tx: &C, claim: &Claim) -> Result<(), StoreError> {
    query_opt(
        tx,
        "SELECT 1 FROM idempotency_record
         WHERE api_key_id = $1 AND key = $2 AND owner = $3 AND state = 'in_progress'
         FOR UPDATE",
        &[
            &claim.api_key.key(),
            &claim.key.as_str(),
            &claim.token.key(),
        ],
    )
    .await?
    .ok_or(StoreError::ClaimLost)
    .map(|_| ())
}

/// Completes the held record with the response rendered from `written`.
async fn complete<C: GenericClient, T>(
    tx: &C,
    completion: Completion<T>,
    written: &T,
) -> Result<StoredResponse, StoreError> {
    let Completion {
        claim,
        expires_at,
        render,
    } = completion;
    let response = render(written).map_err(StoreError::Other)?;
    let updated = execute(
        tx,
        "UPDATE idempotency_record
         SET state = 'completed', owner = NULL, lease_expires_at = NULL,
             holder_node = NULL, holder_instance = NULL, response_status = $4,
             response_location = $5, response_body = $6, expires_at = $7
         WHERE api_key_id = $1 AND key = $2 AND owner = $3 AND state = 'in_progress'",
        &[
            &claim.api_key.key(),
            &claim.key.as_str(),
            &claim.token.key(),
            &i32::from(response.status),
            &response.location,
            &response.body,
            &to_sql_time(expires_at),
        ],
    )
    .await?;
    if updated == 1 {
        Ok(response)
    } else {
        Err(StoreError::ClaimLost)
    }
}

/// Starts a write's transaction and, for a write under a claim, locks the
/// claim's record, checking that it still carries the claim's token.
///
/// # Errors
/// `ClaimLost` if the record no longer carries the token.
pub(super) async fn begin<'c, T>(
    client: &'c mut Object,
    completion: Option<&Completion<T>>,
) -> Result<Transaction<'c>, StoreError> {
    let tx = client.transaction().await.map_err(map_error)?;
    if let Some(completion) = completion {
        hold(&tx, &completion.claim).await?;
    }
    Ok(tx)
}

/// Completes the claim's record, if the write runs under one, with the
/// response rendered from `written`, and commits the write's transaction.
pub(super) async fn commit<T>(
    tx: Transaction<'_>,
    completion: Option<Completion<T>>,
    written: T,
) -> Result<Written<T>, StoreError> {
    let response = match completion {
        Some(completion) => Some(complete(&tx, completion, &written).await?),
        None => None,
    };
    tx.commit().await.map_err(map_error)?;
    Ok(Written {
        value: written,
        response,
    })
}

pub(super) async fn renew(
    client: &Object,
    claim: &Claim,
    until: Timestamp,
) -> Result<bool, StoreError> {
    let renewed = execute(
        client,
        "UPDATE idempotency_record SET lease_expires_at = $4
         WHERE api_key_id = $1 AND key = $2 AND owner = $3 AND state = 'in_progress'",
        &[
            &claim.api_key.key(),
            &claim.key.as_str(),
            &claim.token.key(),
            &to_sql_time(until),
        ],
    )
    .await?;
    Ok(renewed == 1)
}

/// The claims in progress of `holder`'s node that another instance of it
/// (one that died, since this one starts with its node id) left behind.
pub(super) async fn release_abandoned(
    client: &Object,
    holder: &ClaimHolder,
) -> Result<u64, StoreError> {
    execute(
        client,
        "DELETE FROM idempotency_record
         WHERE state = 'in_progress' AND holder_node = $1 AND holder_instance <> $2",
        &[&holder.node.as_ref(), &holder.instance.as_ref()],
    )
    .await
}

pub(super) async fn sweep(client: &Object, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
    execute(
        client,
        // The outer condition is checked again against a row another
        // transaction changed meanwhile (a takeover renews `expires_at`), so
        // a record claimed afresh since the subquery's snapshot is kept.
        "DELETE FROM idempotency_record WHERE (api_key_id, key) IN (
             SELECT api_key_id, key FROM idempotency_record WHERE expires_at <= $1
             ORDER BY expires_at LIMIT $2)
         AND expires_at <= $1",
        &[&to_sql_time(now), &i64::from(limit)],
    )
    .await
}

#[async_trait]
impl IdempotencyStore for PostgresStore {
    async fn claim_idempotency_key(
        &self,
        request: ClaimRequest,
    ) -> Result<ClaimOutcome, StoreError> {
        let client = self.client().await?;
        claim(&client, &request).await
    }

    async fn release_idempotency_key(&self, claim: &Claim) -> Result<(), StoreError> {
        let client = self.client().await?;
        release(&client, claim).await
    }

    async fn renew_idempotency_claim(
        &self,
        claim: &Claim,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        renew(&client, claim, until).await
    }

    async fn release_abandoned_claims(&self, holder: &ClaimHolder) -> Result<u64, StoreError> {
        let client = self.client().await?;
        release_abandoned(&client, holder).await
    }

    async fn sweep_idempotency_keys(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let client = self.client().await?;
        sweep(&client, now, limit).await
    }
}
