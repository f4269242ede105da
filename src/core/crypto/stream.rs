//! The bytes of an upload marked `encrypted`, as stored: the plaintext cut
//! into records of [`RECORD_BYTES`] (the last may be shorter, and an empty
//! file is one empty record), each sealed with ChaCha20-Poly1305 under the
//! upload's own [`ContentKey`] and followed by its 16-byte tag.
//!
//! A record's nonce is its index with a flag set on the last record, and
//! the upload's id is its associated data. Each content key seals one file
//! only, so a nonce is never used twice with a key; and a record moved to
//! another place (reordered, dropped), a file cut short at a record
//! boundary, or one carried on past its last record, fails to open like an
//! altered one. Errors end the stream; no byte of a record is yielded
//! before its tag is checked.
//!
//! Both directions hold at most one record (and the chunk being cut up)
//! in memory. A range of the plaintext maps to the records that hold it
//! ([`plan`]), so a ranged read opens only those.
//!
//! No I/O here: the streams come in and go out as values.

use std::io;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use futures_util::stream::{Fuse, Stream, StreamExt};

use crate::core::crypto::ContentKey;
use crate::core::id::UploadId;

/// Plaintext bytes per record (the last record may hold fewer).
pub const RECORD_BYTES: u64 = 64 * 1024;

/// Bytes of the tag that follows each record's ciphertext.
pub const TAG_BYTES: u64 = 16;

/// Stored bytes of a whole record.
pub const SEALED_RECORD_BYTES: u64 = RECORD_BYTES + TAG_BYTES;

/// The domain of the associated data of records (the content key's
/// envelope has another: [`crate::core::crypto::CONTENT_KEY_PREFIX`] and a
/// data key id).
const RECORD_DOMAIN: &str = "tkdupl:v1:data:";

/// Why sealed bytes did not open (or a plan could not be made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// A record failed authentication: altered, moved, reordered, from
    /// another upload, or under another key.
    #[error("a sealed record failed authentication (altered, moved or under another key)")]
    Forged,
    /// The stored bytes end before the last record does.
    #[error("the sealed bytes end before their last record")]
    Truncated,
    /// The stored bytes go on after the last record.
    #[error("the sealed bytes go on after their last record")]
    Trailing,
    /// The range asked for is not within the file.
    #[error("the range is not within the file")]
    OutOfRange,
    /// The file has more records than nonces can count.
    #[error("the file is too long to seal")]
    TooLong,
}

impl From<StreamError> for io::Error {
    fn from(error: StreamError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

/// The [`StreamError`] that ended a stream, if one did.
pub fn stream_error(error: &io::Error) -> Option<StreamError> {
    error.get_ref()?.downcast_ref::<StreamError>().copied()
}

/// How many records a plaintext of `size` bytes is sealed into (an empty
/// one is one empty record).
pub fn records(size: u64) -> u64 {
    size.div_ceil(RECORD_BYTES).max(1)
}

/// The stored size of a plaintext of `size` bytes.
pub fn sealed_len(size: u64) -> u64 {
    size.saturating_add(TAG_BYTES.saturating_mul(records(size)))
}

fn cipher(key: &ContentKey) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(key.0.as_ref()))
}

fn associated_data(upload: UploadId) -> Vec<u8> {
    format!("{RECORD_DOMAIN}{}", upload.key()).into_bytes()
}

/// The nonce of record `index`: its index (big-endian) and whether it is
/// the last.
fn nonce(index: u64, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    *Nonce::from_slice(&nonce)
}

/// Seals the plaintext `bytes` of `upload` under its content key `key`:
/// a stream of sealed records, [`sealed_len`] bytes in all. An error of
/// `bytes` is passed on and ends the stream.
pub fn seal<S>(key: &ContentKey, upload: UploadId, bytes: S) -> Sealer<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    Sealer {
        inner: bytes.fuse(),
        cipher: cipher(key),
        aad: associated_data(upload),
        record: BytesMut::new(),
        pending: Bytes::new(),
        index: 0,
        done: false,
    }
}

