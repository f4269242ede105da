//! The embedded SQLite backend.
//!
//! One writer thread commits writes in groups ([`writer`]); read-only
//! connections serve reads beside it, inline on the calling thread ([`readers`]). The database
//! runs in WAL mode; every commit is fsynced to the WAL before any caller is
//! answered (by the writer's sync thread, see [`writer`]), so an acknowledged
//! write survives a process crash and a power cut.

pub mod backup;
mod checkpointer;
mod encryption;
mod idempotency;
mod migrate;
mod provisioning;
#[cfg(test)]
mod query_plans;
mod readers;
mod rows;
mod tickets;
mod transfer;
mod uploads;
mod writer;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::private_file;
use crate::store::{Cause, Constraint, Store, StoreError};

pub use migrate::MIGRATIONS;

use checkpointer::{Checkpointer, RestartFlag};
use readers::Readers;
use writer::Writer;

/// How long a connection waits for a lock held by another process (the CLI
/// provisioning while the server runs) before giving up.
pub(crate) const BUSY_TIMEOUT_MS: u32 = 5_000;

/// The SQLite store.
pub struct SqliteStore {
    // Dropped in this order: queued writes finish before checkpoints stop.
    writer: Writer,
    readers: Readers,
    _checkpointer: Checkpointer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, creates its
    /// directory, and applies pending migrations.
    ///
    /// # Errors
    /// `Unavailable` if the file cannot be opened; `Other` if a migration fails.
    pub async fn open(path: PathBuf) -> Result<Self, StoreError> {
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(|error| {
                StoreError::Other(Cause::with_source(
                    format!("opening the database failed: {error}"),
                    error,
                ))
            })?
    }

    fn open_blocking(path: PathBuf) -> Result<Self, StoreError> {
        let mut conn = open_writer(&path)?;
        migrate::migrate(&mut conn)?;
        let restart = RestartFlag::default();
        let checkpointer = Checkpointer::start(&path, restart.clone())?;
        let mut wal_path = path.clone().into_os_string();
        wal_path.push("-wal");
        let writer = Writer::start(conn, PathBuf::from(wal_path), restart).map_err(|error| {
            StoreError::Other(Cause::with_source(
                format!("cannot start the writer thread: {error}"),
                error,
            ))
        })?;
        Ok(Self {
            writer,
            readers: Readers::new(path),
            _checkpointer: checkpointer,
        })
    }

    /// Applies pending migrations to the database at `path`; returns the names
    /// of those it applied.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn migrate(path: &Path) -> Result<Vec<&'static str>, StoreError> {
        let mut conn = open_writer(path)?;
        migrate::migrate(&mut conn)
    }
}

/// Opens the database file as the writer, creating it and its directory.
///
/// Both are created owner-only (directory 700, file 600). SQLite gives the
/// `-wal` and `-shm` files it creates the database file's permissions
/// (whatever the umask), so creating the file before SQLite does is what
/// keeps them owner-only too. Files that exist keep their permissions.
fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        private_file::create_dir_all(dir).map_err(|error| {
            StoreError::Unavailable(Cause::with_source(
                format!("cannot create {}: {error}", dir.display()),
                error,
            ))
        })?;
    }
    match private_file::create_new(path) {
        // An empty file is an empty SQLite database.
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => {
            return Err(StoreError::Unavailable(Cause::with_source(
                format!("cannot create {}: {error}", path.display()),
                error,
            )));
        }
    }
    if private_file::is_loose(path) {
        tracing::warn!(
            database = %path.display(),
            "others may read the database file (and its -wal and -shm files): \
             make it owner-only (chmod 600)"
        );
    }
    let conn = open_file(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    configure(&conn, Role::Writer)?;
    Ok(conn)
}

