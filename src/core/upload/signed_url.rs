//! Pre-signed upload URLs: a token that lets whoever holds it send one
//! upload as the user whose API key asked for it, until it expires, once.
//!
//! The token is `base64url(payload || tag)`: the payload is a version byte,
//! the API key's id, the user's id, the expiry (milliseconds since the
//! epoch) and a random nonce; the tag is HMAC-SHA256 of the payload under
//! the server secret's [`Purpose::UploadUrl`] key, which every node shares.
//! Verifying it needs no storage; that it is used once is the store's to
//! record, by its nonce.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;

use crate::core::id::{KeyId, UserId};
use crate::core::server_secret::{DerivedKey, Purpose, ServerSecret};
use crate::core::time::Timestamp;

const VERSION: u8 = 1;
const PAYLOAD_BYTES: usize = 1 + 16 + 16 + 8 + 16;
const TAG_BYTES: usize = 32;
/// Characters of a token: unpadded base64url of payload and tag.
const TOKEN_CHARS: usize = ((PAYLOAD_BYTES + TAG_BYTES) * 4).div_ceil(3);

/// The key upload URLs are signed with, derived from the server secret.
#[derive(Clone, Debug)]
pub struct UploadUrlKey(DerivedKey);

impl UploadUrlKey {
    /// The key `secret` derives for upload URLs.
    pub fn new(secret: &ServerSecret) -> Self {
        Self(secret.derive(Purpose::UploadUrl))
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = self.0.mac();
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }
}

/// What an upload URL allows: one upload as `user`, until `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadGrant {
    /// The API key that asked for the URL; the URL stops working if it is
    /// revoked.
    pub key_id: KeyId,
    /// The user the upload will belong to.
    pub user_id: UserId,
    /// When the URL stops working.
    pub expires_at: Timestamp,
    /// Random, so that each URL is distinct and can be used once.
    pub nonce: u128,
}

/// Why an upload URL's token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignedUrlError {
    /// It is not a token of this form at all.
    #[error("the upload URL is not one ticketd issued")]
    Malformed,
    /// Its signature does not match: it was altered, or made by someone
    /// else.
    #[error("the upload URL's signature does not match")]
    Forged,
    /// It was genuine, but its time ran out.
    #[error("the upload URL has expired")]
    Expired,
}

impl UploadGrant {
    fn payload(&self) -> [u8; PAYLOAD_BYTES] {
        let mut payload = [0u8; PAYLOAD_BYTES];
        payload[0] = VERSION;
        payload[1..17].copy_from_slice(&self.key_id.ulid().to_bytes());
        payload[17..33].copy_from_slice(&self.user_id.ulid().to_bytes());
        payload[33..41].copy_from_slice(&self.expires_at.millis().to_be_bytes());
        payload[41..57].copy_from_slice(&self.nonce.to_be_bytes());
        payload
    }

    /// The token of this grant, signed with `key`.
    pub fn sign(&self, key: &UploadUrlKey) -> String {
        let payload = self.payload();
        let mut signed = [0u8; PAYLOAD_BYTES + TAG_BYTES];
        signed[..PAYLOAD_BYTES].copy_from_slice(&payload);
        signed[PAYLOAD_BYTES..].copy_from_slice(&key.tag(&payload));
        URL_SAFE_NO_PAD.encode(signed)
    }

    /// The grant `token` carries, if `key` signed it and it has not expired
    /// by `now`. The tag is compared in constant time.
    ///
    /// # Errors
    /// `Malformed`, `Forged` or `Expired`.
    pub fn verify(key: &UploadUrlKey, token: &str, now: Timestamp) -> Result<Self, SignedUrlError> {
        if token.len() != TOKEN_CHARS {
            return Err(SignedUrlError::Malformed);
        }
        let signed = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| SignedUrlError::Malformed)?;
        let (payload, tag) = signed.split_at(PAYLOAD_BYTES);
        let mut mac = key.0.mac();
        mac.update(payload);
        mac.verify_slice(tag).map_err(|_| SignedUrlError::Forged)?;
        if payload[0] != VERSION {
            return Err(SignedUrlError::Malformed);
        }
        let bytes16 = |range: std::ops::Range<usize>| -> [u8; 16] {
            let mut out = [0u8; 16];
            out.copy_from_slice(&payload[range]);
            out
        };
        let mut millis = [0u8; 8];
        millis.copy_from_slice(&payload[33..41]);
        let grant = UploadGrant {
            key_id: KeyId::from_ulid(ulid::Ulid::from_bytes(bytes16(1..17))),
            user_id: UserId::from_ulid(ulid::Ulid::from_bytes(bytes16(17..33))),
            expires_at: Timestamp::from_millis(i64::from_be_bytes(millis)),
            nonce: u128::from_be_bytes(bytes16(41..57)),
        };
        if now >= grant.expires_at {
            return Err(SignedUrlError::Expired);
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::server_secret::SECRET_BYTES;

    fn key(byte: u8) -> UploadUrlKey {
        UploadUrlKey::new(&ServerSecret::new([byte; SECRET_BYTES]))
    }

    fn grant() -> UploadGrant {
        UploadGrant {
            key_id: KeyId::generate(),
            user_id: UserId::generate(),
            expires_at: Timestamp::from_millis(1_800_000_000_000),
            nonce: 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
        }
    }

    #[test]
    fn a_token_verifies_under_its_key_until_it_expires() {
        let grant = grant();
        let token = grant.sign(&key(1));
        assert_eq!(token.len(), TOKEN_CHARS);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let before = Timestamp::from_millis(grant.expires_at.millis() - 1);
        assert_eq!(UploadGrant::verify(&key(1), &token, before), Ok(grant));
        assert_eq!(
            UploadGrant::verify(&key(1), &token, grant.expires_at),
            Err(SignedUrlError::Expired)
        );
    }

    #[test]
    fn another_secret_or_any_altered_character_is_forged() {
        let grant = grant();
        let token = grant.sign(&key(1));
        let now = Timestamp::from_millis(0);
        assert_eq!(
            UploadGrant::verify(&key(2), &token, now),
            Err(SignedUrlError::Forged)
        );
        for index in 0..token.len() {
            let mut altered = token.clone().into_bytes();
            altered[index] = if altered[index] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).expect("ASCII");
            let verdict = UploadGrant::verify(&key(1), &altered, now);
            assert!(
                matches!(
                    verdict,
                    Err(SignedUrlError::Forged | SignedUrlError::Malformed)
                ),
                "character {index}: {verdict:?}"
            );
        }
    }

    #[test]
    fn anything_else_is_malformed() {
        let now = Timestamp::from_millis(0);
        for token in [
            "",
            "abc",
            &"A".repeat(TOKEN_CHARS + 1),
            &"*".repeat(TOKEN_CHARS),
        ] {
            assert_eq!(
                UploadGrant::verify(&key(1), token, now),
                Err(SignedUrlError::Malformed),
                "{token}"
            );
        }
    }

    #[test]
    fn each_grant_signs_to_its_own_token() {
        let one = grant();
        let two = UploadGrant {
            nonce: one.nonce + 1,
            ..one
        };
        assert_ne!(one.sign(&key(1)), two.sign(&key(1)));
    }
}
