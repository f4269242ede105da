//! `Range: bytes=...` on downloads (RFC 9110, section 14): one range is
//! served as a 206 part; several are served whole (a server may ignore a
//! `Range`), and so is a header that does not parse.

use std::ops::RangeInclusive;

/// What a download's `Range` header asks of a file of a given length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// The whole file (no header, several ranges, or one that does not
    /// parse).
    Whole,
    /// These bytes of it, first and last inclusive (206).
    Part(RangeInclusive<u64>),
    /// A range that starts past the end (416, with `Content-Range: bytes */LENGTH`).
    Unsatisfiable,
}

impl RangeRequest {
    /// What `header` (the `Range` value, if any) asks of a file of `length`
    /// bytes.
    pub fn of(header: Option<&str>, length: u64) -> Self {
        let Some(spec) = header.and_then(|value| value.trim().strip_prefix("bytes=")) else {
            return RangeRequest::Whole;
        };
        if spec.contains(',') {
            return RangeRequest::Whole;
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return RangeRequest::Whole;
        };
        let (first, last) = (first.trim(), last.trim());
        if first.is_empty() {
            // `bytes=-N`: the last N bytes.
            return match number(last) {
                None => RangeRequest::Whole,
                Some(0) => RangeRequest::Unsatisfiable,
                Some(_) if length == 0 => RangeRequest::Unsatisfiable,
                Some(suffix) => RangeRequest::Part(length.saturating_sub(suffix)..=length - 1),
            };
        }
        // `bytes=A-` or `bytes=A-B`.
        let Some(start) = number(first) else {
            return RangeRequest::Whole;
        };
        let last = match (last.is_empty(), number(last)) {
            (true, _) => None,
            (false, Some(last)) => Some(last),
            (false, None) => return RangeRequest::Whole,
        };
        if start >= length {
            return RangeRequest::Unsatisfiable;
        }
        match last {
            Some(last) if last < start => RangeRequest::Whole,
            last => {
                RangeRequest::Part(start..=last.map_or(length - 1, |last| last.min(length - 1)))
            }
        }
    }
}

/// A run of decimal digits; one too long for a `u64` is larger than any
/// file, so it counts as the largest.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// The `Content-Range` value of a part.
pub fn content_range(part: &RangeInclusive<u64>, length: u64) -> String {
    format!("bytes {}-{}/{length}", part.start(), part.end())
}

/// The `Content-Range` value of a 416.
pub fn unsatisfied_range(length: u64) -> String {
    format!("bytes */{length}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(header: &str, length: u64) -> RangeRequest {
        RangeRequest::of(Some(header), length)
    }

    #[test]
    fn one_range_is_a_part() {
        assert_eq!(of("bytes=0-99", 1000), RangeRequest::Part(0..=99));
        assert_eq!(of("bytes=900-", 1000), RangeRequest::Part(900..=999));
        assert_eq!(of("bytes=900-5000", 1000), RangeRequest::Part(900..=999));
        assert_eq!(of("bytes=-100", 1000), RangeRequest::Part(900..=999));
        assert_eq!(of("bytes=-5000", 1000), RangeRequest::Part(0..=999));
        assert_eq!(of(" bytes= 5 - 9 ", 1000), RangeRequest::Part(5..=9));
        assert_eq!(of("bytes=999-999", 1000), RangeRequest::Part(999..=999));
    }

    #[test]
    fn a_range_past_the_end_is_unsatisfiable() {
        assert_eq!(of("bytes=1000-", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(of("bytes=5000-6000", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(
            of("bytes=99999999999999999999999-", 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(of("bytes=-0", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(of("bytes=0-", 0), RangeRequest::Unsatisfiable);
        assert_eq!(of("bytes=-1", 0), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn anything_else_is_the_whole_file() {
        assert_eq!(RangeRequest::of(None, 10), RangeRequest::Whole);
        for header in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "bytes=abc-",
            "bytes=1-abc",
            "bytes=5-1",
            "bytes=+1-2",
            "bytes 0-1",
        ] {
            assert_eq!(of(header, 10), RangeRequest::Whole, "{header}");
        }
    }

    #[test]
    fn content_ranges_name_the_part_and_the_length() {
        assert_eq!(content_range(&(0..=99), 1000), "bytes 0-99/1000");
        assert_eq!(unsatisfied_range(1000), "bytes */1000");
    }
}
