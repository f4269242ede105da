//! `ticketd backup --to DIR` and `ticketd restore --from DIR`: hot backups
//! of the embedded SQLite database and its upload files.
//!
//! A backup is a directory: `ticketd.db`, a consistent copy of the database
//! taken while servers run ([`crate::store::sqlite::backup`]), and
//! `blobs/`, the bytes of every upload that copy names as stored. The
//! database is copied first and the files it names after, so every file
//! the copy needs is there: files are written once and never changed, and
//! the only ones that can go meanwhile are unattached uploads the sweep
//! deletes, which the copy then forgets too. The encryption key file is
//! left out, to be kept apart from the data as always.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::{CliError, print_json};
use crate::blob::BlobLocation;
use crate::config::Config;
use crate::private_file;
use crate::store::DatabaseUrl;
use crate::store::sqlite::backup;

/// The database file's name in a backup.
const DATABASE_FILE: &str = "ticketd.db";

/// The directory of upload bytes in a backup.
const BLOBS_DIR: &str = "blobs";

/// Flags of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup's directory, which must not exist yet.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

/// Flags of `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory `ticketd backup` wrote.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
}

/// What a backup or restore did, as printed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    /// The backup's directory.
    backup: String,
    /// The database file written.
    database: String,
    /// Its size in bytes.
    database_bytes: u64,
    /// Upload files copied.
    upload_files: u64,
    /// Where the upload files went, or why none were copied.
    upload_files_in: String,
    /// How long it took, in milliseconds.
    took_ms: u64,
    /// The key file encrypted messages need, which is never copied.
    encryption_key_file: String,
}

fn sqlite_path(url: &DatabaseUrl, command: &str) -> Result<PathBuf, CliError> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(path.clone()),
        DatabaseUrl::Postgres(_) => Err(CliError::new(format!(
            "ticketd {command} is for the embedded SQLite database; back up PostgreSQL with \
             pg_dump (or ticketd export, which any ticketd imports)"
        ))),
    }
}

fn failed(what: String) -> impl FnOnce(std::io::Error) -> CliError {
    move |error| CliError::caused_by(format!("{what}: {error}"), error)
}

/// Copies the file `from` to the new file `to` (owner-only) and syncs it.
fn copy_file(from: &Path, to: &Path) -> std::io::Result<u64> {
    let source = std::fs::File::open(from)?;
    copy_into(source, private_file::create_new(to)?)
}

/// Copies `source` into `target` and syncs it.
fn copy_into(mut source: std::fs::File, mut target: std::fs::File) -> std::io::Result<u64> {
    let copied = std::io::copy(&mut source, &mut target)?;
    target.sync_all()?;
    Ok(copied)
}

