//! The key file: the data keys, readable by the owner only.
//!
//! ```text
//! # ticketd encryption keys ...
//! key 01jabcdefghjkmnpqrstvwxyz0 <base64 of 32 bytes>
//! key 01jbcdefghjkmnpqrstvwxyz01 <base64 of 32 bytes>
//! ```
//!
//! One line per key, oldest first; the last seals new messages. Files are
//! written whole beside their final name and moved into place, so a reader
//! never sees half a file, and a crash leaves the old file or the new one.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::core::crypto::{DataKey, DataKeyId, KEY_BYTES, Keyring};

const HEADER: &str = "\
# ticketd encryption keys: the only way to read messages marked `encrypted`.
# Keep this file secret (owner-only permissions) and back it up apart from the
# database: without it encrypted messages cannot be read. Every ticketd node of
# one database needs the same file. One key per line, oldest first; the last
# one seals new messages. Manage it with `ticketd encryption ...`.
";

/// A key file as read.
#[derive(Debug)]
pub struct KeyFile {
    /// Its keys.
    pub keyring: Keyring,
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
    let keyring = parse(&text).map_err(|error| {
        format!(
            "the encryption key file {} is not valid: {error}",
            path.display()
        )
    })?;
    Ok(Some(KeyFile {
        keyring,
        loose_permissions: loose_permissions(path),
    }))
}

#[cfg(unix)]
fn loose_permissions(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0)
}

#[cfg(not(unix))]
fn loose_permissions(_: &Path) -> bool {
    false
}

/// Parses a key file's text.
fn parse(text: &str) -> Result<Keyring, String> {
    let mut keys = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
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
    Keyring::new(keys)
}

/// The file's text for `keyring`.
fn render(keyring: &Keyring) -> Zeroizing<String> {
    let mut text = Zeroizing::new(HEADER.to_owned());
    for key in keyring.keys() {
        text.push_str(&format!(
            "key {} {}\n",
            key.id(),
            STANDARD.encode(key.secret())
        ));
    }
    text
}

/// A sibling of `path` to write before moving it into place.
fn temporary(path: &Path) -> Result<PathBuf, String> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|error| error.to_string())?;
    let suffix: String = suffix.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp-{suffix}"));
    Ok(PathBuf::from(name))
}

/// Writes `keyring` to a new owner-only file at `temp`, synced.
fn write_temporary(temp: &Path, keyring: &Keyring) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(temp)?;
    file.write_all(render(keyring).as_bytes())?;
    file.sync_all()
}

fn sync_directory(path: &Path) {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // Best effort: the rename is durable once the directory is synced.
        let _ = File::open(dir).and_then(|dir| dir.sync_all());
    }
}

fn create_directory(path: &Path) -> Result<(), String> {
    match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display())),
        None => Ok(()),
    }
}

/// Creates the key file at `path` holding `keyring`, unless one exists:
/// `false` then, and the existing file is left alone (two nodes starting
/// together keep whichever was written first).
///
/// # Errors
/// A message if the file cannot be written.
pub fn create(path: &Path, keyring: &Keyring) -> Result<bool, String> {
    create_directory(path)?;
    let temp = temporary(path)?;
    let failed = |error: std::io::Error| {
        format!(
            "cannot write the encryption key file {}: {error}",
            path.display()
        )
    };
    write_temporary(&temp, keyring).map_err(|error| {
        let _ = std::fs::remove_file(&temp);
        failed(error)
    })?;
    // A hard link never replaces an existing file.
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            sync_directory(path);
            Ok(true)
        }
        Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(failed(error)),
    }
}

/// Replaces the key file at `path` with one holding `keyring`.
///
/// # Errors
/// A message if the file cannot be written.
pub fn replace(path: &Path, keyring: &Keyring) -> Result<(), String> {
    create_directory(path)?;
    let temp = temporary(path)?;
    let written = write_temporary(&temp, keyring).and_then(|()| std::fs::rename(&temp, path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(format!(
            "cannot write the encryption key file {}: {error}",
            path.display()
        ));
    }
    sync_directory(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_file_reads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("sub").join("encryption.key");
        assert!(read(&path).expect("readable").is_none());
        let first = Keyring::new(vec![DataKey::generate().expect("a key")]).expect("a keyring");
        assert!(create(&path, &first).expect("written"));
        let second = Keyring::new(vec![DataKey::generate().expect("a key")]).expect("a keyring");
        assert!(!create(&path, &second).expect("no error"), "kept the first");
        let read_back = read(&path).expect("readable").expect("present");
        assert_eq!(read_back.keyring.current().id(), first.current().id());
        assert_eq!(
            read_back.keyring.current().secret(),
            first.current().secret()
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
        let both = Keyring::new(vec![first.current().clone(), second.current().clone()])
            .expect("a keyring");
        replace(&path, &both).expect("replaced");
        let read_back = read(&path).expect("readable").expect("present");
        assert_eq!(read_back.keyring.keys().len(), 2);
        assert_eq!(read_back.keyring.current().id(), second.current().id());
        let leftovers = std::fs::read_dir(path.parent().expect("a parent"))
            .expect("listable")
            .count();
        assert_eq!(leftovers, 1, "no temporary files are left behind");
    }

    #[test]
    fn invalid_files_are_named_without_their_secrets() {
        let secret = STANDARD.encode([7u8; 16]);
        let id = DataKeyId::generate();
        for (text, expected) in [
            ("", "holds no key"),
            ("nonsense\n", "line 1"),
            (&format!("key {id} {secret}\n") as &str, "32 bytes"),
            ("key nope AAAA\n", "key id"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains(&secret), "{error}");
        }
    }
}
