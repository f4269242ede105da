//! Idempotency keys: the name a client gives one intended write, so that a
//! retry of the same request is recognised instead of written twice.
//!
//! A key is sent in the `Idempotency-Key` header, either as the quoted
//! string the IETF draft specifies (`"9f1c2b3a-reply-1"`, a Structured
//! Field String) or bare, as many clients send it (`9f1c2b3a-reply-1`); both
//! name the same key. The request it was first used with is remembered as
//! a [`Fingerprint`], so that reusing a key for another request is caught.
//! Fingerprints are keyed with a key derived from the server secret
//! ([`crate::core::server_secret`]), which every node shares.

use std::fmt;

use hmac::Mac;
use subtle::ConstantTimeEq;
use ulid::Ulid;

use crate::core::server_secret::{DerivedKey, Purpose, ServerSecret};

/// A client's idempotency key: 1 to 255 visible ASCII characters (`!` to
/// `~`), compared exactly.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why an `Idempotency-Key` header value is not a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The value (or the quoted string) is empty.
    #[error("the Idempotency-Key is empty")]
    Empty,
    /// More than [`IdempotencyKey::MAX_LEN`] characters.
    #[error("the Idempotency-Key is longer than 255 characters")]
    TooLong,
    /// A character outside visible ASCII (a space, a control character or
    /// anything beyond ASCII).
    #[error("the Idempotency-Key may hold only visible ASCII characters (! to ~)")]
    NotVisibleAscii,
    /// A value that starts with a double quote but is not one well-formed
    /// quoted string.
    #[error("the Idempotency-Key is not a well-formed quoted string")]
    MalformedString,
}

impl IdempotencyKey {
    /// The longest key accepted, in characters.
    pub const MAX_LEN: usize = 255;

    /// The key as stored for an API that scopes keys by path as well as by
    /// API key: the same key sent to two paths names two records. (A space
    /// is in no key, so a scoped key never equals an unscoped one.)
    #[must_use]
    pub fn within(&self, path: &str) -> Self {
        Self(format!("{path} {}", self.0))
    }

    /// Parses a key as stored: 1 to 255 visible ASCII characters.
    ///
    /// # Errors
    /// Names what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(KeyError::NotVisibleAscii);
        }
        if text.len() > Self::MAX_LEN {
            return Err(KeyError::TooLong);
        }
        Ok(Self(text.to_owned()))
    }

    /// Parses an `Idempotency-Key` header value: a quoted string
    /// (`"abc"`, with `\"` and `\\` escapes) or the key bare (`abc`).
    /// Surrounding spaces and tabs are ignored.
    ///
    /// # Errors
    /// Names what is wrong with it.
    pub fn from_header(value: &str) -> Result<Self, KeyError> {
        let value = value.trim_matches([' ', '\t']);
        match value.strip_prefix('"') {
            Some(quoted) => Self::parse(&unquote(quoted)?),
            None => Self::parse(value),
        }
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The content of a Structured Field String whose opening quote is already
/// consumed: up to the closing quote, which must end the value.
fn unquote(rest: &str) -> Result<String, KeyError> {
    let mut content = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' if chars.as_str().is_empty() => return Ok(content),
            '"' => return Err(KeyError::MalformedString),
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\')) => content.push(escaped),
                _ => return Err(KeyError::MalformedString),
            },
            // Anything else is checked as part of the key.
            other => content.push(other),
        }
    }
    // No closing quote.
    Err(KeyError::MalformedString)
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

/// The key requests are fingerprinted under: derived from the server
/// secret for [`Purpose::IdempotencyFingerprint`], so every node that
/// shares the key file computes the same fingerprints, and nobody without
/// it can compute any.
#[derive(Clone, Debug)]
pub struct FingerprintKey(DerivedKey);

impl FingerprintKey {
    /// The fingerprint key of `secret`.
    pub fn derive(secret: &ServerSecret) -> Self {
        Self(secret.derive(Purpose::IdempotencyFingerprint))
    }
}

