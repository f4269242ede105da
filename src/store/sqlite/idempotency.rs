//! Idempotency records: claims, their release, completing them inside the
//! write they protect, and sweeping expired ones.
//!
//! Everything here runs as (part of) a job of the single writer, so a claim
//! and the write of another request never interleave: the check that a
//! write still holds its claim and the write itself are one savepoint.

use rusqlite::{Connection, OptionalExtension, Row, params};

use async_trait::async_trait;

use crate::core::idempotency::Fingerprint;
use crate::core::time::Timestamp;
use crate::store::IdempotencyStore;
use crate::store::idempotency::{
    CLAIM_ATTEMPTS, Claim, ClaimHolder, ClaimOutcome, ClaimRequest, Completion, Decision, Existing,
    StoredResponse,
};
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::map_error;
use crate::store::sqlite::rows::{optional_timestamp, timestamp};
use crate::store::{StoreError, Written};

/// A record by its key, as [`existing`] reads it.
const SELECT_RECORD: &str = "SELECT fingerprint, lease_expires_at, expires_at,
        response_status, response_location, response_body
 FROM idempotency_record WHERE api_key_id = ?1 AND key = ?2";

/// Deletes up to `?2` records that expired by `?1`, oldest first.
const SWEEP: &str = "DELETE FROM idempotency_record WHERE rowid IN (
     SELECT rowid FROM idempotency_record WHERE expires_at <= ?1
     ORDER BY expires_at LIMIT ?2)";

/// Takes the key for `request` unless a live record says otherwise: the
/// shared flow of [`crate::store::idempotency`] (a job of the single
/// writer, so the record cannot change between the upsert and the read,
/// but the flow is the same as where it can).
pub(super) fn claim(conn: &Connection, request: &ClaimRequest) -> Result<ClaimOutcome, StoreError> {
    for _ in 0..CLAIM_ATTEMPTS {
        let taken = conn
            .prepare_cached(
                "INSERT INTO idempotency_record AS r
                     (api_key_id, key, fingerprint, state, owner, lease_expires_at, created_at,
                      expires_at, holder_node, holder_instance)
                 VALUES (?1, ?2, ?3, 'in_progress', ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (api_key_id, key) DO UPDATE
                 SET fingerprint = excluded.fingerprint, state = 'in_progress',
                     owner = excluded.owner, lease_expires_at = excluded.lease_expires_at,
                     response_status = NULL, response_location = NULL, response_body = NULL,
                     created_at = excluded.created_at, expires_at = excluded.expires_at,
                     holder_node = excluded.holder_node,
                     holder_instance = excluded.holder_instance
                 WHERE r.expires_at <= excluded.created_at
                    OR (r.state = 'in_progress' AND r.lease_expires_at <= excluded.created_at
                        AND r.fingerprint = excluded.fingerprint)",
            )
            .and_then(|mut upsert| {
                upsert.execute(params![
                    request.api_key.key(),
                    request.key.as_str(),
                    request.fingerprint.as_bytes(),
                    request.token.key(),
                    request.lease_until.millis(),
                    request.now.millis(),
                    request.expires_at.millis(),
                    request.holder.node.as_ref(),
                    request.holder.instance.as_ref(),
                ])
            })
            .map_err(map_error)?;
        if taken == 1 {
            return Ok(ClaimOutcome::Claimed(request.claim()));
        }
        let existing = conn
            .prepare_cached(SELECT_RECORD)
            .and_then(|mut select| {
                select
                    .query_row(
                        params![request.api_key.key(), request.key.as_str()],
                        existing,
                    )
                    .optional()
            })
            .map_err(map_error)?;
        if let Some(outcome) = Decision::after_upsert(existing.as_ref(), request) {
            return Ok(outcome);
        }
    }
    Ok(ClaimOutcome::InProgress { until: request.now })
}

fn existing(row: &Row<'_>) -> rusqlite::Result<Existing> {
    let fingerprint: Vec<u8> = row.get(0)?;
    let fingerprint = Fingerprint::from_slice(&fingerprint).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            "a fingerprint is 32 bytes".into(),
        )
    })?;
    let status: Option<u16> = row.get(3)?;
    let body: Option<Vec<u8>> = row.get(5)?;
    Ok(Existing {
        fingerprint,
        lease_until: optional_timestamp(row, 1)?,
        expires_at: timestamp(row, 2)?,
        response: match (status, body) {
            (Some(status), Some(body)) => Some(StoredResponse {
                status,
                location: row.get(4)?,
                body,
            }),
            _ => None,
        },
    })
}

pub(super) fn release(conn: &Connection, claim: &Claim) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM idempotency_record
         WHERE api_key_id = ?1 AND key = ?2 AND owner = ?3 AND state = 'in_progress'",
    )
    .and_then(|mut delete| {
        delete.execute(params![
            claim.api_key.key(),
            claim.key.as_str(),
            claim.token.key()
        ])
    })
    .map_err(map_error)?;
    Ok(())
}

