//! The dump format: a whole database as versioned JSON Lines, written by
//! `ticketd export` and read by `ticketd import`.
//!
//! ```text
//! {"format":"ticketd-dump","version":4,"decrypted":false}
//! {"type":"workspace","id":"ws_01j...","numeric_id":1,...}
//! {"type":"user","id":"usr_01j...",...}
//! {"type":"api_key","id":"key_01j...",...,"secret_hash":"9f86d0...","scopes":["read:support"],...}
//! {"type":"ticket","id":"tkt_01j...",...}
//! {"type":"message","ticket_id":"tkt_01j...","seq":1,...}
//! {"type":"read_marker","ticket_id":"tkt_01j...","user_id":"usr_01j...","last_read_seq":1}
//! {"type":"upload","id":"upl_01j...","size":48213,"sha256":"9f86d0...",...}
//! {"type":"upload_data","data":"iVBORw0KGgoAAAANSUhEUgAA..."}
//! {"type":"end","workspaces":1,"users":1,"api_keys":1,"tickets":1,"messages":1,"read_markers":1,"uploads":1}
//! ```
//!
//! - Line 1 is the header. `decrypted` says how the bodies of messages
//!   marked `encrypted` follow: sealed as stored (`false`), or as plaintext
//!   from `export --decrypt` (`true`), which import seals anew; see
//!   [`EncryptedBodies`]. Nothing in the header (or anywhere) depends on
//!   when the dump was made, so the same data always gives byte-identical
//!   dumps.
//! - Then one line per stored row, every column included (see [`record`]
//!   for the members). Kinds come in dependency order (workspaces, users,
//!   API keys, tickets, messages, read markers, uploads) and each kind in
//!   key order: workspaces by `numeric_id`; users, keys, tickets and
//!   uploads by `id`; messages by `(ticket_id, seq)`; read markers by
//!   `(ticket_id, user_id)`. Ids compare as their lowercase text
//!   compares bytewise.
//! - Each upload record is followed by its bytes, base64 in `upload_data`
//!   lines of at most [`DATA_CHUNK_BYTES`] bytes each (none for an empty
//!   file): as stored (a sealed file sealed, with its sealed content key),
//!   or, from `export --decrypt`, as plaintext.
//! - Ids are the public prefixed ids (`ws_`, `usr_`, `key_`, `tkt_`,
//!   `tmsg_`) in lowercase; times are RFC 3339 UTC with milliseconds
//!   (`2026-04-27T12:00:00.000Z`), as in the API; `null` marks an absent
//!   value. Every member is required and unknown members are refused.
//! - Versions 1 to 3 are read too. Version 3 is version 4 without
//!   `decrypted`: the body of an encrypted message is taken as sealed when
//!   it begins with `tkdenc:v1:`, as plaintext otherwise.
//!   Version 2 is version 3 without read
//!   markers, booking ids, task ids and agency signature generations (its trailer
//!   has no `read_markers`): importing it gives each sender a read marker
//!   at their latest message, as migrating to version 3's schema did.
//!   Version 1 is version 2 without uploads (its trailer has no
//!   `uploads`).
//! - The last line is the trailer, with the number of records of each kind:
//!   a dump without it, or whose counts differ, is truncated or edited.
//!
//! Beyond their form, records must hold together ([`check`]): references
//! inside one workspace, text by the API's rules, consistent numbers.
//!
//! Nothing here performs I/O: [`crate::transfer`] streams dumps.

pub mod check;
pub mod record;
mod text_form;

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

pub use check::{DumpCheck, Refusal};
pub use record::{
    ApiKeyRecord, ExportCursor, MessageRecord, ReadMarkerRecord, Record, RecordKind, TicketRecord,
    UploadRecord, UserRecord, WorkspaceRecord,
};

/// The header's `format` member.
pub const FORMAT: &str = "ticketd-dump";

/// The version of the format this build writes (it reads versions 1 to 3
/// too).
pub const VERSION: u64 = 4;

/// The first version whose header says whether encrypted bodies are
/// sealed.
pub const FIRST_VERSION_WITH_DECRYPTED: u64 = 4;

/// The oldest version this build reads.
pub const OLDEST_VERSION: u64 = 1;

/// The most bytes of a file one `upload_data` line holds (64 KiB as
/// base64).
pub const DATA_CHUNK_BYTES: usize = 48 * 1024;

