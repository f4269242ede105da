//! Checks on the bytes of an upload as they stream to a [`BlobStore`]: the
//! size limit (refused as soon as it is passed, without reading on), the
//! media type against the file's first bytes (before any byte is stored),
//! and the sha256 and size of what went through.
//!
//! [`inspect`] wraps the stream; a refusal ends it with an error that
//! [`refusal_of`] recognises in the store's [`BlobError::Source`], so the
//! caller can tell a refused file from a client gone away.
//!
//! [`BlobStore`]: crate::blob::BlobStore

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::stream::Fuse;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::blob::{BlobError, ByteStream};
use crate::core::upload::media::{KnownType, MediaCheck, MediaError, SNIFF_BYTES};

/// Why the bytes of an upload were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefusal {
    /// The file is larger than the limit (in bytes).
    #[error("the file is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The file's media type is not allowed, or its bytes are not of it.
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// What went through a stream that ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// Bytes in all.
    pub size: u64,
    /// Their SHA-256, in lowercase hex.
    pub sha256: String,
    /// The media type, as checked.
    pub media_type: KnownType,
}

/// Where the outcome of an inspection is read once its stream has ended.
#[derive(Clone, Default)]
pub struct Outcome(Arc<Mutex<Option<Inspected>>>);

impl Outcome {
    /// What went through, if the stream ended without a refusal.
    pub fn take(&self) -> Option<Inspected> {
        self.0.lock().ok().and_then(|mut outcome| outcome.take())
    }
}

/// The refusal that ended a stream [`inspect`] wrapped, if that is why the
/// store's write failed.
pub fn refusal_of(error: &BlobError) -> Option<&UploadRefusal> {
    match error {
        BlobError::Source(source) => source.get_ref()?.downcast_ref::<UploadRefusal>(),
        _ => None,
    }
}

/// Wraps `bytes`, declared as `content_type`, in the checks of `media` and
/// `max_bytes`.
pub fn inspect(
    bytes: ByteStream,
    content_type: &str,
    media: &MediaCheck,
    max_bytes: u64,
) -> (ByteStream, Outcome) {
    let outcome = Outcome::default();
    let declared = media.allowed_type(content_type);
    let stream = Inspector {
        inner: bytes.fuse(),
        content_type: content_type.to_owned(),
        media: media.clone(),
        declared,
        max_bytes,
        size: 0,
        digest: Sha256::new(),
        head: Some(BytesMut::new()),
        outcome: outcome.clone(),
        done: false,
    };
    (Box::pin(stream), outcome)
}

struct Inspector {
    /// Fused: after a short file's end, the held-back head is sent first
    /// and the end is seen again on the next poll.
    inner: Fuse<ByteStream>,
    content_type: String,
    media: MediaCheck,
    declared: Result<KnownType, MediaError>,
    max_bytes: u64,
    size: u64,
    digest: Sha256,
    /// The first bytes, held back until there are enough to check the
    /// media type; `None` once checked.
    head: Option<BytesMut>,
    outcome: Outcome,
    done: bool,
}

impl Inspector {
    fn refuse(&mut self, refusal: UploadRefusal) -> Poll<Option<io::Result<Bytes>>> {
        self.done = true;
        Poll::Ready(Some(Err(io::Error::other(refusal))))
    }

    /// Checks the held-back head and lets it go.
    fn release_head(&mut self) -> Result<Option<Bytes>, UploadRefusal> {
        let Some(head) = self.head.take() else {
            return Ok(None);
        };
        self.media.admits(&self.content_type, &head)?;
        Ok(Some(head.freeze()).filter(|head| !head.is_empty()))
    }
}