/// Runs `write`; under a claim (`completion` given), only while the record
/// still carries the claim's token, and then completes the record with the
/// rendered response. All in the caller's savepoint, so a failure anywhere
/// leaves neither.
pub(super) fn completing<T>(
    conn: &Connection,
    completion: Option<&Completion<T>>,
    write: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<Written<T>, StoreError> {
    let Some(Completion {
        claim,
        expires_at,
        render,
    }) = completion
    else {
        return Ok(Written {
            value: write(conn)?,
            response: None,
        });
    };
    let held: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM idempotency_record
                            WHERE api_key_id = ?1 AND key = ?2 AND owner = ?3
                              AND state = 'in_progress')",
        )
        .and_then(|mut select| {
            select.query_row(
                params![claim.api_key.key(), claim.key.as_str(), claim.token.key()],
                |row| row.get(0),
            )
        })
        .map_err(map_error)?;
    if !held {
        return Err(StoreError::ClaimLost);
    }
    let written = write(conn)?;
    let response = render(&written).map_err(StoreError::Other)?;
    let updated = conn
        .prepare_cached(
            "UPDATE idempotency_record
             SET state = 'completed', owner = NULL, lease_expires_at = NULL,
                 holder_node = NULL, holder_instance = NULL, response_status = ?4,
                 response_location = ?5, response_body = ?6, expires_at = ?7
             WHERE api_key_id = ?1 AND key = ?2 AND owner = ?3 AND state = 'in_progress'",
        )
        .and_then(|mut update| {
            update.execute(params![
                claim.api_key.key(),
                claim.key.as_str(),
                claim.token.key(),
                response.status,
                response.location,
                response.body,
                expires_at.millis(),
            ])
        })
        .map_err(map_error)?;
    if updated != 1 {
        return Err(StoreError::ClaimLost);
    }
    Ok(Written {
        value: written,
        response: Some(response),
    })
}

pub(super) fn renew(
    conn: &Connection,
    claim: &Claim,
    until: Timestamp,
) -> Result<bool, StoreError> {
    let renewed = conn
        .prepare_cached(
            "UPDATE idempotency_record SET lease_expires_at = ?4
             WHERE api_key_id = ?1 AND key = ?2 AND owner = ?3 AND state = 'in_progress'",
        )
        .and_then(|mut update| {
            update.execute(params![
                claim.api_key.key(),
                claim.key.as_str(),
                claim.token.key(),
                until.millis()
            ])
        })
        .map_err(map_error)?;
    Ok(renewed == 1)
}

/// One server serves a SQLite database: as it starts, every claim in
/// progress was left by an earlier process.
pub(super) fn release_abandoned(
    conn: &Connection,
    holder: &ClaimHolder,
) -> Result<u64, StoreError> {
    let released = conn
        .prepare_cached(
            "DELETE FROM idempotency_record
             WHERE state = 'in_progress' AND holder_instance IS NOT ?1",
        )
        .and_then(|mut delete| delete.execute([holder.instance.as_ref()]))
        .map_err(map_error)?;
    Ok(u64::try_from(released).unwrap_or(u64::MAX))
}

pub(super) fn sweep(conn: &Connection, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
    let deleted = conn
        .prepare_cached(SWEEP)
        .and_then(|mut delete| delete.execute(params![now.millis(), limit]))
        .map_err(map_error)?;
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency_key(
        &self,
        request: ClaimRequest,
    ) -> Result<ClaimOutcome, StoreError> {
        self.writer.write(move |conn| claim(conn, &request)).await
    }

    async fn release_idempotency_key(&self, claim: &Claim) -> Result<(), StoreError> {
        let claim = claim.clone();
        self.writer.write(move |conn| release(conn, &claim)).await
    }

    async fn renew_idempotency_claim(
        &self,
        claim: &Claim,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let claim = claim.clone();
        self.writer
            .write(move |conn| renew(conn, &claim, until))
            .await
    }

    async fn release_abandoned_claims(&self, holder: &ClaimHolder) -> Result<u64, StoreError> {
        let holder = holder.clone();
        self.writer
            .write(move |conn| release_abandoned(conn, &holder))
            .await
    }

    async fn sweep_idempotency_keys(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.writer.write(move |conn| sweep(conn, now, limit)).await
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::{SELECT_RECORD, SWEEP};
    use crate::store::sqlite::query_plans::{migrated, plan};

    /// Lookups go through the primary key, sweeps through the expiry
    /// index: neither scans the table.
    #[test]
    fn record_lookups_and_sweeps_use_their_indexes() {
        let conn = migrated();
        let key = || vec![Value::Text("k".into()), Value::Text("x".into())];
        let lookup = plan(&conn, SELECT_RECORD, key());
        assert!(
            lookup.contains("USING INDEX sqlite_autoindex_idempotency_record"),
            "{lookup}"
        );
        let sweep = plan(&conn, SWEEP, vec![Value::Integer(0), Value::Integer(10)]);
        assert!(
            sweep.contains("USING COVERING INDEX idempotency_record_expires_at_idx"),
            "{sweep}"
        );
        assert!(!sweep.contains("TEMP B-TREE"), "{sweep}");
    }
}