/// How many records of each kind a dump holds: the trailer's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordCounts {
    /// Workspace records.
    pub workspaces: u64,
    /// User records.
    pub users: u64,
    /// API key records.
    pub api_keys: u64,
    /// Ticket records.
    pub tickets: u64,
    /// Message records.
    pub messages: u64,
    /// Upload records (absent from a version 1 trailer).
    #[serde(default)]
    pub uploads: u64,
    /// Read marker records (absent before version 3).
    #[serde(default)]
    pub read_markers: u64,
}

impl RecordCounts {
    /// Counts one more record of `kind`.
    pub fn add(&mut self, kind: RecordKind) {
        let count = match kind {
            RecordKind::Workspace => &mut self.workspaces,
            RecordKind::User => &mut self.users,
            RecordKind::ApiKey => &mut self.api_keys,
            RecordKind::Ticket => &mut self.tickets,
            RecordKind::Message => &mut self.messages,
            RecordKind::ReadMarker => &mut self.read_markers,
            RecordKind::Upload => &mut self.uploads,
        };
        *count += 1;
    }

    /// All records together.
    pub fn total(&self) -> u64 {
        self.workspaces
            + self.users
            + self.api_keys
            + self.tickets
            + self.messages
            + self.read_markers
            + self.uploads
    }
}

impl fmt::Display for RecordCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} workspaces, {} users, {} api keys, {} tickets, {} messages, {} read markers, \
             {} uploads",
            self.workspaces,
            self.users,
            self.api_keys,
            self.tickets,
            self.messages,
            self.read_markers,
            self.uploads
        )
    }
}

/// What is wrong with a dump (or with a record that cannot be written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// There is not even a header.
    #[error("the dump is empty")]
    Empty,
    /// The first line is not a ticketd dump header.
    #[error(
        "not a ticketd dump: the first line must be {}",
        header_line(EncryptedBodies::Sealed)
    )]
    NotADump,
    /// A header of another version.
    #[error(
        "unsupported dump version {0}: this ticketd reads versions {OLDEST_VERSION} to {VERSION}"
    )]
    UnsupportedVersion(String),
    /// A line that is not a valid header, record or trailer.
    #[error("{0}")]
    Malformed(String),
    /// A line longer than any record can be.
    #[error("the line is longer than {0} bytes")]
    LineTooLong(usize),
    /// A record out of dump order (or a repeated key).
    #[error("{}", out_of_order(*record, *previous))]
    OutOfOrder {
        /// The record's key.
        record: ExportCursor,
        /// The key of the record before it.
        previous: ExportCursor,
    },
    /// The input ended before the trailer.
    #[error("the dump ends without its trailer line: it is truncated")]
    MissingTrailer,
    /// Something follows the trailer.
    #[error("nothing may follow the trailer line")]
    AfterTrailer,
    /// The trailer's counts are not what the dump holds.
    #[error("the trailer counts {trailer} but the dump holds {found}: it is incomplete or edited")]
    CountsDiffer {
        /// What the trailer says.
        trailer: Box<RecordCounts>,
        /// What was read.
        found: Box<RecordCounts>,
    },
    /// A record has no form in the dump (a time outside years 0-9999).
    #[error("{0}")]
    Unwritable(String),
    /// A well-formed record that may not be imported: a reference to a
    /// record the dump lacks or that belongs to another workspace, text the
    /// API would refuse, or numbers that do not add up ([`check`]).
    #[error("{record}: {reason}")]
    Invalid {
        /// The record, by kind and id.
        record: String,
        /// The member at fault, and what is wrong with it.
        reason: String,
    },
}

fn out_of_order(record: ExportCursor, previous: ExportCursor) -> String {
    if record.kind() < previous.kind() {
        format!(
            "a {} record after {} records: a dump lists workspaces, users, api keys, tickets, messages, then uploads",
            record.kind().as_str(),
            previous.kind().as_str()
        )
    } else {
        format!(
            "{record} does not come after {previous}: each kind is listed in key order, each key once"
        )
    }
}

/// How a dump holds the bodies of messages marked `encrypted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptedBodies {
    /// Sealed, as stored (`export`): each must open with the keys of the
    /// database it goes into.
    Sealed,
    /// As plaintext (`export --decrypt`): import seals them anew, whatever
    /// they begin with.
    Decrypted,
    /// Not said (versions 1 to 3): a body beginning with `tkdenc:v1:` is
    /// taken as sealed.
    Unmarked,
}

