//! The key file: the server secret and the data keys, readable by the
//! owner only.
//!
//! ```text
//! # ticketd encryption keys ...
//! secret <base64 of 32 bytes>
//! key 01jabcdefghjkmnpqrstvwxyz0 <base64 of 32 bytes>
//! key 01jbcdefghjkmnpqrstvwxyz01 <base64 of 32 bytes>
//! ```
//!
//! One `secret` line (the server secret, [`ServerSecret`]: it keys the
//! idempotency fingerprints and stays the same across rotations; files
//! written before it existed have none, and get one at the next start) and
//! one line per data key, oldest first; the last seals new messages. Files are
//! written whole beside their final name and moved into place, so a reader
//! never sees half a file, and a crash leaves the old file or the new one
//! ([`crate::private_file`]: owner-only, in an owner-only directory if
//! ticketd creates it).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::core::crypto::{DataKey, DataKeyId, KEY_BYTES, Keyring};
use crate::core::server_secret::{SECRET_BYTES, ServerSecret};
use crate::private_file;

const HEADER: &str = "\
# ticketd encryption keys: the only way to read messages marked `encrypted`.
# Keep this file secret (owner-only permissions) and back it up apart from the
# database: without it encrypted messages cannot be read. Every ticketd node of
# one database needs the same file. The `secret` line is the server secret
# (it keys idempotency fingerprints; rotations keep it). Then one key per line,
# oldest first; the last one seals new messages. Manage it with
# `ticketd encryption ...`.
";

/// A key file as read.
#[derive(Debug)]
pub struct KeyFile {
    /// Its keys.
    pub keyring: Keyring,
    /// Its server secret; `None` in a file written before there was one.
    pub secret: Option<ServerSecret>,
    /// Whether others than the owner may read or write it.
    pub loose_permissions: bool,
}

/// Reads the key file at `path`; `None` if there is none.
///
/// # Errors
/// A message naming the file and what is wrong with it (never a key).
pub fn read(path: &Path) -> Result<Option<KeyFile>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(format!(
                "cannot read the encryption key file {}: {error}",
                path.display()
            ));
        }
    };
    let (keyring, secret) = parse(&text).map_err(|error| {
        format!(
            "the encryption key file {} is not valid: {error}",
            path.display()
        )
    })?;
    Ok(Some(KeyFile {
        keyring,
        secret,
        loose_permissions: private_file::is_loose(path),
    }))
}

/// Parses a key file's text: its keys and its server secret, if any.
fn parse(text: &str) -> Result<(Keyring, Option<ServerSecret>), String> {
    let mut keys = Vec::new();
    let mut server_secret = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() == Some(&"secret") {
            let [_, encoded] = fields.as_slice() else {
                return Err(format!(
                    "line {}: expected `secret <base64 secret>`",
                    number + 1
                ));
            };
            if server_secret.is_some() {
                return Err(format!("line {}: a second `secret` line", number + 1));
            }
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| format!("line {}: the secret is not base64", number + 1))?,
            );
            let bytes: [u8; SECRET_BYTES] = bytes.as_slice().try_into().map_err(|_| {
                format!(
                    "line {}: the secret must be {SECRET_BYTES} bytes (base64 of 32 random bytes)",
                    number + 1
                )
            })?;
            server_secret = Some(ServerSecret::new(bytes));
            continue;
        }
        let [kind, id, secret] = fields.as_slice() else {
            return Err(format!(
                "line {}: expected `key <id> <base64 secret>`",
                number + 1
            ));
        };
        if *kind != "key" {
            return Err(format!("line {}: expected `key`", number + 1));
        }
        let id = DataKeyId::parse(id)
            .ok_or_else(|| format!("line {}: the key id is not valid", number + 1))?;
        let bytes = Zeroizing::new(
            STANDARD
                .decode(secret)
                .map_err(|_| format!("line {}: the key is not base64", number + 1))?,
        );
        let secret: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "line {}: a key must be {KEY_BYTES} bytes (base64 of 32 random bytes)",
                number + 1
            )
        })?;
        keys.push(DataKey::new(id, secret));
    }
    Ok((Keyring::new(keys)?, server_secret))
}

/// The file's text for `keyring` and `secret`.
fn render(keyring: &Keyring, secret: Option<&ServerSecret>) -> Zeroizing<String> {
    let mut text = Zeroizing::new(HEADER.to_owned());
    if let Some(secret) = secret {
        text.push_str(&format!("secret {}\n", STANDARD.encode(secret.expose())));
    }
    for key in keyring.keys() {
        text.push_str(&format!(
            "key {} {}\n",
            key.id(),
            STANDARD.encode(key.secret())
        ));
    }
    text
}

/// Writes `keyring` and `secret` to a new owner-only file beside `path`,
/// synced; returns its name.
fn write_temporary(
    path: &Path,
    keyring: &Keyring,
    secret: Option<&ServerSecret>,
) -> std::io::Result<PathBuf> {
    let (temp, mut file) = private_file::create_temporary(path)?;
    let written = file
        .write_all(render(keyring, secret).as_bytes())
        .and_then(|()| file.sync_all());
    match written {
        Ok(()) => Ok(temp),
        Err(error) => {
            let _ = std::fs::remove_file(&temp);
            Err(error)
        }
    }
}

fn create_directory(path: &Path) -> Result<(), String> {
    match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) => private_file::create_dir_all(dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display())),
        None => Ok(()),
    }
}

