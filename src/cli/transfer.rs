//! `ticketd export` and `ticketd import`: whole databases as dumps.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::{CliError, print_json};
use crate::blob;
use crate::config::Config;
use crate::core::dump::RecordCounts;
use crate::encryption::{self, ContentKeyring, EncryptedStore, ExportBodies, MissingKeyFile};
use crate::private_file;
use crate::store::{self, Store};
use crate::transfer::{self, Batching, DumpFiles, EXPORT_PAGE_SIZE};

/// Flags of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write the dump; `-` for stdout.
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
    /// Write the plaintext of messages and files marked `encrypted` (needs
    /// the key file). Without it they are written sealed, as stored.
    #[arg(long)]
    pub decrypt: bool,
}

/// Flags of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The dump to read; `-` for stdin.
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub input: PathBuf,
}

/// `-` for a standard stream.
fn is_std_stream(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Record counts as printed.
fn counts_json(counts: RecordCounts) -> serde_json::Value {
    serde_json::json!({
        "workspaces": counts.workspaces,
        "users": counts.users,
        "apiKeys": counts.api_keys,
        "tickets": counts.tickets,
        "messages": counts.messages,
        "readMarkers": counts.read_markers,
        "uploads": counts.uploads,
    })
}

pub(super) async fn export(config: &Config, args: &ExportArgs) -> Result<(), CliError> {
    let database = &config.database;
    let output = args.output.as_path();
    // Opening creates (or migrates) a database; exporting a misspelt one
    // should fail, changing nothing, instead of writing an empty dump.
    if !store::exists(database).await.map_err(CliError::store)? {
        return Err(CliError::new(format!(
            "no ticketd database at {}",
            database.redacted()
        )));
    }
    let mut store = store::open(database).await.map_err(CliError::store)?;
    let mut files = DumpFiles {
        blobs: blob::open_to_read(&config.blob_store, database)?,
        keys: None,
    };
    let bodies = if args.decrypt {
        let encryption = encryption::setup(
            store.as_ref(),
            &config.encryption_key_file,
            MissingKeyFile::Refuse,
        )
        .await?;
        files.keys = Some(Arc::new(ContentKeyring::new(
            Arc::clone(&encryption),
            Arc::clone(&store),
        )));
        store = EncryptedStore::wrap(store, encryption, ExportBodies::Decrypted);
        eprintln!(
            "ticketd: warning: --decrypt writes the plaintext of encrypted messages and files \
             into the dump; keep it as secret as the key file, and delete it when done"
        );
        ExportBodies::Decrypted
    } else {
        ExportBodies::Sealed
    };
    if is_std_stream(output) {
        let mut stdout = BufWriter::with_capacity(1 << 16, std::io::stdout());
        transfer::export(
            store.as_ref(),
            &files,
            bodies,
            &mut stdout,
            EXPORT_PAGE_SIZE,
        )
        .await
        .map_err(CliError::from_error)?;
        return Ok(());
    }
    // Written to an owner-only file beside the output, under a name nobody
    // can guess (so no link placed there is followed), and renamed over it
    // when complete: a failed export never leaves something that looks
    // like a dump.
    let (temporary, file) = private_file::create_temporary(output).map_err(|error| {
        CliError::caused_by(
            format!("cannot create a file beside {}: {error}", output.display()),
            error,
        )
    })?;
    let written = write_dump(store.as_ref(), &files, bodies, file, output).await;
    let renamed = written.and_then(|counts| {
        std::fs::rename(&temporary, output)
            .map(|()| counts)
            .map_err(|error| {
                CliError::caused_by(format!("cannot write {}: {error}", output.display()), error)
            })
    });
    match renamed {
        Ok(counts) => {
            private_file::sync_parent(output);
            print_json(&serde_json::json!({ "exported": counts_json(counts) }))
        }
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(error)
        }
    }
}

/// Writes a whole dump of `store` to `file` (to become `output`), synced
/// to disk.
async fn write_dump(
    store: &dyn Store,
    files: &DumpFiles,
    bodies: ExportBodies,
    file: File,
    output: &Path,
) -> Result<crate::core::dump::RecordCounts, CliError> {
    let mut writer = BufWriter::with_capacity(1 << 16, file);
    let counts = transfer::export(store, files, bodies, &mut writer, EXPORT_PAGE_SIZE)
        .await
        .map_err(CliError::from_error)?;
    writer
        .into_inner()
        .map_err(|error| error.into_error())
        .and_then(|file| file.sync_all())
        .map_err(|error| {
            CliError::caused_by(format!("cannot write {}: {error}", output.display()), error)
        })?;
    Ok(counts)
}

pub(super) async fn import(config: &Config, input: &Path) -> Result<(), CliError> {
    let database = &config.database;
    // Open the dump before the database, which opening would create.
    let mut dump = if is_std_stream(input) {
        spool_stdin()?
    } else {
        File::open(input).map_err(|error| {
            CliError::caused_by(format!("cannot open {}: {error}", input.display()), error)
        })?
    };
    let store = store::open(database).await.map_err(CliError::store)?;
    let encryption = encryption::setup(
        store.as_ref(),
        &config.encryption_key_file,
        MissingKeyFile::CreateForNewDatabase,
    )
    .await?;
    // Sealed bodies are opened with the target's keys and checked as
    // plaintext before anything is written.
    let keyring = encryption.keyring();
    let files = DumpFiles {
        blobs: blob::open(&config.blob_store, database)?,
        keys: Some(Arc::new(ContentKeyring::new(
            Arc::clone(&encryption),
            Arc::clone(&store),
        ))),
    };
    let store = EncryptedStore::wrap(store, encryption, ExportBodies::Sealed);
    let store: &dyn Store = store.as_ref();
    if !store.is_empty().await.map_err(CliError::store)? {
        return Err(CliError::new(format!(
            "{} is not empty: import only into a new, empty database",
            database.redacted()
        )));
    }
    // The dump is read twice: checked whole first, so that a truncated,
    // malformed or edited dump is refused before anything is written.
    transfer::check(BufReader::with_capacity(1 << 16, &dump), &keyring)
        .map_err(CliError::from_error)?;
    dump.seek(SeekFrom::Start(0)).map_err(|error| {
        CliError::caused_by(format!("cannot read {}: {error}", input.display()), error)
    })?;
    let counts = transfer::import(
        store,
        &files,
        BufReader::with_capacity(1 << 16, dump),
        Batching::default(),
        &keyring,
    )
    .await
    .map_err(CliError::from_error)?;
    print_json(&serde_json::json!({ "imported": counts_json(counts) }))
}

/// Copies standard input into an owner-only temporary file, so that a dump
/// piped in can be read twice like one named with `--input`. The file is in
/// the temporary directory (`TMPDIR`, or `/tmp`) and is removed as soon as
/// it is created: the open handle keeps it until import ends, however it
/// ends, and nothing is left behind.
///
/// # Errors
/// If the file cannot be created or written (the disk is full, say).
fn spool_stdin() -> Result<File, CliError> {
    let directory = std::env::temp_dir();
    let cannot = |error: std::io::Error| {
        let message = format!(
            "cannot copy the dump from stdin to a temporary file in {}: {error}",
            directory.display()
        );
        CliError::caused_by(message, error)
    };
    let (path, mut file) =
        private_file::create_temporary(&directory.join("ticketd-import")).map_err(cannot)?;
    // Best effort: on Unix an open file can lose its name.
    let _ = std::fs::remove_file(&path);
    std::io::copy(&mut std::io::stdin().lock(), &mut file)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .map_err(cannot)?;
    Ok(file)
}
