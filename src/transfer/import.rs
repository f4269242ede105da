//! Reading a dump line by line: checking it, and loading it in batches.

use std::io::{BufRead, ErrorKind, Read};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::blob::{BlobError, ByteStream};
use crate::core::crypto::{self, Keyring, stream};
use crate::core::dump::{
    self, DumpCheck, DumpError, DumpHeader, DumpOrder, EncryptedBodies, Entry, MessageRecord,
    ReadMarkerRecord, Record, RecordCounts, UploadRecord,
};
use crate::store::{Store, StoreError};
use crate::transfer::{DumpFiles, MAX_LINE_BYTES, TransferError};

/// How an import groups records into transactions: a batch is written when
/// it holds `records` records or `bytes` bytes of dump lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Records per batch at most.
    pub records: usize,
    /// Dump text per batch at most (the batch's memory is about this size).
    pub bytes: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            records: 1000,
            bytes: 4 << 20,
        }
    }
}

/// The first dump version that holds read markers; an older dump's are
/// derived from its messages as it is imported.
const FIRST_VERSION_WITH_READ_MARKERS: u64 = 3;

/// A dump being read: one line in memory at a time, checked as it comes
/// (its form, its order, and what its records must hold: [`DumpCheck`]).
struct DumpReader<'k, R> {
    input: R,
    /// The number of the line in `text`.
    line: u64,
    text: String,
    order: DumpOrder,
    check: DumpCheck<'k>,
    ended: bool,
    /// What its header says.
    header: DumpHeader,
}

impl<'k, R: BufRead> DumpReader<'k, R> {
    /// Starts reading a dump whose sealed bodies `keyring` opens; checks
    /// its header.
    fn open(input: R, keyring: &'k Keyring) -> Result<Self, TransferError> {
        let mut reader = Self {
            input,
            line: 0,
            text: String::new(),
            order: DumpOrder::default(),
            check: DumpCheck::new(keyring, EncryptedBodies::Unmarked),
            ended: false,
            header: DumpHeader {
                version: 0,
                bodies: EncryptedBodies::Unmarked,
            },
        };
        if !reader.read_line()? {
            return Err(reader.error_at(1, DumpError::Empty));
        }
        reader.header = dump::check_header(&reader.text).map_err(|error| reader.error(error))?;
        reader.check = DumpCheck::new(keyring, reader.header.bodies);
        Ok(reader)
    }

    fn error_at(&self, line: u64, error: DumpError) -> TransferError {
        TransferError::Dump { line, error }
    }

    fn error(&self, error: DumpError) -> TransferError {
        self.error_at(self.line, error)
    }

    /// Reads the next line into `text`; `false` at the end of the input.
    fn read_line(&mut self) -> Result<bool, TransferError> {
        self.text.clear();
        let limit = u64::try_from(MAX_LINE_BYTES + 1).unwrap_or(u64::MAX);
        let read = (&mut self.input).take(limit).read_line(&mut self.text);
        match read {
            Ok(0) => return Ok(false),
            Ok(_) => self.line += 1,
            Err(error) if error.kind() == ErrorKind::InvalidData => {
                let reason = DumpError::Malformed("not valid UTF-8".into());
                return Err(self.error_at(self.line + 1, reason));
            }
            Err(error) => return Err(TransferError::Read(error)),
        }
        if self.text.ends_with('\n') {
            self.text.pop();
        } else if self.text.len() > MAX_LINE_BYTES {
            return Err(self.error(DumpError::LineTooLong(MAX_LINE_BYTES)));
        }
        Ok(true)
    }

