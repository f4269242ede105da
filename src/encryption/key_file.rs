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
//! never sees half a file, and a crash leaves the old file or the new one
//! ([`crate::private_file`]: owner-only, in an owner-only directory if
//! ticketd creates it).

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::core::crypto::{DataKey, DataKeyId, KEY_BYTES, Keyring};
use crate::private_file;

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
        loose_permissions: private_file::is_loose(path),
    }))
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

/// Writes `keyring` to a new owner-only file beside `path`, synced;
/// returns its name.
fn write_temporary(path: &Path, keyring: &Keyring) -> std::io::Result<PathBuf> {
    let (temp, mut file) = private_file::create_temporary(path)?;
    let written = file
        .write_all(render(keyring).as_bytes())
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

/// Creates the key file at `path` holding `keyring`, unless one exists:
/// `false` then, and the existing file is left alone (two nodes starting
/// together keep whichever was written first).
///
/// # Errors
/// A message if the file cannot be written.
pub fn create(path: &Path, keyring: &Keyring) -> Result<bool, String> {
    create_directory(path)?;
    let failed = |error: std::io::Error| {
        format!(
            "cannot write the encryption key file {}: {error}",
            path.display()
        )
    };
    let temp = write_temporary(path, keyring).map_err(failed)?;
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

/// Replaces the key file at `path` with one holding `keyring`.
///
/// # Errors
/// A message if the file cannot be written.
pub fn replace(path: &Path, keyring: &Keyring) -> Result<(), String> {
    create_directory(path)?;
    let written = write_temporary(path, keyring).and_then(|temp| {
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
