//! The files and directories ticketd creates, owner-only: directories mode
//! 700, files mode 600 (on Unix; elsewhere the platform's defaults).
//!
//! Files that replace another (a dump, the key file) are written whole to a
//! temporary sibling and then renamed over their target, so a reader never
//! sees half a file. The sibling's name ends in 16 random hex digits, and it
//! is created with `O_CREAT | O_EXCL` ([`OpenOptions::create_new`]): the
//! open fails rather than follow a link (or reuse a file) someone placed at
//! that name. A rename replaces a link at the target itself, never the file
//! it points to.
//!
//! The process umask can only remove permissions from these modes, never
//! add any. Setting the umask itself would take a libc call, which
//! `unsafe_code = "forbid"` rules out; SQLite's own files are covered
//! instead by creating the database file before SQLite opens it (see
//! [`crate::store::sqlite`]).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of a directory ticketd creates.
pub const DIRECTORY_MODE: u32 = 0o700;

/// The mode of a file ticketd creates.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parents, each owner-only. Directories that
/// exist already keep their permissions.
///
/// # Errors
/// As [`std::fs::create_dir_all`].
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(DIRECTORY_MODE);
    builder.create(dir)
}

/// Creates a new owner-only file at `path`, open for writing and reading.
///
/// # Errors
/// `AlreadyExists` if anything is at `path`, a link included (it is not
/// followed); otherwise as [`OpenOptions::open`].
pub fn create_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    options.mode(FILE_MODE);
    options.open(path)
}

/// A new owner-only file beside `path`, to be renamed over it once written:
/// its name is `path`'s with `.tmp-` and 16 random hex digits appended.
///
/// # Errors
/// If there is no randomness, or as [`create_new`].
pub fn create_temporary(path: &Path) -> io::Result<(PathBuf, File)> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(io::Error::other)?;
    let suffix: String = suffix.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp-{suffix}"));
    let temporary = PathBuf::from(name);
    let file = create_new(&temporary)?;
    Ok((temporary, file))
}

/// Syncs the directory `path` is in, so that a rename or a new name in it
/// is durable. Best effort: a failure only loses durability.
pub fn sync_parent(path: &Path) {
    let _ = sync_parent_or_fail(path);
}

/// Syncs the directory `path` is in, for callers that must know the new
/// name is durable.
///
/// # Errors
/// If the directory cannot be opened or synced.
pub fn sync_parent_or_fail(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if dir.as_os_str().is_empty() => Path::new("."),
        Some(dir) => dir,
        None => return Ok(()),
    };
    File::open(dir).and_then(|dir| dir.sync_all())
}

/// Whether others than the owner may read, write or enter `path` (`false`
/// if it cannot be examined, and off Unix).
pub fn is_loose(path: &Path) -> bool {
    #[cfg(unix)]
    {
        std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn created_directories_and_files_are_owner_only() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let nested = dir.path().join("a").join("b");
        create_dir_all(&nested).expect("created");
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        let file = nested.join("f");
        drop(create_new(&file).expect("created"));
        assert_eq!(mode(&file), 0o600);
        assert!(!is_loose(&file));
        assert_eq!(
            create_new(&file).map(drop).map_err(|error| error.kind()),
            Err(io::ErrorKind::AlreadyExists)
        );
    }

    #[test]
    fn a_link_is_never_followed_when_creating() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let unrelated = dir.path().join("unrelated");
        std::fs::write(&unrelated, "keep me").expect("written");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&unrelated, &link).expect("a link");
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).expect("a link");
        for path in [&link, &dangling] {
            assert_eq!(
                create_new(path).map(drop).map_err(|error| error.kind()),
                Err(io::ErrorKind::AlreadyExists)
            );
        }
        assert_eq!(
            std::fs::read_to_string(&unrelated).expect("read"),
            "keep me"
        );
        assert!(!dir.path().join("nothing").exists());
    }

    #[test]
    fn temporary_siblings_are_unpredictable() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let target = dir.path().join("dump.jsonl");
        let (first, _) = create_temporary(&target).expect("created");
        let (second, _) = create_temporary(&target).expect("created");
        assert_ne!(first, second);
        assert_eq!(first.parent(), target.parent());
        let name = first
            .file_name()
            .and_then(|name| name.to_str())
            .expect("a name");
        let suffix = name.strip_prefix("dump.jsonl.tmp-").expect("the prefix");
        assert_eq!(suffix.len(), 16);
        assert!(suffix.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        assert_eq!(mode(&first), 0o600);
    }
}