    /// The next record or upload data; `None` once the trailer has
    /// matched the records and the input ended right after it.
    fn next_item(&mut self) -> Result<Option<Item>, TransferError> {
        if self.ended {
            return Ok(None);
        }
        if !self.read_line()? {
            return Err(self.error_at(self.line + 1, DumpError::MissingTrailer));
        }
        match dump::parse_line(&self.text).map_err(|error| self.error(error))? {
            Entry::Record(record) => {
                self.order
                    .accept(&record)
                    .map_err(|error| self.error(error))?;
                self.check
                    .accept(&record, self.line)
                    .map_err(|refusal| self.error_at(refusal.line, refusal.error))?;
                Ok(Some(Item::Record(record)))
            }
            Entry::Data(data) => {
                self.check
                    .data(&data, self.line)
                    .map_err(|refusal| self.error_at(refusal.line, refusal.error))?;
                Ok(Some(Item::Data(data)))
            }
            Entry::End(counts) => {
                self.order
                    .check_trailer(counts)
                    .map_err(|error| self.error(error))?;
                self.check
                    .finish()
                    .map_err(|refusal| self.error_at(refusal.line, refusal.error))?;
                if self.read_line()? {
                    return Err(self.error(DumpError::AfterTrailer));
                }
                self.ended = true;
                Ok(None)
            }
        }
    }
}

/// A line of a dump after its header, checked.
#[allow(
    clippy::large_enum_variant,
    reason = "one item at a time, moved straight into its batch or the blob store"
)]
enum Item {
    /// A record.
    Record(Record),
    /// Bytes of the upload record before it.
    Data(Vec<u8>),
}

/// Reads a whole dump without writing anything: header, every record, the
/// order, what the records must hold ([`DumpCheck`], opening sealed bodies
/// with `keyring`: the keys of the database to import into) and the
/// trailer; returns what it holds.
///
/// # Errors
/// `Dump`, naming the line, if the dump is not one this build can import;
/// `Read` if reading fails.
pub fn check(input: impl BufRead, keyring: &Keyring) -> Result<RecordCounts, TransferError> {
    let mut reader = DumpReader::open(input, keyring)?;
    while reader.next_item()?.is_some() {}
    Ok(reader.order.counts())
}

/// Records read but not yet written, with the lines they came from.
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    bytes: usize,
    first_line: u64,
    last_line: u64,
}

impl Batch {
    fn push(&mut self, record: Record, line: u64, bytes: usize) {
        if self.records.is_empty() {
            self.first_line = line;
            self.bytes = 0;
        }
        self.records.push(record);
        self.bytes += bytes;
        self.last_line = line;
    }

    fn is_full(&self, batching: Batching) -> bool {
        self.records.len() >= batching.records || self.bytes >= batching.bytes
    }

    /// Writes the batch in one transaction; returns how many records.
    async fn write(&mut self, store: &dyn Store) -> Result<u64, TransferError> {
        let records = std::mem::take(&mut self.records);
        let count = records.len() as u64;
        if count > 0 {
            store
                .import_records(records)
                .await
                .map_err(|error| TransferError::Batch {
                    first: self.first_line,
                    last: self.last_line,
                    error,
                })?;
        }
        Ok(count)
    }
}

/// The bytes of one upload on their way into the blob store, while its
/// `upload_data` lines are read.
struct ArrivingFile {
    record: UploadRecord,
    line: u64,
    chunks: mpsc::Sender<std::io::Result<Bytes>>,
    put: tokio::task::JoinHandle<Result<u64, BlobError>>,
}

impl ArrivingFile {
    /// Starts storing the bytes of `record`, read from `line`; a sealed
    /// upload whose bytes come as plaintext is sealed under a new content
    /// key on the way in.
    fn start(
        mut record: UploadRecord,
        line: u64,
        files: &DumpFiles,
    ) -> Result<Self, TransferError> {
        let (chunks, arriving) = mpsc::channel(4);
        let arriving: ByteStream = Box::pin(futures_util::stream::unfold(
            arriving,
            |mut arriving| async move { arriving.recv().await.map(|chunk| (chunk, arriving)) },
        ));
        let bytes = if record.encrypted && record.content_key.is_none() {
            let keys = files.keys.as_ref().ok_or_else(|| {
                TransferError::Files(format!(
                    "line {line}: upload {} is to be sealed, and no key file is at hand",
                    record.id
                ))
            })?;
            let (key, sealed) = keys
                .generate(record.id)
                .map_err(|error| TransferError::Files(error.to_string()))?;
            record.content_key = Some(sealed);
            Box::pin(stream::seal(&key, record.id, arriving))
        } else {
            arriving
        };
        let (blobs, id) = (Arc::clone(&files.blobs), record.id);
        let put = tokio::spawn(async move { blobs.put(id, bytes).await });
        Ok(Self {
            record,
            line,
            chunks,
            put,
        })
    }

