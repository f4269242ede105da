//! The registry of data keys, the server secret's check value, and the
//! re-sealing of encrypted bodies (see [`crate::encryption`]). The single writer makes each write here atomic
//! with respect to message writes, which the `message_sealed_key_*`
//! triggers check against the registry.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use async_trait::async_trait;

use crate::core::crypto::{DataKeyId, ENVELOPE_PREFIX};
use crate::core::id::{MessageId, TicketId, UploadId};
use crate::core::time::Timestamp;
use crate::store::DataKeyStore;
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::map_error;
use crate::store::sqlite::rows::parsed;
use crate::store::{
    RegisteredKey, Reseal, SealedUploadKey, StoreError, StoredBody, UploadKeyReseal,
};

/// The first characters of every body sealed with `key`.
pub(super) fn sealed_prefix(key: DataKeyId) -> String {
    format!("{ENVELOPE_PREFIX}{key}:")
}

fn registered_key(row: &Row<'_>) -> rusqlite::Result<RegisteredKey> {
    Ok(RegisteredKey {
        id: parsed(row, 0, DataKeyId::parse)?,
        check_value: row.get(1)?,
        retiring: row.get(2)?,
    })
}

pub(super) fn encryption_keys(conn: &Connection) -> Result<Vec<RegisteredKey>, StoreError> {
    conn.prepare_cached(
        "SELECT id, check_value, retiring FROM encryption_key ORDER BY created_at, id",
    )
    .and_then(|mut select| {
        select
            .query_map([], registered_key)?
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(map_error)
}

pub(super) fn register_encryption_keys(
    conn: &Connection,
    keys: &[RegisteredKey],
    at: Timestamp,
) -> Result<Vec<RegisteredKey>, StoreError> {
    let existing = encryption_keys(conn)?;
    let foreign = !existing.is_empty()
        && !existing
            .iter()
            .any(|known| keys.iter().any(|key| key.id == known.id));
    if foreign {
        return Ok(existing);
    }
    for key in keys {
        conn.prepare_cached(
            "INSERT INTO encryption_key (id, check_value, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO NOTHING",
        )
        .and_then(|mut insert| {
            insert.execute(params![key.id.to_string(), key.check_value, at.millis()])
        })
        .map_err(map_error)?;
    }
    encryption_keys(conn)
}

pub(super) fn server_secret_check(conn: &Connection) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT check_value FROM server_secret WHERE id = 1")
        .and_then(|mut select| select.query_row([], |row| row.get(0)).optional())
        .map_err(map_error)
}

pub(super) fn register_server_secret(
    conn: &Connection,
    check_value: &str,
    at: Timestamp,
) -> Result<String, StoreError> {
    conn.prepare_cached(
        "INSERT INTO server_secret (id, check_value, created_at) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO NOTHING",
    )
    .and_then(|mut insert| insert.execute(params![check_value, at.millis()]))
    .map_err(map_error)?;
    server_secret_check(conn)?
        .ok_or_else(|| StoreError::Other("the server secret's check value vanished".into()))
}

pub(super) fn retire_encryption_keys_except(
    conn: &Connection,
    current: DataKeyId,
) -> Result<(), StoreError> {
    let current = current.to_string();
    let known: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM encryption_key WHERE id = ?1)",
            [&current],
            |row| row.get(0),
        )
        .map_err(map_error)?;
    if !known {
        return Err(StoreError::NotFound);
    }
    conn.execute(
        "UPDATE encryption_key SET retiring = (id <> ?1)",
        [&current],
    )
    .map_err(map_error)?;
    Ok(())
}

pub(super) fn delete_encryption_key(conn: &Connection, id: DataKeyId) -> Result<bool, StoreError> {
    let deleted = conn
        .execute(
            // Nor while an idempotency record holds a response sealed with it
            // (until the record expires and is swept), so replays still open.
            "DELETE FROM encryption_key WHERE id = ?1 AND retiring = 1
               AND NOT EXISTS (SELECT 1 FROM message
                               WHERE encrypted = 1 AND substr(body, 1, ?3) = ?2)
               AND NOT EXISTS (SELECT 1 FROM idempotency_record
                               WHERE instr(CAST(response_body AS TEXT), ?2) > 0)
               AND NOT EXISTS (SELECT 1 FROM upload
                               WHERE encrypted = 1 AND substr(content_key, 11, 26) = ?1)",
            params![id.to_string(), sealed_prefix(id), sealed_prefix(id).len()],
        )
        .map_err(map_error)?;
    Ok(deleted == 1)
}