/// What identifies a request for idempotency: an HMAC-SHA256, under the
/// [`FingerprintKey`], of its method, its path and its body in canonical
/// form. Keyed, so that a stored fingerprint cannot be used to test guesses
/// at the body it was made of (an encrypted reply's, say) without the key
/// file. Compared in constant time.
#[derive(Clone, Copy)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// What the stored fingerprint of a record from before fingerprints
    /// were keyed was replaced with (an unkeyed SHA-256 of the request
    /// would reveal guessable bodies): no request has it, so such a record
    /// answers every request as another request's until it expires.
    pub const ERASED: Fingerprint = Fingerprint([0; 32]);

    /// The fingerprint of a request under `key`. A body that is JSON counts
    /// by its value, not its spelling: whitespace and the order of object
    /// members do not matter (members are compared sorted, and a repeated
    /// member counts once, with its last value, as the handlers read it).
    /// Any other body counts byte for byte.
    pub fn of_request(key: &FingerprintKey, method: &str, path: &str, body: &[u8]) -> Self {
        let canonical = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|value| serde_json::to_vec(&value).ok());
        let mut mac = key.0.mac();
        mac.update(method.as_bytes());
        mac.update(&[0]);
        mac.update(path.as_bytes());
        mac.update(&[0]);
        mac.update(canonical.as_deref().unwrap_or(body));
        Self(mac.finalize().into_bytes().into())
    }

    /// A fingerprint from stored bytes; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The fingerprint's bytes, as stored.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for Fingerprint {}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprint(")?;
        for byte in &self.0[..4] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("..)")
    }
}

/// Proof of one claim on a key: a fresh random token that only the request
/// holding the claim knows. A write completes a record only while the
/// record still carries its token, so a request whose claim was taken
/// over can never complete it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken(Ulid);

impl ClaimToken {
    /// A fresh token.
    pub fn generate() -> Self {
        Self(Ulid::new())
    }

    /// The token as stored (a lowercase ULID).
    pub fn key(&self) -> String {
        crate::core::id::lowercase(self.0, &mut [0; ulid::ULID_LEN]).to_owned()
    }

    /// Parses a stored token.
    pub fn from_key(key: &str) -> Option<Self> {
        Ulid::from_string(key).ok().map(Self)
    }
}