impl EncryptedBodies {
    /// Whether `record`'s body is a sealed envelope (never for a message
    /// that is not marked `encrypted`).
    pub fn is_sealed(self, record: &MessageRecord) -> bool {
        record.encrypted
            && match self {
                Self::Sealed => true,
                Self::Decrypted => false,
                Self::Unmarked => crate::core::crypto::is_sealed(&record.body),
            }
    }
}

/// The header line (without its line end) of a dump whose encrypted bodies
/// follow as `bodies` says ([`EncryptedBodies::Sealed`] or
/// [`EncryptedBodies::Decrypted`]).
pub fn header_line(bodies: EncryptedBodies) -> String {
    let decrypted = bodies == EncryptedBodies::Decrypted;
    format!(r#"{{"format":"{FORMAT}","version":{VERSION},"decrypted":{decrypted}}}"#)
}

/// The strict form of a header.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "format and version are read only to refuse unknown members"
)]
struct Header {
    format: String,
    version: u64,
    #[serde(default)]
    decrypted: Option<bool>,
}

/// What a dump's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpHeader {
    /// The format version.
    pub version: u64,
    /// How the bodies of encrypted messages follow.
    pub bodies: EncryptedBodies,
}

/// Checks a dump's first line; returns what it says.
///
/// # Errors
/// `NotADump` unless it is a ticketd dump header; `UnsupportedVersion` for
/// a version this build does not read; `Malformed` for a header with other
/// members, or without `decrypted` (version 4) or with it (earlier).
pub fn check_header(line: &str) -> Result<DumpHeader, DumpError> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|_| DumpError::NotADump)?;
    if value.get("format").and_then(serde_json::Value::as_str) != Some(FORMAT) {
        return Err(DumpError::NotADump);
    }
    let version = match value.get("version") {
        Some(version) => match version.as_u64() {
            Some(known @ OLDEST_VERSION..=VERSION) => known,
            _ => return Err(DumpError::UnsupportedVersion(version.to_string())),
        },
        None => return Err(DumpError::NotADump),
    };
    let header = serde_json::from_value::<Header>(value)
        .map_err(|error| DumpError::Malformed(format!("header: {error}")))?;
    let bodies = match (version >= FIRST_VERSION_WITH_DECRYPTED, header.decrypted) {
        (true, Some(false)) => EncryptedBodies::Sealed,
        (true, Some(true)) => EncryptedBodies::Decrypted,
        (true, None) => {
            return Err(DumpError::Malformed(format!(
                "header: missing field `decrypted` (a version {version} header says whether \
                 encrypted bodies are sealed)"
            )));
        }
        (false, None) => EncryptedBodies::Unmarked,
        (false, Some(_)) => {
            return Err(DumpError::Malformed(format!(
                "header: a version {version} header has no `decrypted`"
            )));
        }
    };
    Ok(DumpHeader { version, bodies })
}

/// A line after the header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A record.
    Record(Record),
    /// Bytes of the upload record before it.
    Data(Vec<u8>),
    /// The trailer, with its counts.
    End(RecordCounts),
}

/// An `upload_data` line's members.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataLine {
    /// The bytes, base64 with padding.
    data: String,
}

/// Parses a line after the header.
///
/// # Errors
/// `Malformed`, naming the member at fault where there is one.
pub fn parse_line(line: &str) -> Result<Entry, DumpError> {
    // The `type` member picks the record's struct; deserializing that struct
    // on its own (rather than through a tagged enum) lets errors name the
    // member they are about.
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|error| syntax(&error))?;
    let kind = match object.remove("type") {
        Some(serde_json::Value::String(kind)) => kind,
        Some(other) => {
            return Err(DumpError::Malformed(format!(
                "type: expected a string, found {other}"
            )));
        }
        None => return Err(DumpError::Malformed("missing field `type`".into())),
    };
    let members = serde_json::Value::Object(object);
    Ok(match kind.as_str() {
        "workspace" => Entry::Record(Record::Workspace(members_of(members)?)),
        "user" => Entry::Record(Record::User(members_of(members)?)),
        "api_key" => Entry::Record(Record::ApiKey(members_of(members)?)),
        "ticket" => Entry::Record(Record::Ticket(members_of(members)?)),
        "message" => Entry::Record(Record::Message(members_of(members)?)),
        "read_marker" => Entry::Record(Record::ReadMarker(members_of(members)?)),
        "upload" => Entry::Record(Record::Upload(members_of(members)?)),
        "upload_data" => Entry::Data(data_of(members_of(members)?)?),
        "end" => Entry::End(members_of(members)?),
        other => {
            return Err(DumpError::Malformed(format!(
                "unknown type {other:?}: expected workspace, user, api_key, ticket, message, \
                 read_marker, upload, upload_data or end"
            )));
        }
    })
}