impl Stream for Inspector {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Err(error) = &this.declared {
            return this.refuse(error.clone().into());
        }
        loop {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(error))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    this.size += chunk.len() as u64;
                    if this.size > this.max_bytes {
                        let limit = this.max_bytes;
                        return this.refuse(UploadRefusal::TooLarge { limit });
                    }
                    this.digest.update(&chunk);
                    let Some(head) = this.head.as_mut() else {
                        return Poll::Ready(Some(Ok(chunk)));
                    };
                    head.extend_from_slice(&chunk);
                    if head.len() < SNIFF_BYTES {
                        continue;
                    }
                    return match this.release_head() {
                        Ok(head) => Poll::Ready(head.map(Ok)),
                        Err(refusal) => this.refuse(refusal),
                    };
                }
                Poll::Ready(None) => {
                    // A file shorter than the sniffed length: check it whole.
                    let head = match this.release_head() {
                        Ok(head) => head,
                        Err(refusal) => return this.refuse(refusal),
                    };
                    if let Some(head) = head {
                        return Poll::Ready(Some(Ok(head)));
                    }
                    let media_type = match &this.declared {
                        Ok(media_type) => *media_type,
                        Err(error) => return this.refuse(error.clone().into()),
                    };
                    this.done = true;
                    let sha256 = hex(&std::mem::take(&mut this.digest).finalize());
                    if let Ok(mut outcome) = this.outcome.0.lock() {
                        *outcome = Some(Inspected {
                            size: this.size,
                            sha256,
                            media_type,
                        });
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use futures_util::{StreamExt, stream};

    use super::*;

    fn chunks(data: &[u8], chunk: usize) -> ByteStream {
        let pieces: Vec<io::Result<Bytes>> = data
            .chunks(chunk)
            .map(|piece| Ok(Bytes::copy_from_slice(piece)))
            .collect();
        Box::pin(stream::iter(pieces))
    }

    async fn drain(mut stream: ByteStream) -> Result<Vec<u8>, io::Error> {
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    fn png(len: usize) -> Vec<u8> {
        let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
        data.resize(len, 7);
        data
    }

    #[tokio::test]
    async fn what_passes_is_unchanged_and_measured() {
        for (len, chunk) in [(0, 1), (5, 1), (511, 100), (512, 512), (100_000, 333)] {
            let data = if len == 0 {
                Vec::new()
            } else {
                "a".repeat(len).into_bytes()
            };
            let (stream, outcome) = inspect(
                chunks(&data, chunk),
                "text/plain",
                &MediaCheck::default(),
                1 << 20,
            );
            assert_eq!(drain(stream).await.expect("passes"), data, "{len}");
            let inspected = outcome.take().expect("an outcome");
            assert_eq!(inspected.size, len as u64);
            assert_eq!(inspected.sha256, hex(&Sha256::digest(&data)));
            assert_eq!(inspected.media_type, KnownType::PlainText);
        }
    }

    #[tokio::test]
    async fn a_file_over_the_limit_is_refused_before_the_rest_is_read() {
        let data = png(10_000);
        let (stream, outcome) = inspect(
            chunks(&data, 1000),
            "image/png",
            &MediaCheck::default(),
            4_000,
        );
        let mut stream = stream;
        let mut passed = 0;
        let error = loop {
            match stream.next().await.expect("the stream ends with an error") {
                Ok(chunk) => passed += chunk.len(),
                Err(error) => break error,
            }
        };
        assert!(passed <= 4_000, "{passed}");
        let refusal = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<UploadRefusal>());
        assert_eq!(refusal, Some(&UploadRefusal::TooLarge { limit: 4_000 }));
        assert!(
            stream.next().await.is_none(),
            "nothing is read after the refusal"
        );
        assert!(outcome.take().is_none());
    }

    #[tokio::test]
    async fn bytes_of_another_type_are_refused_before_any_is_passed_on() {
        let mut exe = b"MZ\x90\0".to_vec();
        exe.resize(5_000, 0);
        let (mut stream, outcome) = inspect(
            chunks(&exe, 100),
            "image/png",
            &MediaCheck::default(),
            1 << 20,
        );
        let first = stream.next().await.expect("an item");
        let error = first.expect_err("refused at once");
        let refusal = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<UploadRefusal>());
        assert!(matches!(
            refusal,
            Some(UploadRefusal::Media(MediaError::ContentMismatch(_)))
        ));
        assert!(outcome.take().is_none());

        let (mut stream, _) = inspect(
            chunks(&png(100), 10),
            "image/svg+xml",
            &MediaCheck::default(),
            1 << 20,
        );
        let error = stream.next().await.expect("an item").expect_err("refused");
        let refusal = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<UploadRefusal>());
        assert_eq!(refusal, Some(&UploadRefusal::Media(MediaError::NotAllowed)));
    }

    #[tokio::test]
    async fn a_short_file_ends_without_polling_its_source_past_its_end() {
        // `unfold` panics if polled again after it ended.
        let source: ByteStream = Box::pin(stream::unfold(false, |sent| async move {
            (!sent).then(|| (Ok(Bytes::from_static(b"short")), true))
        }));
        let (stream, outcome) = inspect(source, "text/plain", &MediaCheck::default(), 100);
        assert_eq!(drain(stream).await.expect("passes"), b"short");
        assert_eq!(outcome.take().map(|inspected| inspected.size), Some(5));
    }

    #[tokio::test]
    async fn a_refusal_is_recognised_in_the_store_error() {
        let refused = BlobError::Source(Arc::new(io::Error::other(UploadRefusal::TooLarge {
            limit: 1,
        })));
        assert_eq!(
            refusal_of(&refused),
            Some(&UploadRefusal::TooLarge { limit: 1 })
        );
        let gone = BlobError::Source(Arc::new(io::Error::other("client gone")));
        assert_eq!(refusal_of(&gone), None);
    }
}