/// The stream [`seal`] returns.
pub struct Sealer<S> {
    inner: Fuse<S>,
    cipher: ChaCha20Poly1305,
    aad: Vec<u8>,
    /// The plaintext of the record being filled.
    record: BytesMut,
    /// What is left of the chunk being cut into records.
    pending: Bytes,
    index: u64,
    done: bool,
}

impl<S> Sealer<S> {
    fn seal_record(&mut self, last: bool) -> Result<Bytes, StreamError> {
        let capacity = usize::try_from(SEALED_RECORD_BYTES).unwrap_or(usize::MAX);
        let mut record = std::mem::replace(&mut self.record, BytesMut::with_capacity(capacity));
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(self.index, last), &self.aad, &mut record)
            .map_err(|_| StreamError::TooLong)?;
        record.extend_from_slice(&tag);
        if !last {
            self.index = self.index.checked_add(1).ok_or(StreamError::TooLong)?;
        }
        Ok(record.freeze())
    }
}

impl<S> Stream for Sealer<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if !this.pending.is_empty() {
                // A full record is sealed only once more bytes are known to
                // follow it: the last record carries the flag.
                if this.record.len() as u64 == RECORD_BYTES {
                    let sealed = this.seal_record(false);
                    this.done = sealed.is_err();
                    return Poll::Ready(Some(sealed.map_err(io::Error::from)));
                }
                let room = RECORD_BYTES as usize - this.record.len();
                let piece = this.pending.split_to(room.min(this.pending.len()));
                this.record.extend_from_slice(&piece);
                continue;
            }
            match ready!(this.inner.poll_next_unpin(cx)) {
                Some(Ok(chunk)) => this.pending = chunk,
                Some(Err(error)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(error)));
                }
                None => {
                    this.done = true;
                    return Poll::Ready(Some(this.seal_record(true).map_err(io::Error::from)));
                }
            }
        }
    }
}

/// What to read of a sealed file to get (a range of) its plaintext, and
/// how to trim what opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The stored bytes to read (first and last inclusive), or `None` for
    /// all of them (then bytes after the last record are detected too).
    pub stored: Option<RangeInclusive<u64>>,
    /// The plaintext's size.
    size: u64,
    /// The first record read.
    first_record: u64,
    /// The last record read.
    end_record: u64,
    /// Plaintext bytes dropped from the first record read.
    skip: u64,
    /// Plaintext bytes yielded in all.
    take: u64,
}

/// The plan for reading a sealed plaintext of `size` bytes, whole or only
/// the bytes of `range` (first and last inclusive).
///
/// # Errors
/// `OutOfRange` if `range` is empty or reaches past the file.
pub fn plan(size: u64, range: Option<RangeInclusive<u64>>) -> Result<Plan, StreamError> {
    let last_record = records(size) - 1;
    let Some(range) = range else {
        return Ok(Plan {
            stored: None,
            size,
            first_record: 0,
            end_record: last_record,
            skip: 0,
            take: size,
        });
    };
    let (first, last) = (*range.start(), *range.end());
    if first > last || last >= size {
        return Err(StreamError::OutOfRange);
    }
    let (first_record, end_record) = (first / RECORD_BYTES, last / RECORD_BYTES);
    let stored_end = ((end_record + 1) * SEALED_RECORD_BYTES).min(sealed_len(size)) - 1;
    Ok(Plan {
        stored: Some(first_record * SEALED_RECORD_BYTES..=stored_end),
        size,
        first_record,
        end_record,
        skip: first - first_record * RECORD_BYTES,
        take: last - first + 1,
    })
}

/// Opens the stored bytes `plan` says to read (`stored`, from the blob
/// store) of `upload`, sealed under `key`: a stream of exactly the
/// plaintext asked for, or an error.
pub fn open<S>(key: &ContentKey, upload: UploadId, plan: &Plan, stored: S) -> Opener<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    Opener {
        inner: stored.fuse(),
        cipher: cipher(key),
        aad: associated_data(upload),
        size: plan.size,
        last_record: records(plan.size) - 1,
        end_record: plan.end_record,
        index: plan.first_record,
        skip: plan.skip,
        remaining: plan.take,
        record: BytesMut::new(),
        pending: Bytes::new(),
        done: false,
    }
}

