//! Key rotation: adding a key, re-sealing every encrypted body and every
//! sealed upload's content key under the newest key, and deleting the keys
//! nothing uses any more. An upload's bytes are sealed under its own
//! content key, so they are never rewritten.
//!
//! The pass is keyset-paged ([`Store::encrypted_messages`],
//! [`Store::sealed_upload_keys`]), one page of [`PAGE`] bodies or keys in
//! memory and one transaction per page, so it runs in constant memory
//! beside a live server; interrupted, it is simply run again (what is
//! already under the newest key is skipped).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::core::crypto::{self, CryptoError, DataKey, DataKeyId, Keyring};
use crate::core::time::Timestamp;
use crate::encryption::{Encryption, MissingKeyFile, describe, key_file, registration, setup};
use crate::store::{Reseal, Store, UploadKeyReseal};

/// Bodies read and re-sealed per transaction.
const PAGE: u32 = 200;

/// How often a rotation re-runs its pass when a key is still in use at the
/// end of one (a body sealed by a server that had not yet noticed).
const PASSES: usize = 3;

/// Re-seals, under the current key, every encrypted body that is not
/// sealed with it (including plaintext stored before encryption at rest)
/// and every sealed upload's content key; returns how many bodies and
/// content keys it re-sealed.
///
/// # Errors
/// A message naming the message or upload that cannot be opened, or the
/// database failure.
pub async fn reseal_all(encryption: &Encryption, store: &dyn Store) -> Result<u64, String> {
    Ok(reseal_messages(encryption, store, Stored::Mixed).await?
        + reseal_upload_keys(encryption, store).await?)
}

/// Seals every encrypted body of a database that registers no key yet:
/// all of them plaintext stored before encryption at rest, whatever they
/// begin with (a body that opens with a key of the file was sealed by an
/// earlier start that was interrupted). Returns how many it sealed.
///
/// # Errors
/// The database failure.
pub async fn seal_stored_before_encryption(
    encryption: &Encryption,
    store: &dyn Store,
) -> Result<u64, String> {
    reseal_messages(encryption, store, Stored::BeforeEncryption).await
}

/// What the encrypted bodies of a database are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// Sealed, but for leftovers from before encryption at rest, which
    /// have no envelope's prefix.
    Mixed,
    /// Plaintext from before encryption at rest, or sealed with a key of
    /// the key file.
    BeforeEncryption,
}

/// Re-seals every sealed content key that is not under the current key.
async fn reseal_upload_keys(encryption: &Encryption, store: &dyn Store) -> Result<u64, String> {
    let keyring = encryption.keyring();
    let current = keyring.current();
    let mut after = None;
    let mut resealed = 0;
    loop {
        let page = store
            .sealed_upload_keys(Some(current.id()), after, PAGE)
            .await
            .map_err(describe)?;
        let Some(last) = page.last() else {
            return Ok(resealed);
        };
        after = Some(last.id);
        let mut reseals = Vec::with_capacity(page.len());
        for stored in page {
            let key = crypto::open_content_key(&keyring, stored.id, &stored.content_key)
                .map_err(|error| format!("upload {} cannot be re-sealed: {error}", stored.id))?;
            let new = crypto::seal_content_key(current, stored.id, &key)
                .map_err(|error| error.to_string())?;
            reseals.push(UploadKeyReseal {
                id: stored.id,
                old: stored.content_key,
                new,
            });
        }
        resealed += store.reseal_upload_keys(reseals).await.map_err(describe)?;
    }
}

