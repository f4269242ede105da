//! The head of a file download: every header a stored file is sent with,
//! whichever API serves it. Uploaded files are whatever their senders made
//! them, so they are sent to be saved, never shown in ticketd's origin: as
//! an attachment, with `nosniff`, and sandboxed should a browser render
//! them anyway (an HTML or SVG file must not run script here).

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::api::range::{RangeRequest, content_range, unsatisfied_range};
use crate::core::upload::disposition;

/// A stored file, as its download describes it.
#[derive(Debug, Clone, Copy)]
pub struct FileFacts<'a> {
    /// Its name, for `Content-Disposition`.
    pub filename: &'a str,
    /// Its media type.
    pub content_type: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 in lowercase hex: the strong `ETag`.
    pub sha256: &'a str,
}

/// What to send for a download: the status, the headers, and which bytes
/// of the file (none for a 416).
#[derive(Debug, Clone)]
pub struct DownloadHead {
    /// 200, 206 or 416.
    pub status: StatusCode,
    /// Every header of the response.
    pub headers: HeaderMap,
    /// The bytes to send, first and last inclusive; `None` for nothing.
    pub bytes: Option<std::ops::RangeInclusive<u64>>,
}

fn value(text: &str) -> HeaderValue {
    // Every value here is built from visible ASCII (the filename is
    // percent-encoded); one that is not is left out rather than sent.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The head of a download of `file` for a request with `range` (the
/// `Range` header, if any).
pub fn head(file: FileFacts<'_>, range: Option<&str>) -> DownloadHead {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, value(file.content_type));
    headers.insert(
        header::CONTENT_DISPOSITION,
        value(&disposition::attachment(file.filename)),
    );
    headers.insert(header::ETAG, value(&format!("\"{}\"", file.sha256)));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let (status, bytes) = match RangeRequest::of(range, file.size) {
        RangeRequest::Whole => (StatusCode::OK, (file.size > 0).then(|| 0..=file.size - 1)),
        RangeRequest::Part(part) => {
            headers.insert(
                header::CONTENT_RANGE,
                value(&content_range(&part, file.size)),
            );
            (StatusCode::PARTIAL_CONTENT, Some(part))
        }
        RangeRequest::Unsatisfiable => {
            headers.insert(header::CONTENT_RANGE, value(&unsatisfied_range(file.size)));
            (StatusCode::RANGE_NOT_SATISFIABLE, None)
        }
    };
    let length = bytes
        .as_ref()
        .map_or(0, |part| part.end() - part.start() + 1);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    DownloadHead {
        status,
        headers,
        bytes,
    }
}

/// The header names [`head`] always sets, for tests and documentation.
pub const ALWAYS_SENT: [HeaderName; 8] = [
    header::CONTENT_TYPE,
    header::CONTENT_DISPOSITION,
    header::ETAG,
    header::X_CONTENT_TYPE_OPTIONS,
    header::CONTENT_SECURITY_POLICY,
    header::CACHE_CONTROL,
    header::ACCEPT_RANGES,
    header::CONTENT_LENGTH,
];

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn file(size: u64) -> FileFacts<'static> {
        FileFacts {
            filename: "Quittung März.pdf",
            content_type: "application/pdf",
            size,
            sha256: SHA,
        }
    }

    #[test]
    fn a_whole_file_is_sent_to_be_saved_never_run() {
        let head = head(file(1000), None);
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.bytes, Some(0..=999));
        for name in ALWAYS_SENT {
            assert!(head.headers.contains_key(&name), "{name}");
        }
        let h = |name: HeaderName| head.headers[name].to_str().unwrap().to_owned();
        assert_eq!(h(header::CONTENT_TYPE), "application/pdf");
        assert_eq!(h(header::CONTENT_LENGTH), "1000");
        assert_eq!(
            h(header::CONTENT_DISPOSITION),
            "attachment; filename=\"Quittung M_rz.pdf\"; filename*=UTF-8''Quittung%20M%C3%A4rz.pdf"
        );
        assert_eq!(h(header::ETAG), format!("\"{SHA}\""));
        assert_eq!(h(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(h(header::CONTENT_SECURITY_POLICY), "sandbox");
        assert_eq!(h(header::CACHE_CONTROL), "private");
        assert!(!head.headers.contains_key(header::CONTENT_RANGE));
    }

    #[test]
    fn a_range_is_a_part_or_unsatisfiable() {
        let part = head(file(1000), Some("bytes=100-199"));
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.bytes, Some(100..=199));
        assert_eq!(part.headers[header::CONTENT_LENGTH], "100");
        assert_eq!(part.headers[header::CONTENT_RANGE], "bytes 100-199/1000");

        let past = head(file(1000), Some("bytes=1000-"));
        assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(past.bytes, None);
        assert_eq!(past.headers[header::CONTENT_LENGTH], "0");
        assert_eq!(past.headers[header::CONTENT_RANGE], "bytes */1000");

        let several = head(file(1000), Some("bytes=0-1,5-6"));
        assert_eq!(several.status, StatusCode::OK);
        assert_eq!(several.bytes, Some(0..=999));
    }

    #[test]
    fn an_empty_file_has_no_bytes_to_send() {
        let empty = head(file(0), None);
        assert_eq!(empty.status, StatusCode::OK);
        assert_eq!(empty.bytes, None);
        assert_eq!(empty.headers[header::CONTENT_LENGTH], "0");
    }
}