/// The stream [`open`] returns.
pub struct Opener<S> {
    inner: Fuse<S>,
    cipher: ChaCha20Poly1305,
    aad: Vec<u8>,
    size: u64,
    /// The file's last record.
    last_record: u64,
    /// The last record to read.
    end_record: u64,
    /// The record being read.
    index: u64,
    skip: u64,
    remaining: u64,
    /// The stored bytes of the record being read.
    record: BytesMut,
    /// What is left of the chunk being cut into records.
    pending: Bytes,
    done: bool,
}

impl<S> Opener<S> {
    /// Stored bytes of record `index`.
    fn record_len(&self) -> usize {
        let len = if self.index == self.last_record {
            sealed_len(self.size) - self.index * SEALED_RECORD_BYTES
        } else {
            SEALED_RECORD_BYTES
        };
        usize::try_from(len).unwrap_or(usize::MAX)
    }

    /// Opens the whole record held, and trims it to what was asked for.
    fn open_record(&mut self) -> Result<Bytes, StreamError> {
        let mut record = std::mem::take(&mut self.record);
        let body = record.len() - TAG_BYTES as usize;
        let tag = Tag::clone_from_slice(&record[body..]);
        record.truncate(body);
        self.cipher
            .decrypt_in_place_detached(
                &nonce(self.index, self.index == self.last_record),
                &self.aad,
                &mut record,
                &tag,
            )
            .map_err(|_| StreamError::Forged)?;
        let mut plaintext = record.freeze();
        let skip = usize::try_from(self.skip).unwrap_or(usize::MAX);
        plaintext.advance(skip.min(plaintext.len()));
        self.skip = 0;
        let take = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        plaintext.truncate(take);
        self.remaining -= plaintext.len() as u64;
        self.index += 1;
        Ok(plaintext)
    }

    fn fail(&mut self, error: io::Error) -> Poll<Option<io::Result<Bytes>>> {
        self.done = true;
        Poll::Ready(Some(Err(error)))
    }
}

