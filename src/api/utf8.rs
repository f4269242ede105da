//! Finding invalid UTF-8 in a JSON request body, and saying where it is:
//! the byte offset, and the JSON pointer of the member or element whose
//! text holds it.
//!
//! A body may nest a million arrays before its bad byte. The pointer is
//! built at most [`MAX_POINTER_BYTES`] long, and only the containers it can
//! show are remembered in full; deeper ones take one byte each.

use std::fmt;

use crate::api::fields::push_segment;
use crate::api::refusal::{BoundedText, MAX_POINTER_BYTES};

/// Where a body stops being UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidUtf8 {
    /// Offset of the first invalid byte from the start of the body.
    pub offset: usize,
    /// That byte; `None` when the body ends in the middle of a character.
    pub byte: Option<u8>,
    /// JSON pointer (RFC 6901) of the innermost value holding it, as far as
    /// the body up to it tells (`""`: the whole body); at most
    /// [`MAX_POINTER_BYTES`] as sent, cut short with a marker past that.
    pub pointer: String,
    /// Whether it is inside a member name of the object at `pointer` rather
    /// than in a value.
    pub in_member_name: bool,
}

impl fmt::Display for InvalidUtf8 {
    /// What is wrong and where, for people: one sentence, no final stop.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.byte {
            Some(byte) => write!(
                f,
                "byte 0x{byte:02X} at offset {} is not part of a valid character",
                self.offset
            )?,
            None => write!(
                f,
                "the body ends at offset {} in the middle of a character",
                self.offset
            )?,
        }
        match (self.pointer.as_str(), self.in_member_name) {
            ("", true) => write!(f, " (in a member name of the body)"),
            ("", false) => Ok(()),
            (pointer, true) => write!(f, " (in a member name of `{pointer}`)"),
            (pointer, false) => write!(f, " (in the value at `{pointer}`)"),
        }
    }
}

/// Checks that `body` is UTF-8.
///
/// # Errors
/// Where the first invalid byte is.
pub fn check(body: &[u8]) -> Result<&str, InvalidUtf8> {
    std::str::from_utf8(body).map_err(|error| {
        let offset = error.valid_up_to();
        let byte = error.error_len().and(body.get(offset).copied());
        // The bytes before the error are valid, so this cannot fail.
        let prefix = std::str::from_utf8(&body[..offset]).unwrap_or_default();
        let (pointer, in_member_name) = locate(prefix);
        InvalidUtf8 {
            offset,
            byte,
            pointer,
            in_member_name,
        }
    })
}

/// An open container while scanning.
enum Open {
    /// An object; `member` is the name of the member whose value comes or
    /// is being read (`None` while a name is expected).
    Object { member: Option<String> },
    /// An array and the index of its current element.
    Array { index: usize },
}

