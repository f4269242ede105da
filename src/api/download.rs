//! The head of a file download: every header a stored file is sent with,
//! whichever API serves it. Uploaded files are whatever their senders made
//! them, so they are sent to be saved, never shown in ticketd's origin: as
//! an attachment, with `nosniff`, and sandboxed should a browser render
//! them anyway (an HTML or SVG file must not run script here).
//!
//! A download answers the conditional headers a cache or a resuming
//! client sends (RFC 9110): `If-None-Match` naming its `ETag` is a 304, and
//! a `Range` counts only while `If-Range`, when given, names its `ETag`
//! (otherwise the whole file is sent, as the file may have changed).

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

/// The headers of a download request that decide what it is sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    /// `Range`.
    pub range: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
}

impl<'a> Conditions<'a> {
    /// The conditions `headers` carry (a header that is not text is taken
    /// as absent).
    pub fn of(headers: &'a HeaderMap) -> Self {
        let text = |name| headers.get(name).and_then(|value| value.to_str().ok());
        Self {
            range: text(header::RANGE),
            if_none_match: text(header::IF_NONE_MATCH),
            if_range: text(header::IF_RANGE),
        }
    }
}

/// Whether an `If-None-Match` list names `etag` (weakly compared: a `W/`
/// prefix is ignored) or is `*`.
fn none_match_names(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// What to send for a download: the status, the headers, and which bytes
/// of the file (none for a 304 or a 416).
#[derive(Debug, Clone)]
pub struct DownloadHead {
    /// 200, 206, 304 or 416.
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

/// The head of a download of `file` for a request with `conditions`.
pub fn head(file: FileFacts<'_>, conditions: Conditions<'_>) -> DownloadHead {
    let etag = format!("\"{}\"", file.sha256);
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, value(&etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    if conditions
        .if_none_match
        .is_some_and(|list| none_match_names(list, &etag))
    {
        return DownloadHead {
            status: StatusCode::NOT_MODIFIED,
            headers,
            bytes: None,
        };
    }
    // A range of another version of the file would be spliced wrongly:
    // it counts only while the client's copy is this one (a strong match;
    // a date never matches, as no Last-Modified is sent).
    let range = conditions
        .range
        .filter(|_| conditions.if_range.is_none_or(|tag| tag.trim() == etag));
    headers.insert(header::CONTENT_TYPE, value(file.content_type));
    headers.insert(
        header::CONTENT_DISPOSITION,
        value(&disposition::attachment(file.filename)),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
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

/// The header names [`head`] sets on every answer but a 304 (which has
/// only `ETag` and `Cache-Control`), for tests and documentation.
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

    fn range(range: &str) -> Conditions<'_> {
        Conditions {
            range: Some(range),
            ..Conditions::default()
        }
    }

    #[test]
    fn a_whole_file_is_sent_to_be_saved_never_run() {
        let head = head(file(1000), Conditions::default());
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
        let part = head(file(1000), range("bytes=100-199"));
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.bytes, Some(100..=199));
        assert_eq!(part.headers[header::CONTENT_LENGTH], "100");
        assert_eq!(part.headers[header::CONTENT_RANGE], "bytes 100-199/1000");

        let past = head(file(1000), range("bytes=1000-"));
        assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(past.bytes, None);
        assert_eq!(past.headers[header::CONTENT_LENGTH], "0");
        assert_eq!(past.headers[header::CONTENT_RANGE], "bytes */1000");

        let several = head(file(1000), range("bytes=0-1,5-6"));
        assert_eq!(several.status, StatusCode::OK);
        assert_eq!(several.bytes, Some(0..=999));
    }

    #[test]
    fn an_empty_file_has_no_bytes_to_send() {
        let empty = head(file(0), Conditions::default());
        assert_eq!(empty.status, StatusCode::OK);
        assert_eq!(empty.bytes, None);
        assert_eq!(empty.headers[header::CONTENT_LENGTH], "0");
    }

    #[test]
    fn a_cached_copy_is_not_sent_again() {
        let etag = format!("\"{SHA}\"");
        for list in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"other\", {etag}"),
            "*".into(),
        ] {
            let cached = head(
                file(1000),
                Conditions {
                    if_none_match: Some(&list),
                    range: Some("bytes=0-9"),
                    ..Conditions::default()
                },
            );
            assert_eq!(cached.status, StatusCode::NOT_MODIFIED, "{list}");
            assert_eq!(cached.bytes, None);
            assert_eq!(cached.headers[header::ETAG], etag.as_str());
            assert!(!cached.headers.contains_key(header::CONTENT_LENGTH));
        }
        let changed = head(
            file(1000),
            Conditions {
                if_none_match: Some("\"other\""),
                ..Conditions::default()
            },
        );
        assert_eq!(changed.status, StatusCode::OK);
    }

    #[test]
    fn a_range_counts_only_for_the_copy_if_range_names() {
        let etag = format!("\"{SHA}\"");
        let resumed = head(
            file(1000),
            Conditions {
                range: Some("bytes=500-"),
                if_range: Some(&etag),
                ..Conditions::default()
            },
        );
        assert_eq!(resumed.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(resumed.bytes, Some(500..=999));
        for other in ["\"other\"", "W/\"9f86\"", "Wed, 21 Oct 2026 07:28:00 GMT"] {
            let whole = head(
                file(1000),
                Conditions {
                    range: Some("bytes=500-"),
                    if_range: Some(other),
                    ..Conditions::default()
                },
            );
            assert_eq!(whole.status, StatusCode::OK, "{other}");
            assert_eq!(whole.bytes, Some(0..=999));
        }
    }
}