pub(super) fn encrypted_messages(
    conn: &Connection,
    except: Option<DataKeyId>,
    after: Option<(TicketId, i64)>,
    limit: u32,
) -> Result<Vec<StoredBody>, StoreError> {
    let (after_ticket, after_seq) =
        after.map_or((String::new(), 0), |(ticket, seq)| (ticket.key(), seq));
    let except = except.map(sealed_prefix);
    let args = vec![
        Value::Text(after_ticket),
        Value::Integer(after_seq),
        except.clone().map_or(Value::Null, Value::Text),
        Value::Integer(except.map_or(0, |prefix| prefix.len() as i64)),
        Value::Integer(i64::from(limit)),
    ];
    conn.prepare_cached(
        "SELECT ticket_id, seq, id, body FROM message
         WHERE (ticket_id, seq) > (?1, ?2) AND encrypted = 1
           AND (?3 IS NULL OR substr(body, 1, ?4) <> ?3)
         ORDER BY ticket_id, seq LIMIT ?5",
    )
    .and_then(|mut select| {
        select
            .query_map(params_from_iter(args), |row| {
                Ok(StoredBody {
                    ticket_id: parsed(row, 0, TicketId::from_key)?,
                    seq: row.get(1)?,
                    id: parsed(row, 2, MessageId::from_key)?,
                    body: row.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(map_error)
}

pub(super) fn reseal_messages(conn: &Connection, reseals: &[Reseal]) -> Result<u64, StoreError> {
    let mut replaced = 0;
    for reseal in reseals {
        replaced += conn
            .prepare_cached(
                "UPDATE message SET body = ?3
                 WHERE ticket_id = ?1 AND seq = ?2 AND encrypted = 1 AND body = ?4",
            )
            .and_then(|mut update| {
                update.execute(params![
                    reseal.ticket_id.key(),
                    reseal.seq,
                    reseal.new,
                    reseal.old
                ])
            })
            .map_err(map_error)? as u64;
    }
    Ok(replaced)
}

pub(super) fn sealed_upload_keys(
    conn: &Connection,
    except: Option<DataKeyId>,
    after: Option<UploadId>,
    limit: u32,
) -> Result<Vec<SealedUploadKey>, StoreError> {
    conn.prepare_cached(
        "SELECT id, content_key FROM upload
         WHERE id > ?1 AND encrypted = 1
           AND (?2 IS NULL OR substr(content_key, 11, 26) <> ?2)
         ORDER BY id LIMIT ?3",
    )
    .and_then(|mut select| {
        select
            .query_map(
                params![
                    after.map(|id| id.key()).unwrap_or_default(),
                    except.map(|key| key.to_string()),
                    limit
                ],
                |row| {
                    Ok(SealedUploadKey {
                        id: parsed(row, 0, UploadId::from_key)?,
                        content_key: row.get(1)?,
                    })
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(map_error)
}

pub(super) fn reseal_upload_keys(
    conn: &Connection,
    reseals: &[UploadKeyReseal],
) -> Result<u64, StoreError> {
    let mut replaced = 0;
    for reseal in reseals {
        replaced += conn
            .prepare_cached(
                "UPDATE upload SET content_key = ?2
                 WHERE id = ?1 AND encrypted = 1 AND content_key = ?3",
            )
            .and_then(|mut update| update.execute(params![reseal.id.key(), reseal.new, reseal.old]))
            .map_err(map_error)? as u64;
    }
    Ok(replaced)
}

#[async_trait]
impl DataKeyStore for SqliteStore {
    async fn encryption_keys(&self) -> Result<Vec<RegisteredKey>, StoreError> {
        self.readers.read(encryption_keys)
    }

    async fn register_encryption_keys(
        &self,
        keys: Vec<RegisteredKey>,
        at: Timestamp,
    ) -> Result<Vec<RegisteredKey>, StoreError> {
        self.writer
            .write(move |conn| register_encryption_keys(conn, &keys, at))
            .await
    }

    async fn retire_encryption_keys_except(&self, current: DataKeyId) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| retire_encryption_keys_except(conn, current))
            .await
    }

    async fn delete_encryption_key(&self, id: DataKeyId) -> Result<bool, StoreError> {
        self.writer
            .write(move |conn| delete_encryption_key(conn, id))
            .await
    }

    async fn encrypted_messages(
        &self,
        except: Option<DataKeyId>,
        after: Option<(TicketId, i64)>,
        limit: u32,
    ) -> Result<Vec<StoredBody>, StoreError> {
        self.readers
            .read(|conn| encrypted_messages(conn, except, after, limit))
    }

    async fn reseal_messages(&self, reseals: Vec<Reseal>) -> Result<u64, StoreError> {
        self.writer
            .write(move |conn| reseal_messages(conn, &reseals))
            .await
    }

    async fn sealed_upload_keys(
        &self,
        except: Option<DataKeyId>,
        after: Option<UploadId>,
        limit: u32,
    ) -> Result<Vec<SealedUploadKey>, StoreError> {
        self.readers
            .read(|conn| sealed_upload_keys(conn, except, after, limit))
    }

    async fn reseal_upload_keys(&self, reseals: Vec<UploadKeyReseal>) -> Result<u64, StoreError> {
        self.writer
            .write(move |conn| reseal_upload_keys(conn, &reseals))
            .await
    }

    async fn server_secret_check(&self) -> Result<Option<String>, StoreError> {
        self.readers.read(server_secret_check)
    }

    async fn register_server_secret(
        &self,
        check_value: String,
        at: Timestamp,
    ) -> Result<String, StoreError> {
        self.writer
            .write(move |conn| register_server_secret(conn, &check_value, at))
            .await
    }
}