/// Opens the database file at `path` as a plain file name, never as a
/// SQLite URI: `sqlite://file:x.db?nolock=1` must not turn SQLite's locking
/// off while the rest of ticketd takes `file:x.db?nolock=1` for a path.
///
/// Leaving out `SQLITE_OPEN_URI` is not enough on its own: the bundled
/// SQLite is built with `SQLITE_USE_URI`, which reads any name starting
/// with `file:` as a URI. A relative path is therefore handed over as
/// `./PATH`, which never starts with `file:` (and an absolute one starts
/// with `/`). [`crate::store::DatabaseUrl::parse`] refuses such names up
/// front; this keeps every other way in plain too.
///
/// The file itself may not be a symbolic link (`SQLITE_OPEN_NOFOLLOW`): a
/// link placed at the database's name, dangling or not, would have SQLite
/// create or open its target, with whatever permissions it has.
fn open_file(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    Connection::open_with_flags(
        plain_file_name(path),
        flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(map_error)
}

/// `path` in a form SQLite cannot take for a URI or a special name.
fn plain_file_name(path: &Path) -> PathBuf {
    if path.is_relative() {
        Path::new(".").join(path)
    } else {
        path.to_path_buf()
    }
}

/// What a connection is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The single writer: a large page cache, and no checkpoints of its own.
    Writer,
    /// A read-only connection.
    Reader,
    /// The background checkpointer.
    Checkpointer,
}

fn configure(conn: &Connection, role: Role) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_millis(u64::from(BUSY_TIMEOUT_MS)))
        .map_err(map_error)?;
    // Every connection: WAL, with commits that do not wait for the disk; the
    // writer's sync thread fsyncs the WAL before any write is acknowledged.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )
    .map_err(map_error)?;
    let pragmas = match role {
        // The writer leaves checkpoints to the checkpointer; its cache holds
        // the hot index pages of the write path (32 MiB at most). After a
        // restart the WAL file keeps its size (up to 256 MiB) so that later
        // frames overwrite it in place: a WAL that grows makes each fsync
        // also journal the new file size, which queues behind checkpoints.
        Role::Writer => {
            "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY; \
             PRAGMA journal_size_limit = 268435456;"
        }
        Role::Reader => "PRAGMA query_only = ON; PRAGMA cache_size = -8192;",
        Role::Checkpointer => "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -256;",
    };
    conn.execute_batch(pragmas).map_err(map_error)?;
    // Plans never depend on bound values. Without this, SQLite lets a
    // statement's plan use the value bound to `LIMIT ?`, so binding a new
    // page size to a cached statement re-parses and re-plans it on every
    // call; our queries have one right plan whatever the values (see the
    // plan tests).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(map_error)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_file(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    configure(&conn, Role::Reader)?;
    Ok(conn)
}

/// Runs a fixed statement without parameters or rows (`BEGIN`, `COMMIT`,
/// `SAVEPOINT` and the like), prepared once per connection.
fn run_transaction_statement(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(|_| ())
        .map_err(map_error)
}

/// Maps a SQLite error to a [`StoreError`]: constraint violations to
/// `Conflict` with the constraint's name, lock and I/O trouble to
/// `Unavailable`, anything else to `Other`.
pub(crate) fn map_error(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(failure, message) => match failure.code {
            ErrorCode::ConstraintViolation => StoreError::Conflict(Constraint::from_name(
                &constraint_name(message.as_deref().unwrap_or_default()),
            )),
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly => StoreError::Unavailable(Cause::new(error)),
            _ => StoreError::Other(Cause::new(error)),
        },
        _ => StoreError::Other(Cause::new(error)),
    }
}

