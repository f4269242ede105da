//! The registry of data keys, the server secret's check value, and the
//! re-sealing of encrypted bodies (see [`crate::encryption`]). Message writes check the registry in the
//! `message_sealed_key_check` trigger, which share-locks the key's row
//! until they commit; deleting a key locks it exclusively first, so the
//! check that no message uses it sees every write that could.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;

use async_trait::async_trait;

use crate::core::crypto::{DataKeyId, ENVELOPE_PREFIX};
use crate::core::id::{MessageId, TicketId, UploadId};
use crate::core::time::Timestamp;
use crate::store::DataKeyStore;
use crate::store::postgres::PostgresStore;
use crate::store::postgres::rows::{get, parsed, to_sql_time};
use crate::store::postgres::{execute, map_error, query, query_opt};
use crate::store::{
    RegisteredKey, Reseal, SealedUploadKey, StoreError, StoredBody, UploadKeyReseal,
};

/// The first characters of every body sealed with `key`.
fn sealed_prefix(key: DataKeyId) -> String {
    format!("{ENVELOPE_PREFIX}{key}:")
}

fn registered_key(row: &Row) -> Result<RegisteredKey, StoreError> {
    Ok(RegisteredKey {
        id: parsed(row, 0, DataKeyId::parse)?,
        check_value: get(row, 1)?,
        retiring: get(row, 2)?,
    })
}

async fn keys<C: GenericClient>(client: &C) -> Result<Vec<RegisteredKey>, StoreError> {
    query(
        client,
        "SELECT id, check_value, retiring FROM encryption_key ORDER BY created_at, id",
        &[],
    )
    .await?
    .iter()
    .map(registered_key)
    .collect()
}

pub(super) async fn encryption_keys(client: &Object) -> Result<Vec<RegisteredKey>, StoreError> {
    keys(client).await
}

pub(super) async fn register_encryption_keys(
    client: &mut Object,
    new: &[RegisteredKey],
    at: Timestamp,
) -> Result<Vec<RegisteredKey>, StoreError> {
    let tx = client.transaction().await.map_err(map_error)?;
    // Nodes starting together on a new database register one after the
    // other, so the second sees the first's key (message writes, which
    // only share-lock rows, are not held up).
    tx.batch_execute("LOCK TABLE encryption_key IN SHARE ROW EXCLUSIVE MODE")
        .await
        .map_err(map_error)?;
    let existing = keys(&tx).await?;
    let foreign = !existing.is_empty()
        && !existing
            .iter()
            .any(|known| new.iter().any(|key| key.id == known.id));
    if foreign {
        return Ok(existing);
    }
    for key in new {
        execute(
            &tx,
            "INSERT INTO encryption_key (id, check_value, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO NOTHING",
            &[&key.id.to_string(), &key.check_value, &to_sql_time(at)],
        )
        .await?;
    }
    let registered = keys(&tx).await?;
    tx.commit().await.map_err(map_error)?;
    Ok(registered)
}

pub(super) async fn server_secret_check(client: &Object) -> Result<Option<String>, StoreError> {
    query_opt(
        client,
        "SELECT check_value FROM server_secret WHERE id = 1",
        &[],
    )
    .await?
    .map(|row| get(&row, 0))
    .transpose()
}

pub(super) async fn register_server_secret(
    client: &Object,
    check_value: &str,
    at: Timestamp,
) -> Result<String, StoreError> {
    // A concurrent registration makes the insert wait for its commit and
    // then do nothing; the next statement's snapshot sees that row.
    execute(
        client,
        "INSERT INTO server_secret (id, check_value, created_at) VALUES (1, $1, $2)
         ON CONFLICT (id) DO NOTHING",
        &[&check_value, &to_sql_time(at)],
    )
    .await?;
    server_secret_check(client)
        .await?
        .ok_or_else(|| StoreError::Other("the server secret's check value vanished".into()))
}

