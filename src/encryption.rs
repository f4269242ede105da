//! Encryption at rest of messages marked `encrypted`: the key file, the
//! checks that it belongs to the database, and the layer that seals bodies
//! on their way into the store and opens them on their way out
//! ([`EncryptedStore`]).
//!
//! - The data keys live only in the key file ([`key_file`]); the database
//!   registers each key's id with a check value, so a missing, damaged or
//!   foreign key file is refused when ticketd starts, never discovered one
//!   request at a time.
//! - New bodies are sealed with the key file's newest key. `ticketd
//!   encryption rotate` ([`rotate`]) adds a key, marks the others retiring
//!   (nothing new may be sealed with them), re-seals every body under the new
//!   key and then deletes the old keys once nothing uses them.
//! - A running server re-reads the key file when it meets a body sealed with
//!   a key it does not hold, or when the database refuses a write under a
//!   retiring key, so a rotation never needs a restart.
//! - The key file also holds the server secret
//!   ([`crate::core::server_secret`]), which keys idempotency fingerprints.
//!   It is the same on every node and across rotations; the database keeps
//!   its check value, so a node with another secret is refused at startup.
//!   A key file from before the server secret gets one at the first start,
//!   unless the database already has one (another node added it first):
//!   then the node is refused until the key file is copied from that node.

mod content_keys;
pub mod key_file;
mod rotate;
mod store;

use crate::core::upload::signed_url::UploadUrlKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::core::agency_signature::AgencySignatureKey;
use crate::core::crypto::{self, DataKey, DataKeyId, Keyring};
use crate::core::idempotency::FingerprintKey;
use crate::core::server_secret::ServerSecret;
use crate::core::time::Timestamp;
use crate::store::{DatabaseUrl, RegisteredKey, Store, StoreError};

pub use content_keys::ContentKeyring;
pub use rotate::{
    KeyStatus, RotateReport, Status, add_key, reseal_all, rotate, seal_stored_before_encryption,
    status,
};
pub use store::{EncryptedStore, ExportBodies};

/// The key file's name in the data directory.
pub const KEY_FILE_NAME: &str = "encryption.key";

/// Where the key file is when no `encryption_key_file` is set: beside a
/// SQLite database; for PostgreSQL, which has no data directory of ours,
/// in `./ticketd-data/` as with the embedded default (every node needs a
/// copy of the same file).
pub fn default_key_file(database: &DatabaseUrl) -> PathBuf {
    match database {
        DatabaseUrl::Sqlite(path) => path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."))
            .join(KEY_FILE_NAME),
        DatabaseUrl::Postgres(_) => Path::new("ticketd-data").join(KEY_FILE_NAME),
    }
}

/// Whether a missing key file may be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKeyFile {
    /// Create one with a new key if the database has no keys yet (first
    /// start, or an import into a new database).
    CreateForNewDatabase,
    /// A missing key file is an error (commands that only read or manage
    /// existing keys).
    Refuse,
}

/// The keys of a running ticketd, checked against its database.
pub struct Encryption {
    key_file: PathBuf,
    keyring: RwLock<Arc<Keyring>>,
    /// The server secret, checked against the database at startup; it never
    /// changes while ticketd runs.
    secret: ServerSecret,
    /// When the key file was last re-read; re-reads are one at a time and
    /// at most one a second.
    reloaded: tokio::sync::Mutex<Option<Instant>>,
}

/// The shortest time between two re-reads of the key file.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