/// SQLite names CHECK constraints in its messages but reports UNIQUE ones by
/// their columns; this maps both to the constraint names the schema declares
/// (the same names PostgreSQL reports).
fn constraint_name(message: &str) -> String {
    const UNIQUE: &[(&str, &str)] = &[
        ("workspace.code", "workspace_code_key"),
        ("workspace.id", "workspace_id_key"),
        (
            "ticket.workspace_id, ticket.number",
            "ticket_workspace_id_number_key",
        ),
        ("workspace.numeric_id", "workspace_pkey"),
        ("message.ticket_id, message.seq", "message_pkey"),
        ("principal.id", "principal_pkey"),
        ("api_key.id", "api_key_pkey"),
        ("ticket.id", "ticket_pkey"),
        ("message.id", "message_id_key"),
        ("message.numeric_id", "message_numeric_id_key"),
        ("upload.numeric_id", "upload_numeric_id_key"),
        (
            "idempotency_record.api_key_id, idempotency_record.key",
            "idempotency_record_pkey",
        ),
    ];
    if let Some(columns) = message.strip_prefix("UNIQUE constraint failed: ")
        && let Some((_, name)) = UNIQUE.iter().find(|(cols, _)| *cols == columns)
    {
        return (*name).to_owned();
    }
    if let Some(name) = message.strip_prefix("CHECK constraint failed: ") {
        return name.to_owned();
    }
    if message.starts_with("FOREIGN KEY") {
        return "foreign_key".to_owned();
    }
    message.to_owned()
}

#[async_trait]
impl Store for SqliteStore {
    async fn check_ready(&self) -> Result<(), StoreError> {
        self.readers.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(map_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::time::Timestamp;
    use crate::core::workspace::NewWorkspace;
    use crate::store::ProvisioningStore;

    /// The directory ticketd creates is owner-only, and so is every file
    /// in it: the database, and the -wal and -shm files SQLite creates.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_data_directory_and_database_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;

        let scratch = tempfile::tempdir().expect("a temporary directory");
        let dir = scratch.path().join("data").join("sub");
        let path = dir.join("ticketd.db");
        let store = SqliteStore::open(path.clone()).await.expect("opened");
        let new = NewWorkspace {
            id: crate::core::id::WorkspaceId::generate(),
            name: "Acme".into(),
            code: crate::core::workspace::WorkspaceCode::parse("ACME").expect("a code"),
            created_at: Timestamp::now(),
        };
        store.create_workspace(new).await.expect("written");
        store.check_ready().await.expect("read");
        let mode = |path: &Path| {
            std::fs::symlink_metadata(path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(&scratch.path().join("data")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let mut files: Vec<(String, u32)> = std::fs::read_dir(&dir)
            .expect("listable")
            .map(|entry| {
                let entry = entry.expect("an entry");
                let name = entry.file_name().into_string().expect("a name");
                (name, mode(&entry.path()))
            })
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                ("ticketd.db".to_owned(), 0o600),
                ("ticketd.db-shm".to_owned(), 0o600),
                ("ticketd.db-wal".to_owned(), 0o600),
            ]
        );
        drop(store);
    }

    /// A link at the database's name, dangling or not, is refused rather
    /// than followed: its target is neither created nor opened.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_link_at_the_database_name_is_not_followed() {
        let scratch = tempfile::tempdir().expect("a temporary directory");
        let target = scratch.path().join("elsewhere.db");
        let path = scratch.path().join("ticketd.db");
        std::os::unix::fs::symlink(&target, &path).expect("a link");
        assert!(SqliteStore::open(path.clone()).await.is_err(), "dangling");
        assert!(!target.exists(), "the link's target was created");
        std::fs::write(&target, b"").expect("a target");
        assert!(SqliteStore::open(path).await.is_err(), "to a file");
        assert_eq!(std::fs::read(&target).expect("readable"), b"");
    }

    #[test]
    fn sqlite_is_never_handed_a_name_it_reads_as_a_uri() {
        assert_eq!(
            plain_file_name(Path::new("file:x.db?nolock=1")),
            Path::new("./file:x.db?nolock=1")
        );
        assert_eq!(
            plain_file_name(Path::new("ticketd-data/ticketd.db")),
            Path::new("./ticketd-data/ticketd.db")
        );
        assert_eq!(
            plain_file_name(Path::new("/var/lib/file:x.db")),
            Path::new("/var/lib/file:x.db")
        );
    }

    #[test]
    fn unique_violations_map_to_declared_constraint_names() {
        assert_eq!(
            constraint_name("UNIQUE constraint failed: ticket.workspace_id, ticket.number"),
            "ticket_workspace_id_number_key"
        );
        assert_eq!(
            constraint_name("CHECK constraint failed: ticket_status_check"),
            "ticket_status_check"
        );
    }
}
