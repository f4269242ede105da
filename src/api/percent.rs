//! Strict percent-decoding of query strings and path segments: an escape
//! must be `%` and two hex digits, and the decoded bytes must be UTF-8.
//! Nothing is replaced or passed through as it was.

/// Why a component could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    #[error("`%` at offset {offset} does not start an escape of two hex digits")]
    BadEscape {
        /// Where the `%` is in the encoded text.
        offset: usize,
    },
    /// The decoded bytes are not UTF-8.
    #[error("it does not decode to UTF-8 (invalid byte at decoded offset {offset})")]
    NotUtf8 {
        /// Where the first invalid byte is in the decoded bytes.
        offset: usize,
    },
}

/// How `+` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plus {
    /// As a space, in a query string (`application/x-www-form-urlencoded`).
    Space,
    /// As itself, in a path segment.
    Literal,
}

/// Decodes one percent-encoded component.
///
/// # Errors
/// A malformed escape, or bytes that are not UTF-8.
pub fn decode(encoded: &str, plus: Plus) -> Result<String, DecodeError> {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let high = bytes.get(i + 1).and_then(|&digit| hex(digit));
                let low = bytes.get(i + 2).and_then(|&digit| hex(digit));
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(DecodeError::BadEscape { offset: i });
                };
                decoded.push(high << 4 | low);
                i += 3;
            }
            b'+' if plus == Plus::Space => {
                decoded.push(b' ');
                i += 1;
            }
            byte => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).map_err(|error| DecodeError::NotUtf8 {
        offset: error.utf8_error().valid_up_to(),
    })
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_plus() {
        assert_eq!(decode("a%20b+c", Plus::Space), Ok("a b c".into()));
        assert_eq!(decode("a%20b+c", Plus::Literal), Ok("a b+c".into()));
        assert_eq!(decode("caf%C3%A9", Plus::Space), Ok("café".into()));
        assert_eq!(decode("caf%c3%a9", Plus::Space), Ok("café".into()));
        assert_eq!(decode("%2F%25", Plus::Literal), Ok("/%".into()));
        assert_eq!(decode("", Plus::Space), Ok(String::new()));
    }

    #[test]
    fn refuses_bad_escapes() {
        for (encoded, offset) in [("%", 0), ("a%2", 1), ("%zz", 0), ("ok%2Fthen%g0", 9)] {
            assert_eq!(
                decode(encoded, Plus::Space),
                Err(DecodeError::BadEscape { offset }),
                "{encoded}"
            );
        }
    }

    #[test]
    fn refuses_bytes_that_are_not_utf8() {
        assert_eq!(
            decode("caf%E9", Plus::Space),
            Err(DecodeError::NotUtf8 { offset: 3 })
        );
        assert_eq!(
            decode("%FF%FE", Plus::Literal),
            Err(DecodeError::NotUtf8 { offset: 0 })
        );
        assert_eq!(
            decode("%ED%A0%80", Plus::Literal),
            Err(DecodeError::NotUtf8 { offset: 0 })
        );
    }
}