/// Creates the key file at `path` holding `keyring` and `secret`, unless
/// one exists: `false` then, and the existing file is left alone (two nodes
/// starting together keep whichever was written first).
///
/// # Errors
/// A message if the file cannot be written.
pub fn create(path: &Path, keyring: &Keyring, secret: &ServerSecret) -> Result<bool, String> {
    create_directory(path)?;
    let failed = |error: std::io::Error| {
        format!(
            "cannot write the encryption key file {}: {error}",
            path.display()
        )
    };
    let temp = write_temporary(path, keyring, Some(secret)).map_err(failed)?;
    // A hard link never replaces an existing file.
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            private_file::sync_parent(path);
            Ok(true)
        }
        Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(failed(error)),
    }
}

/// Takes an exclusive lock for changes of the key file at `path` that must
/// not interleave with another process's (nodes that share one file and
/// start together); blocks until the lock is free (another holder keeps it
/// for a file write and one database round trip), and holds it until the
/// returned file is dropped. The lock is a sibling file, `<key file>.lock`,
/// empty and left in place.
///
/// # Errors
/// A message if the lock file cannot be opened or locked.
pub fn lock(path: &Path) -> Result<File, String> {
    create_directory(path)?;
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    options.mode(private_file::FILE_MODE);
    let file = options
        .open(&lock_path)
        .map_err(|error| format!("cannot open {}: {error}", lock_path.display()))?;
    file.lock()
        .map_err(|error| format!("cannot lock {}: {error}", lock_path.display()))?;
    Ok(file)
}

/// Replaces the key file at `path` with one holding `keyring` and `secret`
/// (`None` only to put back a file from before there was a secret).
///
/// # Errors
/// A message if the file cannot be written.
pub fn replace(
    path: &Path,
    keyring: &Keyring,
    secret: Option<&ServerSecret>,
) -> Result<(), String> {
    create_directory(path)?;
    let written = write_temporary(path, keyring, secret).and_then(|temp| {
        std::fs::rename(&temp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })
    });
    if let Err(error) = written {
        return Err(format!(
            "cannot write the encryption key file {}: {error}",
            path.display()
        ));
    }
    private_file::sync_parent(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_created_file_reads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("sub").join("encryption.key");
        assert!(read(&path).expect("readable").is_none());
        let first = Keyring::new(vec![DataKey::generate().expect("a key")]).expect("a keyring");
        let secret = ServerSecret::generate().expect("a secret");
        assert!(create(&path, &first, &secret).expect("written"));
        let second = Keyring::new(vec![DataKey::generate().expect("a key")]).expect("a keyring");
        let other_secret = ServerSecret::generate().expect("a secret");
        assert!(
            !create(&path, &second, &other_secret).expect("no error"),
            "kept the first"
        );
        let read_back = read(&path).expect("readable").expect("present");
        assert_eq!(read_back.keyring.current().id(), first.current().id());
        assert_eq!(
            read_back.keyring.current().secret(),
            first.current().secret()
        );
        assert_eq!(
            read_back.secret.as_ref().map(ServerSecret::expose),
            Some(secret.expose())
        );
        assert!(!read_back.loose_permissions);
        #[cfg(unix)]
        assert_eq!(
            std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        #[cfg(unix)]
        assert_eq!(
            std::fs::metadata(path.parent().expect("a parent"))
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777,
            0o700,
            "the directory ticketd created"
        );
        let both = Keyring::new(vec![first.current().clone(), second.current().clone()])
            .expect("a keyring");
        replace(&path, &both, Some(&secret)).expect("replaced");
        let read_back = read(&path).expect("readable").expect("present");
        assert_eq!(read_back.keyring.keys().len(), 2);
        assert_eq!(read_back.keyring.current().id(), second.current().id());
        assert_eq!(
            read_back.secret.as_ref().map(ServerSecret::expose),
            Some(secret.expose()),
            "a rewrite keeps the secret"
        );
        let leftovers = std::fs::read_dir(path.parent().expect("a parent"))
            .expect("listable")
            .count();
        assert_eq!(leftovers, 1, "no temporary files are left behind");
    }

    #[test]
    fn a_file_from_before_the_server_secret_reads_without_one() {
        let key = DataKey::generate().expect("a key");
        let text = format!(
            "# old header\nkey {} {}\n",
            key.id(),
            STANDARD.encode(key.secret())
        );
        let (keyring, secret) = parse(&text).expect("valid");
        assert_eq!(keyring.current().id(), key.id());
        assert!(secret.is_none());
        // The secret line may come anywhere.
        let bytes = [5u8; SECRET_BYTES];
        let with = format!("{text}secret {}\n", STANDARD.encode(bytes));
        let (_, secret) = parse(&with).expect("valid");
        assert_eq!(secret.as_ref().map(ServerSecret::expose), Some(&bytes));
    }

    #[test]
    fn invalid_files_are_named_without_their_secrets() {
        let secret = STANDARD.encode([7u8; 16]);
        let good = STANDARD.encode([7u8; 32]);
        let id = DataKeyId::generate();
        let key_line = format!("key {id} {good}\n");
        for (text, expected) in [
            ("", "holds no key"),
            ("nonsense\n", "line 1"),
            (&format!("key {id} {secret}\n") as &str, "32 bytes"),
            ("key nope AAAA\n", "key id"),
            (&format!("secret {secret}\n{key_line}"), "32 bytes"),
            (
                &format!("secret {good}\n{key_line}secret {good}\n"),
                "a second `secret`",
            ),
            (
                &format!("secret {good} extra\n{key_line}"),
                "expected `secret",
            ),
            (&format!("secret not*base64\n{key_line}"), "not base64"),
            (&format!("secret {good}\n"), "holds no key"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains(&secret), "{error}");
            assert!(!error.contains(&good), "{error}");
        }
    }
}