/// Syncs `path` itself (a file, or a directory's entries).
fn sync(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

pub(super) fn backup(config: &Config, args: &BackupArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let source = sqlite_path(&config.database, "backup")?;
    if !source.exists() {
        return Err(CliError::new(format!(
            "no ticketd database at {}",
            config.database.redacted()
        )));
    }
    let dir = &args.to;
    if dir.exists() {
        return Err(CliError::new(format!(
            "{} exists: back up into a new directory",
            dir.display()
        )));
    }
    private_file::create_dir_all(dir)
        .map_err(failed(format!("cannot create {}", dir.display())))?;
    let written = write_backup(config, &source, dir);
    if written.is_err() {
        // Nothing half-written is left to be taken for a backup.
        let _ = std::fs::remove_dir_all(dir);
    }
    let (database, upload_files, upload_files_in) = written?;
    print_json(&Report {
        backup: dir.display().to_string(),
        database_bytes: file_size(&database),
        database: database.display().to_string(),
        upload_files,
        upload_files_in,
        took_ms: elapsed_ms(started),
        encryption_key_file: config.encryption_key_file.display().to_string(),
    })
}

/// Writes the backup of the database at `source` into the new directory
/// `dir`; returns the database copy's path, the upload files copied, and
/// where they went.
fn write_backup(
    config: &Config,
    source: &Path,
    dir: &Path,
) -> Result<(PathBuf, u64, String), CliError> {
    let database = dir.join(DATABASE_FILE);
    // Created owner-only first: SQLite would give the copy the umask's
    // permissions.
    private_file::create_new(&database)
        .map_err(failed(format!("cannot create {}", database.display())))?;
    backup::copy_live(source, &database).map_err(CliError::store)?;
    let (upload_files, upload_files_in) = match &config.blob_store {
        BlobLocation::Directory(blobs) => {
            let copied = copy_uploads(&database, blobs, &dir.join(BLOBS_DIR))?;
            (copied, dir.join(BLOBS_DIR).display().to_string())
        }
        other => (
            0,
            format!(
                "not copied: they are kept in {} (back it up there)",
                other.as_setting()
            ),
        ),
    };
    if let Err(found) = backup::integrity_check(&database).map_err(CliError::store)? {
        return Err(CliError::new(format!(
            "the copy {} fails its integrity check: {found}",
            database.display()
        )));
    }
    sync(&database)
        .and_then(|()| sync(dir))
        .map_err(failed(format!("cannot sync {}", dir.display())))?;
    private_file::sync_parent(dir);
    Ok((database, upload_files, upload_files_in))
}

/// Copies into `to` the bytes in `blobs` of every upload the database copy
/// at `database` names as stored; an unattached one whose bytes the sweep
/// deleted meanwhile is forgotten by the copy. Returns how many it copied.
fn copy_uploads(database: &Path, blobs: &Path, to: &Path) -> Result<u64, CliError> {
    private_file::create_dir_all(to).map_err(failed(format!("cannot create {}", to.display())))?;
    let mut copied = 0;
    let mut swept = Vec::new();
    for (id, attached) in backup::stored_uploads(database).map_err(CliError::store)? {
        let from = blobs.join(id.key());
        match copy_file(&from, &to.join(id.key())) {
            Ok(_) => copied += 1,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !attached => {
                swept.push(id);
            }
            Err(error) => {
                return Err(CliError::caused_by(
                    format!(
                        "cannot copy the bytes of upload {id} ({}): {error}",
                        from.display()
                    ),
                    error,
                ));
            }
        }
    }
    backup::forget_swept_uploads(database, &swept).map_err(CliError::store)?;
    sync(to).map_err(failed(format!("cannot sync {}", to.display())))?;
    Ok(copied)
}

pub(super) fn restore(config: &Config, args: &RestoreArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let target = sqlite_path(&config.database, "restore")?;
    let from = &args.from;
    let copy = from.join(DATABASE_FILE);
    if !copy.is_file() {
        return Err(CliError::new(format!(
            "{} is not a ticketd backup: it has no {DATABASE_FILE}",
            from.display()
        )));
    }
    if target.exists() {
        return Err(CliError::new(format!(
            "{} exists: restore into an empty data directory",
            target.display()
        )));
    }
    if let Err(found) = backup::integrity_check(&copy).map_err(CliError::store)? {
        return Err(CliError::new(format!(
            "the backup {} fails its integrity check: {found}",
            copy.display()
        )));
    }
    let blobs = match &config.blob_store {
        BlobLocation::Directory(blobs) => Some(blobs),
        _ => None,
    };
    if let Some(blobs) = blobs
        && std::fs::read_dir(blobs).is_ok_and(|mut entries| entries.next().is_some())
    {
        return Err(CliError::new(format!(
            "{} holds files: restore into an empty data directory",
            blobs.display()
        )));
    }
    if let Some(dir) = target.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        private_file::create_dir_all(dir)
            .map_err(failed(format!("cannot create {}", dir.display())))?;
    }
    // Upload files first, the database last: a restore that fails midway
    // leaves no database that lacks its files.
    let mut upload_files = 0;
    let upload_files_in = match blobs {
        Some(blobs) => {
            let backed_up = from.join(BLOBS_DIR);
            private_file::create_dir_all(blobs)
                .map_err(failed(format!("cannot create {}", blobs.display())))?;
            if backed_up.is_dir() {
                let entries = std::fs::read_dir(&backed_up)
                    .map_err(failed(format!("cannot read {}", backed_up.display())))?;
                for entry in entries {
                    let entry =
                        entry.map_err(failed(format!("cannot read {}", backed_up.display())))?;
                    let to = blobs.join(entry.file_name());
                    copy_file(&entry.path(), &to)
                        .map_err(failed(format!("cannot copy {}", entry.path().display())))?;
                    upload_files += 1;
                }
            }
            sync(blobs).map_err(failed(format!("cannot sync {}", blobs.display())))?;
            blobs.display().to_string()
        }
        None => format!(
            "not copied: uploads are kept in {}",
            config.blob_store.as_setting()
        ),
    };
    let source =
        std::fs::File::open(&copy).map_err(failed(format!("cannot read {}", copy.display())))?;
    let (temporary, file) = private_file::create_temporary(&target).map_err(failed(format!(
        "cannot create a file beside {}",
        target.display()
    )))?;
    copy_into(source, file)
        .and_then(|_| std::fs::rename(&temporary, &target))
        .map_err(|error| {
            let _ = std::fs::remove_file(&temporary);
            CliError::caused_by(format!("cannot write {}: {error}", target.display()), error)
        })?;
    private_file::sync_parent(&target);
    print_json(&Report {
        backup: from.display().to_string(),
        database_bytes: file_size(&target),
        database: target.display().to_string(),
        upload_files,
        upload_files_in,
        took_ms: elapsed_ms(started),
        encryption_key_file: config.encryption_key_file.display().to_string(),
    })
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