fn data_of(line: DataLine) -> Result<Vec<u8>, DumpError> {
    let data = BASE64
        .decode(line.data.as_bytes())
        .map_err(|error| DumpError::Malformed(format!("data: not base64: {error}")))?;
    if data.len() > DATA_CHUNK_BYTES {
        return Err(DumpError::Malformed(format!(
            "data: more than {DATA_CHUNK_BYTES} bytes in one line"
        )));
    }
    Ok(data)
}

fn members_of<T: serde::de::DeserializeOwned>(members: serde_json::Value) -> Result<T, DumpError> {
    serde_path_to_error::deserialize(members).map_err(|error| {
        let path = error.path().to_string();
        let reason = error.into_inner();
        // An unknown member's path is the member itself, which the message
        // names already.
        if path == "." || reason.to_string().starts_with("unknown field") {
            DumpError::Malformed(reason.to_string())
        } else {
            DumpError::Malformed(format!("{path}: {reason}"))
        }
    })
}

/// A line that is not JSON. serde_json's message names a position within
/// the one line it parsed; keep only the column, as the caller names the
/// line.
fn syntax(error: &serde_json::Error) -> DumpError {
    if error.is_data() {
        return DumpError::Malformed("expected a JSON object".into());
    }
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let reason = message.strip_suffix(&position).unwrap_or(&message);
    DumpError::Malformed(format!("column {}: {reason}", error.column()))
}

/// A record's line (without its line end).
///
/// # Errors
/// `Unwritable` if a value has no form in the dump.
pub fn record_line(record: &Record) -> Result<String, DumpError> {
    serde_json::to_string(record)
        .map_err(|error| DumpError::Unwritable(format!("{}: {error}", record.cursor())))
}

/// An `upload_data` line (without its line end) holding `data`, at most
/// [`DATA_CHUNK_BYTES`] of a file.
pub fn data_line(data: &[u8]) -> String {
    format!(
        r#"{{"type":"upload_data","data":"{}"}}"#,
        BASE64.encode(data)
    )
}

/// The trailer line (without its line end).
pub fn trailer_line(counts: RecordCounts) -> String {
    format!(
        r#"{{"type":"end","workspaces":{},"users":{},"api_keys":{},"tickets":{},"messages":{},"read_markers":{},"uploads":{}}}"#,
        counts.workspaces,
        counts.users,
        counts.api_keys,
        counts.tickets,
        counts.messages,
        counts.read_markers,
        counts.uploads
    )
}

/// Checks that records arrive in dump order and counts them; holds one key,
/// whatever the size of the dump.
#[derive(Debug, Default)]
pub struct DumpOrder {
    previous: Option<ExportCursor>,
    counts: RecordCounts,
}

impl DumpOrder {
    /// Accepts the next record.
    ///
    /// # Errors
    /// `OutOfOrder` unless it comes strictly after the previous one.
    pub fn accept(&mut self, record: &Record) -> Result<(), DumpError> {
        let cursor = record.cursor();
        if let Some(previous) = self.previous
            && cursor <= previous
        {
            return Err(DumpError::OutOfOrder {
                record: cursor,
                previous,
            });
        }
        self.previous = Some(cursor);
        self.counts.add(record.kind());
        Ok(())
    }

    /// The records accepted so far.
    pub fn counts(&self) -> RecordCounts {
        self.counts
    }

    /// Checks the trailer against the records accepted.
    ///
    /// # Errors
    /// `CountsDiffer` if they differ.
    pub fn check_trailer(&self, trailer: RecordCounts) -> Result<(), DumpError> {
        if trailer == self.counts {
            Ok(())
        } else {
            Err(DumpError::CountsDiffer {
                trailer: Box::new(trailer),
                found: Box::new(self.counts),
            })
        }
    }
}

#[cfg(test)]
mod tests;