impl<S> Stream for Opener<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done || this.index > this.end_record {
                this.done = true;
                return Poll::Ready(None);
            }
            let want = this.record_len();
            if this.record.len() < want {
                if !this.pending.is_empty() {
                    let room = want - this.record.len();
                    let piece = this.pending.split_to(room.min(this.pending.len()));
                    this.record.extend_from_slice(&piece);
                    continue;
                }
                match ready!(this.inner.poll_next_unpin(cx)) {
                    Some(Ok(chunk)) => this.pending = chunk,
                    Some(Err(error)) => return this.fail(error),
                    None => return this.fail(StreamError::Truncated.into()),
                }
                continue;
            }
            if this.index == this.end_record {
                // Nothing may follow the last record read: checked before
                // it is yielded, so what is yielded is all there is.
                if !this.pending.is_empty() {
                    return this.fail(StreamError::Trailing.into());
                }
                match ready!(this.inner.poll_next_unpin(cx)) {
                    Some(Ok(chunk)) if chunk.is_empty() => continue,
                    Some(Ok(_)) => return this.fail(StreamError::Trailing.into()),
                    Some(Err(error)) => return this.fail(error),
                    None => {}
                }
            }
            match this.open_record() {
                Ok(plaintext) if plaintext.is_empty() => {}
                Ok(plaintext) => return Poll::Ready(Some(Ok(plaintext))),
                Err(error) => return this.fail(error.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    const R: u64 = RECORD_BYTES;
    const S: u64 = SEALED_RECORD_BYTES;

    fn sample(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// `data` as a stream of chunks of `size` bytes (and an empty one first).
    fn chunks(data: &[u8], size: usize) -> stream::Iter<std::vec::IntoIter<io::Result<Bytes>>> {
        let mut pieces = vec![Ok(Bytes::new())];
        pieces.extend(
            data.chunks(size.max(1))
                .map(|piece| Ok(Bytes::copy_from_slice(piece))),
        );
        stream::iter(pieces)
    }

    async fn collect(
        mut stream: impl Stream<Item = io::Result<Bytes>> + Unpin,
    ) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    struct Fixture {
        key: ContentKey,
        upload: UploadId,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                key: ContentKey::new([3; 32]),
                upload: UploadId::generate(),
            }
        }

        async fn seal(&self, data: &[u8], chunk: usize) -> Vec<u8> {
            collect(seal(&self.key, self.upload, chunks(data, chunk)))
                .await
                .unwrap()
        }

        /// Opens `sealed` (the whole stored file) for `range` of a `size`
        /// byte plaintext, reading only what the plan says.
        async fn open(
            &self,
            sealed: &[u8],
            size: u64,
            range: Option<RangeInclusive<u64>>,
        ) -> Result<Vec<u8>, StreamError> {
            let plan = plan(size, range)?;
            let stored = match &plan.stored {
                Some(range) => &sealed[*range.start() as usize..=*range.end() as usize],
                None => sealed,
            };
            collect(open(&self.key, self.upload, &plan, chunks(stored, 10_007)))
                .await
                .map_err(|error| stream_error(&error).unwrap())
        }
    }

    #[tokio::test]
    async fn files_round_trip_at_every_size_that_matters() {
        let fixture = Fixture::new();
        for size in [0, 1, R - 1, R, R + 1, 2 * R, 3 * 1024 * 1024 + 5] {
            let data = sample(size);
            for chunk in [1000, 100_000] {
                let sealed = fixture.seal(&data, chunk).await;
                assert_eq!(sealed.len() as u64, sealed_len(size), "size {size}");
                assert_eq!(
                    fixture.open(&sealed, size, None).await.unwrap(),
                    data,
                    "size {size}"
                );
            }
        }
        assert_eq!(sealed_len(0), 16);
        assert_eq!(sealed_len(R), R + 16);
        assert_eq!(sealed_len(R + 1), R + 1 + 32);
    }

    #[tokio::test]
    async fn sealed_bytes_hide_the_plaintext_and_differ_per_upload() {
        let fixture = Fixture::new();
        let data = b"the secret plan, in plain words".repeat(100);
        let sealed = fixture.seal(&data, 64).await;
        assert!(!sealed.windows(16).any(|window| window == &data[..16]));
        let other = Fixture {
            key: ContentKey::new([3; 32]),
            upload: UploadId::generate(),
        };
        assert_ne!(other.seal(&data, 64).await, sealed);
        // Another upload's id, or another key, does not open it.
        let size = data.len() as u64;
        assert_eq!(
            other.open(&sealed, size, None).await,
            Err(StreamError::Forged)
        );
        let wrong_key = Fixture {
            key: ContentKey::new([4; 32]),
            upload: fixture.upload,
        };
        assert_eq!(
            wrong_key.open(&sealed, size, None).await,
            Err(StreamError::Forged)
        );
    }

    #[tokio::test]
    async fn every_range_shape_reads_only_its_records_and_its_bytes() {
        let fixture = Fixture::new();
        let size = 3 * R + 100;
        let data = sample(size);
        let sealed = fixture.seal(&data, 50_000).await;
        let points = [
            0,
            1,
            R - 1,
            R,
            R + 1,
            2 * R - 1,
            2 * R,
            3 * R,
            size - 2,
            size - 1,
        ];
        for first in points {
            for last in points.into_iter().filter(|last| *last >= first) {
                let opened = fixture.open(&sealed, size, Some(first..=last)).await;
                assert_eq!(
                    opened.as_deref(),
                    Ok(&data[first as usize..=last as usize]),
                    "{first}..={last}"
                );
            }
        }
        // Only the records holding the range are read.
        assert_eq!(plan(size, Some(R..=R)).unwrap().stored, Some(S..=2 * S - 1));
        assert_eq!(plan(size, Some(10..=20)).unwrap().stored, Some(0..=S - 1));
        assert_eq!(
            plan(size, Some(3 * R + 5..=size - 1)).unwrap().stored,
            Some(3 * S..=sealed_len(size) - 1)
        );
        assert_eq!(
            plan(size, Some(R - 1..=2 * R)).unwrap().stored,
            Some(0..=3 * S - 1)
        );
        assert_eq!(plan(size, Some(5..=size)), Err(StreamError::OutOfRange));
        let (first, last) = (6, 5);
        assert_eq!(plan(size, Some(first..=last)), Err(StreamError::OutOfRange));
        assert_eq!(plan(0, Some(0..=0)), Err(StreamError::OutOfRange));
    }

    #[tokio::test]
    async fn tampering_of_any_kind_is_an_error_never_other_bytes() {
        let fixture = Fixture::new();
        let size = 3 * R + 100;
        let data = sample(size);
        let sealed = fixture.seal(&data, 64 * 1024).await;
        let record = |index: u64| {
            let start = (index * S) as usize;
            let end = ((index + 1) * S).min(sealed.len() as u64) as usize;
            sealed[start..end].to_vec()
        };

        // A byte flipped: in a ciphertext, in a tag, in the last record.
        for at in [0, R as usize + 5, S as usize - 1, sealed.len() - 1] {
            let mut flipped = sealed.clone();
            flipped[at] ^= 0x01;
            assert_eq!(
                fixture.open(&flipped, size, None).await,
                Err(StreamError::Forged),
                "flipped at {at}"
            );
        }
        // A flipped byte fails a range read of its record too, but not one
        // of another record.
        let mut flipped = sealed.clone();
        flipped[(S + 7) as usize] ^= 0x80;
        assert_eq!(
            fixture.open(&flipped, size, Some(R + 3..=R + 9)).await,
            Err(StreamError::Forged)
        );
        assert!(fixture.open(&flipped, size, Some(0..=9)).await.is_ok());

        // A record dropped from the middle.
        let dropped = [record(0), record(2), record(3)].concat();
        assert!(matches!(
            fixture.open(&dropped, size, None).await,
            Err(StreamError::Forged | StreamError::Truncated)
        ));
        // ... and the file's recorded size changed to match.
        assert_eq!(
            fixture.open(&dropped, size - R, None).await,
            Err(StreamError::Forged)
        );
        // The last record dropped, with the size to match: the record now
        // last is not flagged last.
        let cut = [record(0), record(1), record(2)].concat();
        assert_eq!(
            fixture.open(&cut, 3 * R, None).await,
            Err(StreamError::Forged)
        );
        // The final record truncated, or missing.
        assert_eq!(
            fixture.open(&sealed[..sealed.len() - 1], size, None).await,
            Err(StreamError::Truncated)
        );
        assert_eq!(
            fixture.open(&cut, size, None).await,
            Err(StreamError::Truncated)
        );
        // A pair swapped.
        let swapped = [record(1), record(0), record(2), record(3)].concat();
        assert_eq!(
            fixture.open(&swapped, size, None).await,
            Err(StreamError::Forged)
        );
        // Bytes appended after the last record, or a record repeated.
        let appended = [sealed.clone(), vec![0]].concat();
        assert_eq!(
            fixture.open(&appended, size, None).await,
            Err(StreamError::Trailing)
        );
        let repeated = [sealed.clone(), record(3)].concat();
        assert_eq!(
            fixture.open(&repeated, size, None).await,
            Err(StreamError::Trailing)
        );
        // An empty file's one record, flagged last, and nothing else.
        let empty = fixture.seal(&[], 1).await;
        assert_eq!(fixture.open(&empty, 0, None).await, Ok(Vec::new()));
        assert_eq!(
            fixture.open(&[], 0, None).await,
            Err(StreamError::Truncated)
        );
        assert_eq!(
            fixture.open(&record(0), R, None).await,
            Err(StreamError::Forged),
            "a first record that is not last"
        );
    }

    #[tokio::test]
    async fn an_error_of_the_plaintext_ends_the_sealed_stream() {
        let fixture = Fixture::new();
        let bytes = stream::iter(vec![
            Ok(Bytes::from(sample(R + 10))),
            Err(io::Error::other("the client went away")),
        ]);
        let mut sealer = seal(&fixture.key, fixture.upload, bytes);
        let first = sealer.next().await.unwrap().unwrap();
        assert_eq!(first.len() as u64, S);
        let error = sealer.next().await.unwrap().unwrap_err();
        assert_eq!(error.to_string(), "the client went away");
        assert!(sealer.next().await.is_none());
    }
}