/// Re-seals every encrypted body that is not under the current key.
async fn reseal_messages(
    encryption: &Encryption,
    store: &dyn Store,
    stored: Stored,
) -> Result<u64, String> {
    let keyring = encryption.keyring();
    let current = keyring.current();
    let mut after = None;
    let mut resealed = 0;
    loop {
        let page = store
            .encrypted_messages(Some(current.id()), after, PAGE)
            .await
            .map_err(describe)?;
        let Some(last) = page.last() else {
            return Ok(resealed);
        };
        after = Some((last.ticket_id, last.seq));
        let mut reseals = Vec::with_capacity(page.len());
        for body in page {
            let opened = crypto::open(&keyring, body.ticket_id, body.id, &body.body);
            let plaintext = match (stored, opened) {
                (_, Ok(plaintext)) => plaintext,
                (Stored::BeforeEncryption, Err(_)) => body.body.clone(),
                (Stored::Mixed, Err(CryptoError::NotSealed)) => body.body.clone(),
                (Stored::Mixed, Err(error)) => {
                    return Err(format!(
                        "message {} of {} cannot be re-sealed: {error}",
                        body.id, body.ticket_id
                    ));
                }
            };
            let new = crypto::seal(current, body.ticket_id, body.id, &plaintext)
                .map_err(|error| error.to_string())?;
            reseals.push(Reseal {
                ticket_id: body.ticket_id,
                seq: body.seq,
                old: body.body,
                new: new.into_string(),
            });
        }
        resealed += store.reseal_messages(reseals).await.map_err(describe)?;
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateReport {
    /// The key every encrypted body is now sealed with.
    pub current_key: String,
    /// Bodies re-sealed.
    pub resealed: u64,
    /// Keys deleted from the database and the key file.
    pub retired_keys: Vec<String>,
    /// Retiring keys kept, though no message uses them: idempotency records
    /// (of the last `idempotency_ttl_secs`) hold responses sealed with them,
    /// which their replays open. `rotate --no-new-key` deletes them once
    /// those records have expired.
    pub kept_keys: Vec<String>,
}

/// Adds a key to the key file (it seals new messages from then on, on every
/// node that has the file) and registers it.
///
/// # Errors
/// A message if the key file is missing or wrong, or a write fails.
pub async fn add_key(store: &dyn Store, path: &Path) -> Result<DataKeyId, String> {
    let encryption = setup(store, path, MissingKeyFile::Refuse).await?;
    let key = DataKey::generate().map_err(|error| error.to_string())?;
    let mut keys = encryption.keyring().keys().to_vec();
    keys.push(key.clone());
    let keyring = Keyring::new(keys)?;
    key_file::replace(path, &keyring, Some(encryption.server_secret()))?;
    let registrations = keyring
        .keys()
        .iter()
        .map(registration)
        .collect::<Result<Vec<_>, _>>()?;
    let registered = store
        .register_encryption_keys(registrations, Timestamp::now())
        .await
        .map_err(describe)?;
    if !registered.iter().any(|known| known.id == key.id()) {
        return Err(format!(
            "the database did not register the new key {}",
            key.id()
        ));
    }
    encryption.set_keyring(keyring);
    Ok(key.id())
}

/// Rotates: with `new_key`, first adds a key ([`add_key`]); then marks every
/// other key retiring, re-seals every encrypted body under the newest key,
/// deletes the retiring keys from the database once nothing uses them, and
/// removes them from the key file.
///
/// # Errors
/// A message if the key file is missing or wrong, a body cannot be opened,
/// a key stays in use, or the database fails.
pub async fn rotate(store: &dyn Store, path: &Path, new_key: bool) -> Result<RotateReport, String> {
    if new_key {
        add_key(store, path).await?;
    }
    let encryption = setup(store, path, MissingKeyFile::Refuse).await?;
    let keyring = encryption.keyring();
    let current = keyring.current().id();
    // A key added on another node and not yet in this file would be
    // retired here, undoing that `add-key`.
    let registered = store.encryption_keys().await.map_err(describe)?;
    if let Some(missing) = registered
        .iter()
        .find(|key| !key.retiring && keyring.get(key.id).is_none())
    {
        return Err(format!(
            "this database has key {} (added on another node?), which the key file {} lacks: \
             rotate where the key file holds every key",
            missing.id,
            path.display()
        ));
    }
    store
        .retire_encryption_keys_except(current)
        .await
        .map_err(describe)?;
    let mut resealed = 0;
    let mut retired = Vec::new();
    for _ in 0..PASSES {
        resealed += reseal_all(&encryption, store).await?;
        let mut in_use = Vec::new();
        for key in store.encryption_keys().await.map_err(describe)? {
            if key.id == current {
                continue;
            }
            if store
                .delete_encryption_key(key.id)
                .await
                .map_err(describe)?
            {
                retired.push(key.id);
            } else {
                in_use.push(key.id);
            }
        }
        // Keys that no message or upload uses any more but that were not
        // deleted are held by idempotency records until those expire.
        let all_resealed = store
            .encrypted_messages(Some(current), None, 1)
            .await
            .map_err(describe)?
            .is_empty()
            && store
                .sealed_upload_keys(Some(current), None, 1)
                .await
                .map_err(describe)?
                .is_empty();
        if in_use.is_empty() || all_resealed {
            let kept: Vec<DataKey> = keyring
                .keys()
                .iter()
                .filter(|key| !retired.contains(&key.id()))
                .cloned()
                .collect();
            // The server secret stays: fingerprints made before the
            // rotation must match retries after it.
            key_file::replace(path, &Keyring::new(kept)?, Some(encryption.server_secret()))?;
            return Ok(RotateReport {
                current_key: current.to_string(),
                resealed,
                retired_keys: retired.iter().map(ToString::to_string).collect(),
                kept_keys: in_use.iter().map(ToString::to_string).collect(),
            });
        }
    }
    Err(format!(
        "the retired keys are still in use after {PASSES} passes; run \
         `ticketd encryption rotate --no-new-key` again"
    ))
}

/// One key, as `ticketd encryption status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    /// The key's id.
    pub id: String,
    /// Whether the database registers it.
    pub registered: bool,
    /// Whether it is being retired.
    pub retiring: bool,
    /// Whether the key file holds it.
    pub in_key_file: bool,
    /// Encrypted messages sealed with it.
    pub messages: u64,
    /// Sealed uploads whose content key is sealed with it.
    pub uploads: u64,
}

/// The state of encryption at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The key file.
    pub key_file: String,
    /// The key that seals new messages.
    pub current_key: String,
    /// Every key the database or the key file knows.
    pub keys: Vec<KeyStatus>,
    /// Encrypted messages stored unsealed (from before encryption at rest).
    pub unsealed_messages: u64,
}