    /// Passes on the bytes of one `upload_data` line.
    async fn send(&self, data: Vec<u8>) {
        // A put that failed stops listening; `finish` says why.
        let _ = self.chunks.send(Ok(Bytes::from(data))).await;
    }

    /// Waits until the bytes are durable; the record, to be written.
    async fn finish(self) -> Result<(u64, Record), TransferError> {
        drop(self.chunks);
        let failed = |reason: String| {
            TransferError::Files(format!(
                "line {}: the bytes of upload {} cannot be stored: {reason}",
                self.line, self.record.id
            ))
        };
        let written = self
            .put
            .await
            .map_err(|error| failed(error.to_string()))?
            .map_err(|error| failed(error.to_string()))?;
        let expected = self.record.data_len();
        if written != expected {
            return Err(failed(format!(
                "{written} bytes were stored, not {expected}"
            )));
        }
        Ok((self.line, Record::Upload(self.record)))
    }
}

/// Loads a dump into `store`, which must be empty, in batches; returns what
/// it imported. Each record is checked as [`check`] does before the batch
/// holding it is written, and the last batch only after the trailer
/// matched, so a dump that fits one batch is imported whole or not at all;
/// a larger one that fails part-way leaves the batches before the failure
/// behind (the error says so), and that database should be discarded. Run
/// [`check`] over the whole dump first to write nothing from a bad one.
///
/// The bytes of each upload go into `files.blobs` as they are read, and
/// its record joins a batch only once they are durable.
///
/// # Errors
/// `NotEmpty` if the store holds data; `Dump` naming the line for a bad
/// dump; `Batch` if the database refuses records; `Files` if the blob
/// store fails; `Partial` wrapping any of these once batches were
/// committed.
pub async fn import(
    store: &dyn Store,
    files: &DumpFiles,
    input: impl BufRead,
    batching: Batching,
    keyring: &Keyring,
) -> Result<RecordCounts, TransferError> {
    if !store.is_empty().await.map_err(TransferError::Store)? {
        return Err(TransferError::NotEmpty);
    }
    let mut reader = DumpReader::open(input, keyring)?;
    let mut batch = Batch::default();
    let mut written = 0;
    let mut file: Option<ArrivingFile> = None;
    let partial = |written: u64, error: TransferError| {
        if written == 0 {
            error
        } else {
            TransferError::Partial {
                written,
                error: Box::new(error),
            }
        }
    };
    loop {
        let record = match reader
            .next_item()
            .map_err(|error| partial(written, error))?
        {
            Some(Item::Data(data)) => {
                // The check refuses data that no upload record precedes.
                if let Some(file) = &file {
                    file.send(data).await;
                }
                continue;
            }
            Some(Item::Record(record)) => Some(record),
            None => None,
        };
        if let Some(done) = file.take() {
            let (line, record) = done
                .finish()
                .await
                .map_err(|error| partial(written, error))?;
            batch.push(record, line, 0);
        }
        match record {
            Some(Record::Upload(upload)) => {
                file = Some(
                    ArrivingFile::start(upload, reader.line, files)
                        .map_err(|error| partial(written, error))?,
                );
            }
            Some(Record::Message(message)) => {
                let line_bytes = reader.text.len();
                let message = sealed_as_stored(message, reader.header.bodies, keyring)
                    .map_err(|error| partial(written, error))?;
                // A dump from before read markers: its sender has read the
                // thread this far, as the database upgrade to read markers
                // took it (later messages of theirs move it on).
                let marker = (reader.header.version < FIRST_VERSION_WITH_READ_MARKERS).then_some(
                    Record::ReadMarker(ReadMarkerRecord {
                        ticket_id: message.ticket_id,
                        user_id: message.sender_id,
                        last_read_seq: message.seq,
                    }),
                );
                batch.push(Record::Message(message), reader.line, line_bytes);
                if let Some(marker) = marker {
                    batch.push(marker, reader.line, 0);
                }
            }
            Some(record) => batch.push(record, reader.line, reader.text.len()),
            None => break,
        }
        if batch.is_full(batching) {
            written += batch
                .write(store)
                .await
                .map_err(|error| partial(written, error))?;
        }
    }
    batch
        .write(store)
        .await
        .map_err(|error| partial(written, error))?;
    Ok(reader.order.counts())
}