impl fmt::Debug for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClaimToken({})", self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> String {
        IdempotencyKey::from_header(text)
            .map(|key| key.as_str().to_owned())
            .unwrap_or_else(|error| panic!("{text:?}: {error}"))
    }

    #[test]
    fn bare_and_quoted_keys_name_the_same_key() {
        assert_eq!(key("9f1c2b3a-reply-1"), "9f1c2b3a-reply-1");
        assert_eq!(key("\"9f1c2b3a-reply-1\""), "9f1c2b3a-reply-1");
        assert_eq!(
            key("\"8e03978e-40d5-43e8-bc93-6894a57f9324\""),
            "8e03978e-40d5-43e8-bc93-6894a57f9324"
        );
        assert_eq!(key("  abc\t"), "abc");
        assert_eq!(key(r#""a\"b\\c""#), r#"a"b\c"#);
        // A bare value is taken as it is, quotes and commas included.
        assert_eq!(key(r#"a"b,c"#), r#"a"b,c"#);
        assert_eq!(key(&"k".repeat(255)), "k".repeat(255));
        assert_eq!(key(&format!("\"{}\"", "k".repeat(255))), "k".repeat(255));
    }

    #[test]
    fn malformed_keys_are_named() {
        let cases = [
            ("", KeyError::Empty),
            ("   ", KeyError::Empty),
            ("\"\"", KeyError::Empty),
            (&"k".repeat(256), KeyError::TooLong),
            (&format!("\"{}\"", "k".repeat(256)), KeyError::TooLong),
            ("a b", KeyError::NotVisibleAscii),
            ("\"a b\"", KeyError::NotVisibleAscii),
            ("a\u{7f}b", KeyError::NotVisibleAscii),
            ("clé", KeyError::NotVisibleAscii),
            ("\"abc", KeyError::MalformedString),
            ("\"abc\"def", KeyError::MalformedString),
            ("\"abc\", \"def\"", KeyError::MalformedString),
            ("\"abc\";param=1", KeyError::MalformedString),
            (r#""a\nb""#, KeyError::MalformedString),
            ("\"", KeyError::MalformedString),
        ];
        for (text, expected) in cases {
            assert_eq!(IdempotencyKey::from_header(text), Err(expected), "{text:?}");
        }
    }

    fn fingerprint_key(byte: u8) -> FingerprintKey {
        FingerprintKey::derive(&ServerSecret::new([byte; 32]))
    }

    #[test]
    fn json_bodies_are_fingerprinted_by_value() {
        let key = fingerprint_key(1);
        let of = |method, path, body: &[u8]| Fingerprint::of_request(&key, method, path, body);
        let path = "/api/v2/support/tickets/1/messages";
        let one = of("POST", path, br#"{"message":"hi","encrypted":false}"#);
        let same = of(
            "POST",
            path,
            b" {\n  \"encrypted\": false,\n  \"message\": \"hi\"\n}",
        );
        assert_eq!(one, same);
        assert_ne!(
            one,
            of("POST", path, br#"{"message":"hi!","encrypted":false}"#)
        );
        assert_ne!(
            one,
            of(
                "POST",
                "/api/v2/support/tickets/2/messages",
                br#"{"message":"hi","encrypted":false}"#
            )
        );
        assert_ne!(
            one,
            of("PUT", path, br#"{"message":"hi","encrypted":false}"#)
        );
        // Bodies that are not JSON count byte for byte.
        assert_eq!(of("POST", path, b"not json"), of("POST", path, b"not json"));
        assert_ne!(
            of("POST", path, b"not json"),
            of("POST", path, b"not  json")
        );
        let stored = Fingerprint::from_slice(one.as_bytes()).expect("32 bytes");
        assert_eq!(stored, one);
        assert_eq!(Fingerprint::from_slice(&[0; 31]), None);
        assert_ne!(one, Fingerprint::ERASED);
    }

    #[test]
    fn fingerprints_are_keyed_by_the_server_secret() {
        let (path, body) = (
            "/api/v2/support/tickets/1/messages",
            br#"{"message":"PIN 4821"}"#,
        );
        let under = |byte| Fingerprint::of_request(&fingerprint_key(byte), "POST", path, body);
        // The same secret (as every node sharing a key file has it): the
        // same fingerprint; another secret: another one.
        assert_eq!(under(7), under(7));
        assert_ne!(under(7), under(8));
        // Neither is the unkeyed digest of the same input, which anyone
        // could compute to test a guess at the body.
        let mut unkeyed = sha2::Sha256::default();
        sha2::Digest::update(&mut unkeyed, b"POST\0/api/v2/support/tickets/1/messages\0");
        sha2::Digest::update(&mut unkeyed, body);
        let unkeyed: [u8; 32] = sha2::Digest::finalize(unkeyed).into();
        assert_ne!(under(7).as_bytes(), &unkeyed);
        // It is HMAC-SHA256 under the derived key, of the documented input.
        let mut mac = fingerprint_key(7).0.mac();
        mac.update(b"POST\0/api/v2/support/tickets/1/messages\0");
        mac.update(body);
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(under(7).as_bytes(), &expected);
        assert!(!format!("{:?}", fingerprint_key(7)).contains("7, 7"));
    }

    #[test]
    fn claim_tokens_round_trip_and_differ() {
        let token = ClaimToken::generate();
        assert_eq!(ClaimToken::from_key(&token.key()), Some(token));
        assert_ne!(ClaimToken::generate(), token);
    }
}