/// Reports the keys and how many encrypted messages and sealed uploads
/// each seals (reading every encrypted message's and sealed upload's key
/// id, a page at a time).
///
/// # Errors
/// A message if the key file is missing or wrong, or the database fails.
pub async fn status(store: &dyn Store, path: &Path) -> Result<Status, String> {
    let encryption = setup(store, path, MissingKeyFile::Refuse).await?;
    let keyring = encryption.keyring();
    let mut counts: BTreeMap<DataKeyId, u64> = BTreeMap::new();
    let mut unsealed = 0;
    let mut after = None;
    loop {
        let page = store
            .encrypted_messages(None, after, PAGE)
            .await
            .map_err(describe)?;
        let Some(last) = page.last() else { break };
        after = Some((last.ticket_id, last.seq));
        for stored in &page {
            match crypto::sealed_key_id(&stored.body) {
                Some(key) => *counts.entry(key).or_default() += 1,
                None => unsealed += 1,
            }
        }
    }
    let mut uploads: BTreeMap<DataKeyId, u64> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store
            .sealed_upload_keys(None, after, PAGE)
            .await
            .map_err(describe)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for stored in &page {
            if let Some(key) = crypto::content_key_id(&stored.content_key) {
                *uploads.entry(key).or_default() += 1;
            }
        }
    }
    let registered = store.encryption_keys().await.map_err(describe)?;
    let mut ids: Vec<DataKeyId> = keyring.keys().iter().map(DataKey::id).collect();
    ids.extend(registered.iter().map(|key| key.id));
    ids.extend(counts.keys().copied());
    ids.extend(uploads.keys().copied());
    ids.sort();
    ids.dedup();
    let keys = ids
        .into_iter()
        .map(|id| {
            let known = registered.iter().find(|key| key.id == id);
            KeyStatus {
                id: id.to_string(),
                registered: known.is_some(),
                retiring: known.is_some_and(|key| key.retiring),
                in_key_file: keyring.get(id).is_some(),
                messages: counts.get(&id).copied().unwrap_or(0),
                uploads: uploads.get(&id).copied().unwrap_or(0),
            }
        })
        .collect();
    Ok(Status {
        key_file: path.display().to_string(),
        current_key: keyring.current().id().to_string(),
        keys,
        unsealed_messages: unsealed,
    })
}