impl Encryption {
    /// The key file in use.
    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    /// The keys as last read.
    pub fn keyring(&self) -> Arc<Keyring> {
        match self.keyring.read() {
            Ok(keyring) => Arc::clone(&keyring),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The server secret: the same on every node of the database, and
    /// across rotations.
    pub fn server_secret(&self) -> &ServerSecret {
        &self.secret
    }

    /// The key idempotency fingerprints are made with.
    pub fn fingerprint_key(&self) -> FingerprintKey {
        FingerprintKey::derive(&self.secret)
    }

    /// The key agency signatures are made with.
    pub fn agency_signature_key(&self) -> AgencySignatureKey {
        AgencySignatureKey::new(&self.secret)
    }

    /// The key pre-signed upload URLs are signed with.
    pub fn upload_url_key(&self) -> UploadUrlKey {
        UploadUrlKey::new(&self.secret)
    }

    fn set_keyring(&self, keyring: Keyring) {
        let keyring = Arc::new(keyring);
        match self.keyring.write() {
            Ok(mut slot) => *slot = keyring,
            Err(poisoned) => *poisoned.into_inner() = keyring,
        }
    }

    /// Re-reads the key file and checks it against the database, unless
    /// that happened within the last second; keeps the keys it had if the
    /// file is now missing or wrong (and logs why).
    pub async fn reload(&self, store: &dyn Store) {
        let mut reloaded = self.reloaded.lock().await;
        if reloaded.is_some_and(|at| at.elapsed() < RELOAD_INTERVAL) {
            return;
        }
        *reloaded = Some(Instant::now());
        let checked = async {
            let file = key_file::read(&self.key_file)?
                .ok_or_else(|| format!("{} no longer exists", self.key_file.display()))?;
            let registered = store.encryption_keys().await.map_err(|e| e.to_string())?;
            check(&self.key_file, &file.keyring, &registered)?;
            // The secret in use was checked against the database; a file
            // with another one (or none) is not this database's any more.
            let check_value = self.secret.check_value();
            if !file
                .secret
                .is_some_and(|secret| secret.verify_check_value(&check_value))
            {
                return Err(format!(
                    "{} no longer holds the server secret in use",
                    self.key_file.display()
                ));
            }
            Ok::<_, String>(file.keyring)
        };
        match checked.await {
            Ok(keyring) => {
                tracing::info!(
                    key_file = %self.key_file.display(),
                    current_key = %keyring.current().id(),
                    "encryption key file re-read"
                );
                self.set_keyring(keyring);
            }
            Err(error) => {
                tracing::warn!(%error, "encryption key file not re-read; keeping the keys in use");
            }
        }
    }
}

/// A store error as the CLI and startup report it: `not found`, or the
/// error's own message.
pub(crate) fn describe(error: StoreError) -> String {
    match error {
        StoreError::NotFound => "not found".into(),
        other => other.to_string(),
    }
}

fn id_list(keys: &[RegisteredKey]) -> String {
    keys.iter()
        .map(|key| key.id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a keyring against the registered keys: every registered key it
/// holds passes its check value, it holds at least one of them, and its
/// newest key is not retiring.
fn check(path: &Path, keyring: &Keyring, registered: &[RegisteredKey]) -> Result<(), String> {
    let mut known = 0;
    for key in registered {
        let Some(held) = keyring.get(key.id) else {
            continue;
        };
        known += 1;
        if !crypto::verify_check_value(held, &key.check_value) {
            return Err(format!(
                "the encryption key file {} does not match this database: key {} fails its check \
                 (the file was altered, or belongs to another database)",
                path.display(),
                key.id
            ));
        }
    }
    if known == 0 && !registered.is_empty() {
        return Err(format!(
            "the encryption key file {} belongs to another database: it holds none of this \
             database's keys ({}); point encryption_key_file at this database's key file",
            path.display(),
            id_list(registered)
        ));
    }
    let current = keyring.current().id();
    if registered
        .iter()
        .any(|key| key.id == current && key.retiring)
    {
        return Err(format!(
            "the encryption key file {} is out of date: its newest key {current} is being retired \
             by `ticketd encryption rotate`; copy the key file from where the rotation ran",
            path.display()
        ));
    }
    Ok(())
}

fn registration(key: &DataKey) -> Result<RegisteredKey, String> {
    Ok(RegisteredKey {
        id: key.id(),
        check_value: crypto::check_value(key).map_err(|error| error.to_string())?,
        retiring: false,
    })
}

/// Reads the key file at `path` (creating it for a new database when
/// `missing` allows), checks it against the database, registers its keys,
/// and seals any encrypted message still stored as plaintext (from before
/// encryption at rest) when the database had no keys yet.
///
/// # Errors
/// One readable message: the key file is missing for a database with
/// keys, unreadable, invalid, out of date, or not this database's; or the
/// database failed.
pub async fn setup(
    store: &dyn Store,
    path: &Path,
    missing: MissingKeyFile,
) -> Result<Arc<Encryption>, String> {
    let registered = store.encryption_keys().await.map_err(describe)?;
    let secret_check = store.server_secret_check().await.map_err(describe)?;
    let (keyring, file_secret) = match key_file::read(path)? {
        Some(file) => {
            if file.loose_permissions {
                tracing::warn!(
                    key_file = %path.display(),
                    "the encryption key file can be read by others than its owner; chmod 600 it"
                );
            }
            (file.keyring, file.secret)
        }
        None if !registered.is_empty() => {
            return Err(format!(
                "the encryption key file {} does not exist, but this database's messages are \
                 encrypted with keys it held ({}): restore the file (or point \
                 encryption_key_file at it); without it encrypted messages cannot be read",
                path.display(),
                id_list(&registered)
            ));
        }
        None if secret_check.is_some() => {
            return Err(format!(
                "the encryption key file {} does not exist, but this database has a server \
                 secret it held: restore the file (or point encryption_key_file at it)",
                path.display()
            ));
        }
        None if missing == MissingKeyFile::Refuse => {
            return Err(format!(
                "the encryption key file {} does not exist",
                path.display()
            ));
        }
        None => {
            let key = DataKey::generate().map_err(|error| error.to_string())?;
            let keyring = Keyring::new(vec![key])?;
            let secret = ServerSecret::generate().map_err(|error| error.to_string())?;
            if key_file::create(path, &keyring, &secret)? {
                tracing::info!(
                    key_file = %path.display(),
                    key = %keyring.current().id(),
                    "generated an encryption key file for messages marked encrypted; \
                     back it up apart from the database"
                );
                (keyring, Some(secret))
            } else {
                // Another process created it first: use that one.
                let file = key_file::read(path)?
                    .ok_or_else(|| format!("{} vanished as it was created", path.display()))?;
                (file.keyring, file.secret)
            }
        }
    };
    check(path, &keyring, &registered)?;
    let secret = server_secret(store, path, file_secret, secret_check).await?;
    let registrations = keyring
        .keys()
        .iter()
        .map(registration)
        .collect::<Result<Vec<_>, _>>()?;
    let now_registered = store
        .register_encryption_keys(registrations, Timestamp::now())
        .await
        .map_err(describe)?;
    // Checked again: another node may have registered other keys first.
    check(path, &keyring, &now_registered)?;
    for key in &now_registered {
        if keyring.get(key.id).is_none() {
            tracing::warn!(
                key = %key.id,
                key_file = %path.display(),
                "the encryption key file lacks a key of this database (added on another node?); \
                 messages sealed with it cannot be read here until the file is updated"
            );
        }
    }
    let encryption = Arc::new(Encryption {
        key_file: path.to_owned(),
        keyring: RwLock::new(Arc::new(keyring)),
        secret,
        reloaded: tokio::sync::Mutex::new(None),
    });
    if registered.is_empty() {
        let sealed = seal_stored_before_encryption(&encryption, store).await?;
        if sealed > 0 {
            tracing::info!(
                messages = sealed,
                "sealed encrypted messages stored before encryption at rest"
            );
        }
    }
    Ok(encryption)
}

/// The server secret of the key file at `path`, checked against the
/// database's check value and registered if the database has none yet. A
/// key file from before the server secret (`in_file` is `None`) on a
/// database that has none either gets a new one, written to the file
/// before it is registered (so a crash in between leaves a file whose
/// secret the next start registers, never a database whose secret no file
/// holds).
///
/// # Errors
/// One message: the file's secret fails the database's check value, the
/// file has none while the database has one, another node registered
/// another secret first, or the file or the database cannot be written.
async fn server_secret(
    store: &dyn Store,
    path: &Path,
    in_file: Option<ServerSecret>,
    registered: Option<String>,
) -> Result<ServerSecret, String> {
    let mismatch = || {
        format!(
            "the encryption key file {} does not match this database: its server secret fails \
             its check (the file was altered, or comes from a node that added a server secret \
             of its own); copy the key file from a node of this database that runs",
            path.display()
        )
    };
    // `added`: the lock and the keyring of a file this call added the
    // secret to, held until the secret is registered.
    let (secret, added) = match (in_file, registered) {
        (Some(secret), Some(check)) if secret.verify_check_value(&check) => return Ok(secret),
        (Some(_), Some(_)) => return Err(mismatch()),
        (None, Some(_)) => {
            return Err(format!(
                "the encryption key file {} has no server secret, but this database has one \
                 (added by the first node of this version to start): copy the key file from \
                 that node here",
                path.display()
            ));
        }
        (Some(secret), None) => (secret, None),
        (None, None) => {
            // Nodes sharing this file may be starting too: one at a time,
            // and whoever comes second uses the secret the first added.
            let lock = key_file::lock(path)?;
            let file = key_file::read(path)?
                .ok_or_else(|| format!("{} vanished while it was read", path.display()))?;
            match file.secret {
                Some(secret) => (secret, None),
                None => {
                    let secret = ServerSecret::generate().map_err(|error| error.to_string())?;
                    key_file::replace(path, &file.keyring, Some(&secret))?;
                    (secret, Some((lock, file.keyring)))
                }
            }
        }
    };
    let now_registered = store
        .register_server_secret(secret.check_value(), Timestamp::now())
        .await
        .map_err(describe)?;
    if secret.verify_check_value(&now_registered) {
        if added.is_some() {
            tracing::warn!(
                key_file = %path.display(),
                "added a server secret to the encryption key file (it keys idempotency \
                 fingerprints); copy this key file to every other node of this database \
                 before starting this version there"
            );
        }
        return Ok(secret);
    }
    // Another node registered a secret of its own first: the one just
    // added is nobody's, so the file is put back as it was (still locked).
    if let Some((_lock, file_keyring)) = added
        && let Err(error) = key_file::replace(path, &file_keyring, None)
    {
        tracing::warn!(%error, "the server secret just added could not be taken out again");
    }
    Err(mismatch())
}

/// The key that seals new bodies, for logs and reports.
pub fn current_key(encryption: &Encryption) -> DataKeyId {
    encryption.keyring().current().id()
}
