//! `ticketd encryption rotate|add-key|status`: the key file of encrypted
//! messages.

use clap::Subcommand;

use super::{CliError, print_json};
use crate::config::Config;
use crate::encryption;
use crate::store::{self};

/// `encryption` subcommands.
#[derive(Debug, Subcommand)]
pub enum EncryptionCommand {
    /// Add a key, re-seal every encrypted message under it, and delete the
    /// old keys from the database and the key file. Servers may keep
    /// running.
    Rotate {
        /// Re-seal under the key file's newest key (one added with
        /// `add-key` and copied to every node, or a rotation that was
        /// interrupted) instead of adding one.
        #[arg(long)]
        no_new_key: bool,
    },
    /// Add a key to the key file; copy the file to every node, then run
    /// `rotate --no-new-key`.
    AddKey,
    /// Show the keys and how many encrypted messages each one seals.
    Status,
}

pub(super) async fn encryption_command(
    config: &Config,
    command: EncryptionCommand,
) -> Result<(), CliError> {
    if !store::exists(&config.database)
        .await
        .map_err(CliError::store)?
    {
        return Err(CliError::new(format!(
            "no ticketd database at {}",
            config.database.redacted()
        )));
    }
    let store = store::open(&config.database)
        .await
        .map_err(CliError::store)?;
    let store = store.as_ref();
    let path = &config.encryption_key_file;
    match command {
        EncryptionCommand::Rotate { no_new_key } => {
            print_json(&encryption::rotate(store, path, !no_new_key).await?)
        }
        EncryptionCommand::AddKey => {
            let key = encryption::add_key(store, path).await?;
            print_json(&serde_json::json!({ "addedKey": key.to_string() }))
        }
        EncryptionCommand::Status => print_json(&encryption::status(store, path).await?),
    }
}