pub(super) async fn retire_encryption_keys_except(
    client: &Object,
    current: DataKeyId,
) -> Result<(), StoreError> {
    let current = current.to_string();
    let known = query_opt(
        client,
        "SELECT 1 FROM encryption_key WHERE id = $1",
        &[&current],
    )
    .await?
    .is_some();
    if !known {
        return Err(StoreError::NotFound);
    }
    execute(
        client,
        "UPDATE encryption_key SET retiring = (id <> $1)",
        &[&current],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_encryption_key(
    client: &mut Object,
    id: DataKeyId,
) -> Result<bool, StoreError> {
    let tx = client.transaction().await.map_err(map_error)?;
    // Waits for writes that sealed with the key and still hold its row;
    // later ones wait for this transaction and then find the key gone.
    let retiring = query_opt(
        &tx,
        "SELECT 1 FROM encryption_key WHERE id = $1 AND retiring FOR UPDATE",
        &[&id.to_string()],
    )
    .await?
    .is_some();
    if !retiring {
        return Ok(false);
    }
    // A new statement, so a new snapshot: it sees those writes.
    let prefix = sealed_prefix(id);
    let length = i32::try_from(prefix.len()).unwrap_or(i32::MAX);
    let in_use: bool = query_opt(
        &tx,
        // Nor while an idempotency record holds a response sealed with it
        // (until the record expires and is swept), so replays still open.
        "SELECT EXISTS (SELECT 1 FROM message WHERE encrypted AND substr(body, 1, $2) = $1)
             OR EXISTS (SELECT 1 FROM idempotency_record
                        WHERE position(convert_to($1, 'UTF8') IN response_body) > 0)
             OR EXISTS (SELECT 1 FROM upload
                        WHERE encrypted AND substr(content_key, 11, 26) = $3)",
        &[&prefix, &length, &id.to_string()],
    )
    .await?
    .ok_or_else(|| StoreError::Other("the key use check returned no row".into()))
    .and_then(|row| get(&row, 0))?;
    if in_use {
        return Ok(false);
    }
    execute(
        &tx,
        "DELETE FROM encryption_key WHERE id = $1",
        &[&id.to_string()],
    )
    .await?;
    tx.commit().await.map_err(map_error)?;
    Ok(true)
}

pub(super) async fn encrypted_messages(
    client: &Object,
    except: Option<DataKeyId>,
    after: Option<(TicketId, i64)>,
    limit: u32,
) -> Result<Vec<StoredBody>, StoreError> {
    let (after_ticket, after_seq) =
        after.map_or((String::new(), 0), |(ticket, seq)| (ticket.key(), seq));
    let except = except.map(sealed_prefix);
    let length = except
        .as_ref()
        .map_or(0, |prefix| i32::try_from(prefix.len()).unwrap_or(i32::MAX));
    let limit = i64::from(limit);
    query(
        client,
        "SELECT ticket_id, seq, id, body FROM message
         WHERE (ticket_id, seq) > ($1, $2) AND encrypted
           AND ($3::text IS NULL OR substr(body, 1, $4) <> $3)
         ORDER BY ticket_id, seq LIMIT $5",
        &[&after_ticket, &after_seq, &except, &length, &limit],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(StoredBody {
            ticket_id: parsed(row, 0, TicketId::from_key)?,
            seq: get(row, 1)?,
            id: parsed(row, 2, MessageId::from_key)?,
            body: get(row, 3)?,
        })
    })
    .collect()
}

pub(super) async fn reseal_messages(
    client: &mut Object,
    reseals: &[Reseal],
) -> Result<u64, StoreError> {
    let tx = client.transaction().await.map_err(map_error)?;
    let mut replaced = 0;
    for reseal in reseals {
        replaced += execute(
            &tx,
            "UPDATE message SET body = $3
             WHERE ticket_id = $1 AND seq = $2 AND encrypted AND body = $4",
            &[
                &reseal.ticket_id.key(),
                &reseal.seq,
                &reseal.new,
                &reseal.old,
            ],
        )
        .await?;
    }
    tx.commit().await.map_err(map_error)?;
    Ok(replaced)
}

pub(super) async fn sealed_upload_keys(
    client: &Object,
    except: Option<DataKeyId>,
    after: Option<UploadId>,
    limit: u32,
) -> Result<Vec<SealedUploadKey>, StoreError> {
    let after = after.map(|id| id.key()).unwrap_or_default();
    let except = except.map(|key| key.to_string());
    let limit = i64::from(limit);
    query(
        client,
        "SELECT id, content_key FROM upload
         WHERE id > $1 AND encrypted
           AND ($2::text IS NULL OR substr(content_key, 11, 26) <> $2)
         ORDER BY id LIMIT $3",
        &[&after, &except, &limit],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(SealedUploadKey {
            id: parsed(row, 0, UploadId::from_key)?,
            content_key: get(row, 1)?,
        })
    })
    .collect()
}

pub(super) async fn reseal_upload_keys(
    client: &mut Object,
    reseals: &[UploadKeyReseal],
) -> Result<u64, StoreError> {
    let tx = client.transaction().await.map_err(map_error)?;
    let mut replaced = 0;
    for reseal in reseals {
        replaced += execute(
            &tx,
            "UPDATE upload SET content_key = $2 WHERE id = $1 AND encrypted AND content_key = $3",
            &[&reseal.id.key(), &reseal.new, &reseal.old],
        )
        .await?;
    }
    tx.commit().await.map_err(map_error)?;
    Ok(replaced)
}

#[async_trait]
impl DataKeyStore for PostgresStore {
    async fn encryption_keys(&self) -> Result<Vec<RegisteredKey>, StoreError> {
        let client = self.client().await?;
        encryption_keys(&client).await
    }

    async fn register_encryption_keys(
        &self,
        keys: Vec<RegisteredKey>,
        at: Timestamp,
    ) -> Result<Vec<RegisteredKey>, StoreError> {
        let mut client = self.client().await?;
        register_encryption_keys(&mut client, &keys, at).await
    }

    async fn retire_encryption_keys_except(&self, current: DataKeyId) -> Result<(), StoreError> {
        let client = self.client().await?;
        retire_encryption_keys_except(&client, current).await
    }

    async fn delete_encryption_key(&self, id: DataKeyId) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        delete_encryption_key(&mut client, id).await
    }

    async fn encrypted_messages(
        &self,
        except: Option<DataKeyId>,
        after: Option<(TicketId, i64)>,
        limit: u32,
    ) -> Result<Vec<StoredBody>, StoreError> {
        let client = self.client().await?;
        encrypted_messages(&client, except, after, limit).await
    }

    async fn reseal_messages(&self, reseals: Vec<Reseal>) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        reseal_messages(&mut client, &reseals).await
    }

    async fn sealed_upload_keys(
        &self,
        except: Option<DataKeyId>,
        after: Option<UploadId>,
        limit: u32,
    ) -> Result<Vec<SealedUploadKey>, StoreError> {
        let client = self.client().await?;
        sealed_upload_keys(&client, except, after, limit).await
    }

    async fn reseal_upload_keys(&self, reseals: Vec<UploadKeyReseal>) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        reseal_upload_keys(&mut client, &reseals).await
    }

    async fn server_secret_check(&self) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        server_secret_check(&client).await
    }

    async fn register_server_secret(
        &self,
        check_value: String,
        at: Timestamp,
    ) -> Result<String, StoreError> {
        let client = self.client().await?;
        register_server_secret(&client, &check_value, at).await
    }
}