/// `message` as the database stores it: the plaintext of an encrypted
/// message (in a decrypted dump, or an unmarked one's body that is no
/// envelope) sealed with the `keyring`'s current key.
fn sealed_as_stored(
    mut message: MessageRecord,
    bodies: EncryptedBodies,
    keyring: &Keyring,
) -> Result<MessageRecord, TransferError> {
    if message.encrypted && !bodies.is_sealed(&message) {
        let sealed = crypto::seal(
            keyring.current(),
            message.ticket_id,
            message.id,
            &message.body,
        )
        .map_err(|error| {
            TransferError::Store(StoreError::other(format!(
                "cannot seal message {}: {error}",
                message.id
            )))
        })?;
        message.body = sealed.into_string();
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "{\"format\":\"ticketd-dump\",\"version\":1}";
    const EMPTY_TRAILER: &str = "{\"type\":\"end\",\"workspaces\":0,\"users\":0,\"api_keys\":0,\"tickets\":0,\"messages\":0}";

    fn keys() -> Keyring {
        let key = crate::core::crypto::DataKey::generate().expect("a key");
        Keyring::new(vec![key]).expect("a keyring")
    }

    fn check(input: &[u8]) -> Result<RecordCounts, TransferError> {
        super::check(input, &keys())
    }

    fn refusal(input: &[u8]) -> (u64, DumpError) {
        match check(input) {
            Err(TransferError::Dump { line, error }) => (line, error),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_database_dump_is_two_lines() {
        let dump = format!("{HEADER}\n{EMPTY_TRAILER}\n");
        assert_eq!(check(dump.as_bytes()).ok(), Some(RecordCounts::default()));
        // Line ends written as CRLF, or no line end after the trailer, lose nothing.
        let crlf = format!("{HEADER}\r\n{EMPTY_TRAILER}\r\n");
        assert!(check(crlf.as_bytes()).is_ok());
        assert!(check(format!("{HEADER}\n{EMPTY_TRAILER}").as_bytes()).is_ok());
    }

    #[test]
    fn framing_errors_name_their_line() {
        assert_eq!(refusal(b""), (1, DumpError::Empty));
        let header_only = format!("{HEADER}\n");
        assert_eq!(
            refusal(header_only.as_bytes()),
            (2, DumpError::MissingTrailer)
        );
        let blank = format!("{HEADER}\n\n{EMPTY_TRAILER}\n");
        assert!(matches!(
            refusal(blank.as_bytes()),
            (2, DumpError::Malformed(_))
        ));
        let after = format!("{HEADER}\n{EMPTY_TRAILER}\n{EMPTY_TRAILER}\n");
        assert_eq!(refusal(after.as_bytes()), (3, DumpError::AfterTrailer));

        let mut not_utf8 = format!("{HEADER}\n").into_bytes();
        not_utf8.extend_from_slice(b"{\"type\":\"\xff\"}\n");
        assert_eq!(
            refusal(&not_utf8),
            (2, DumpError::Malformed("not valid UTF-8".into()))
        );
    }

    #[test]
    fn an_overlong_line_is_refused_without_reading_it_whole() {
        let long = format!(
            "{HEADER}\n{{\"type\":\"{}\"}}\n",
            "x".repeat(MAX_LINE_BYTES)
        );
        assert_eq!(
            refusal(long.as_bytes()),
            (2, DumpError::LineTooLong(MAX_LINE_BYTES))
        );
    }
}