/// The JSON pointer of the value the end of `prefix` is in, and whether the
/// end is inside a member name. `prefix` need not be valid JSON; the
/// pointer is then a best guess from its brackets and names.
fn locate(prefix: &str) -> (String, bool) {
    let bytes = prefix.as_bytes();
    // Each container adds at least one byte to the pointer, so those past
    // the first MAX_POINTER_BYTES never show in it: of them, only whether
    // each is an object (`true`) is kept.
    let mut open: Vec<Open> = Vec::new();
    let mut deeper: Vec<bool> = Vec::new();
    let mut expecting_name = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => {
                let object = bytes[i] == b'{';
                if open.len() < MAX_POINTER_BYTES {
                    open.push(if object {
                        Open::Object { member: None }
                    } else {
                        Open::Array { index: 0 }
                    });
                } else {
                    deeper.push(object);
                }
                expecting_name = object;
            }
            b'}' | b']' => {
                if deeper.pop().is_none() {
                    open.pop();
                }
                expecting_name = false;
            }
            b',' => match (deeper.last(), open.last_mut()) {
                (Some(object), _) => expecting_name = *object,
                (None, Some(Open::Array { index })) => *index += 1,
                (None, Some(Open::Object { member })) => {
                    *member = None;
                    expecting_name = true;
                }
                (None, None) => {}
            },
            b':' => expecting_name = false,
            b'"' => {
                let Some(end) = string_end(bytes, i) else {
                    // The text ends inside this string.
                    return (pointer(&open), expecting_name);
                };
                if expecting_name
                    && deeper.is_empty()
                    && let Some(Open::Object { member }) = open.last_mut()
                {
                    *member = serde_json::from_str(&prefix[i..=end]).ok();
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    (pointer(&open), expecting_name)
}

/// The index of the quote closing the string that opens at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The pointer to the innermost value that `open` leads into, at most
/// [`MAX_POINTER_BYTES`] as sent.
fn pointer(open: &[Open]) -> String {
    let mut pointer = BoundedText::new(MAX_POINTER_BYTES);
    for container in open {
        if pointer.is_full() {
            break;
        }
        match container {
            Open::Object {
                member: Some(name), ..
            } => {
                pointer.push_str("/");
                push_segment(&mut pointer, name);
            }
            Open::Object { member: None } => break,
            Open::Array { index } => {
                pointer.push_str("/");
                pointer.push_str(&index.to_string());
            }
        }
    }
    pointer.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(body: &[u8]) -> InvalidUtf8 {
        check(body)
            .err()
            .unwrap_or_else(|| panic!("{body:?} is UTF-8"))
    }

    #[test]
    fn valid_bodies_pass() {
        assert_eq!(
            check(b"{\"message\": \"caf\xc3\xa9\"}").ok(),
            Some("{\"message\": \"café\"}")
        );
        assert_eq!(check(b"").ok(), Some(""));
    }

    #[test]
    fn points_at_the_member_holding_the_bytes() {
        let found = at(b"{\"message\": \"caf\xe9\"}");
        assert_eq!(
            found,
            InvalidUtf8 {
                offset: 16,
                byte: Some(0xe9),
                pointer: "/message".into(),
                in_member_name: false,
            }
        );
        assert_eq!(
            found.to_string(),
            "byte 0xE9 at offset 16 is not part of a valid character (in the value at `/message`)"
        );

        let second = at(b"{\"subject\": \"ok, \\\"fine\\\"\", \"message\": \"\xff\"}");
        assert_eq!(second.pointer, "/message");
        let nested = at(b"{\"a\": {\"b/c\": [1, \"x\", {\"d~\": \"\xc3\"}]}}");
        assert_eq!(nested.pointer, "/a/b~1c/2/d~0");
        let escaped_name = at(b"{\"mess\\u0061ge\": \"\xff\"}");
        assert_eq!(escaped_name.pointer, "/message");
    }

    #[test]
    fn names_and_the_top_level_are_told_apart() {
        let name = at(b"{\"subject\": \"x\", \"mes\xffsage\": \"hi\"}");
        assert_eq!((name.pointer.as_str(), name.in_member_name), ("", true));
        assert_eq!(
            name.to_string(),
            "byte 0xFF at offset 21 is not part of a valid character (in a member name of the body)"
        );
        let inner_name = at(b"{\"a\": {\"\xff\": 1}}");
        assert_eq!(
            (inner_name.pointer.as_str(), inner_name.in_member_name),
            ("/a", true)
        );
        let top = at(b"\xff{}");
        assert_eq!(
            (top.offset, top.pointer.as_str(), top.in_member_name),
            (0, "", false)
        );
        assert_eq!(
            top.to_string(),
            "byte 0xFF at offset 0 is not part of a valid character"
        );
    }

    #[test]
    fn a_truncated_character_at_the_end_is_reported() {
        let found = at(b"{\"message\": \"\xe2\x82");
        assert_eq!((found.offset, found.byte), (13, None));
        assert_eq!(
            found.to_string(),
            "the body ends at offset 13 in the middle of a character (in the value at `/message`)"
        );
    }

    #[test]
    fn surrogates_and_overlong_forms_are_invalid() {
        // An encoded surrogate (U+D800) and an overlong "/" (0xC0 0xAF).
        assert_eq!(at(b"{\"message\": \"\xed\xa0\x80\"}").offset, 13);
        assert_eq!(at(b"[\"\xc0\xaf\"]").pointer, "/0");
    }

    #[test]
    fn pointers_into_deep_bodies_are_cut_short() {
        let mut body = vec![b'['; 1024 * 1024];
        body.push(0xff);
        let found = at(&body);
        assert_eq!(found.offset, 1024 * 1024);
        assert_eq!(found.pointer, format!("{}/…", "/0".repeat(126)));
        assert_eq!(found.pointer.len(), MAX_POINTER_BYTES);

        // Back out of containers too deep to show, the pointer is exact.
        let mut body = b"[1, ".to_vec();
        body.extend(b"{\"k\": [".repeat(1000));
        body.extend(b"]}".repeat(1000));
        body.extend(b", \"\xff\"]");
        assert_eq!(at(&body).pointer, "/2");

        // Deep objects: a name at any depth is told from a value.
        let mut body = b"{\"k\": ".repeat(1000);
        body.extend(b"{\"x\": 1, \"\xff\": 2}");
        let found = at(&body);
        assert!(found.in_member_name);
        assert_eq!(found.pointer, format!("{}/…", "/k".repeat(126)));
        let mut body = b"[".repeat(1000);
        body.extend(b"{\"x\": 1, \"y\": \"\xff\"}");
        assert!(!at(&body).in_member_name);
    }
}
