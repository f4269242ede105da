//! The server secret: 32 random bytes that every node of one database
//! shares (a `secret` line of the key file) and that no rotation of data
//! keys changes. Nothing uses it directly: each purpose derives its own key
//! from it under a label of its own ([`Purpose`]), so a value made for one
//! purpose can never pass for another's.
//!
//! Derivation is HKDF-Expand (RFC 5869) with the secret as the
//! pseudorandom key (it is uniformly random already, so the extract step
//! adds nothing), the purpose's label as `info`, and 32 bytes of output:
//! one block, `HMAC-SHA256(secret, label || 0x01)`. Derived keys are used
//! as HMAC-SHA256 keys.
//!
//! The database keeps a check value of the secret (like the data keys'
//! check values), so a node whose key file holds another secret is refused
//! at startup instead of computing values no other node agrees with.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::core::crypto::CryptoError;

/// HMAC-SHA256.
pub type HmacSha256 = hmac::Hmac<Sha256>;

/// Bytes of the server secret and of every key derived from it.
pub const SECRET_BYTES: usize = 32;

/// Bytes of a SHA-256 block, the length HMAC pads its key to.
const BLOCK_BYTES: usize = 64;

/// What a derived key is for. Each purpose has its own label, and the
/// labels are distinct, so keys of different purposes are independent.
/// A new use of the secret (pre-signed URLs, say) adds a purpose with a
/// new label; a label is never changed or reused once values made with it
/// are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The check value the database keeps of the secret.
    SecretCheck,
    /// Fingerprints of requests with an `Idempotency-Key`
    /// ([`crate::core::idempotency::Fingerprint`]).
    IdempotencyFingerprint,
    /// Signatures of pre-signed upload URLs
    /// ([`crate::core::upload::signed_url`]).
    UploadUrl,
    /// Agency signatures ([`crate::core::agency_signature`]).
    AgencySignature,
}

impl Purpose {
    /// Every purpose, for tests that they are told apart.
    pub const ALL: [Purpose; 4] = [
        Purpose::SecretCheck,
        Purpose::IdempotencyFingerprint,
        Purpose::UploadUrl,
        Purpose::AgencySignature,
    ];

    /// The label the purpose's key is derived under.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::SecretCheck => "ticketd server secret check v1",
            Purpose::IdempotencyFingerprint => "ticketd idempotency fingerprint v1",
            Purpose::UploadUrl => "ticketd upload url v1",
            Purpose::AgencySignature => "ticketd agency signature v1",
        }
    }
}

/// The server secret. Wiped from memory when dropped, never shown by
/// `Debug`.
#[derive(Clone)]
pub struct ServerSecret(Zeroizing<[u8; SECRET_BYTES]>);

impl ServerSecret {
    /// A secret from its bytes (as the key file holds them).
    pub fn new(bytes: [u8; SECRET_BYTES]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A new random secret.
    ///
    /// # Errors
    /// Only if the operating system's random source fails.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        getrandom::fill(bytes.as_mut()).map_err(|_| CryptoError::NoRandomness)?;
        Ok(Self(bytes))
    }

    /// The secret's bytes, for writing them to the key file.
    pub fn expose(&self) -> &[u8; SECRET_BYTES] {
        &self.0
    }

    /// The key for `purpose`.
    pub fn derive(&self, purpose: Purpose) -> DerivedKey {
        let mut mac = hmac_sha256(&self.0);
        mac.update(purpose.label().as_bytes());
        mac.update(&[1]);
        DerivedKey {
            purpose,
            key: Zeroizing::new(mac.finalize().into_bytes().into()),
        }
    }

    /// The check value the database keeps: a MAC of a constant under the
    /// [`Purpose::SecretCheck`] key. It reveals nothing of the secret.
    pub fn check_value(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.check_mac().finalize().into_bytes())
    }

    /// Whether `value` is this secret's check value (compared in constant
    /// time).
    pub fn verify_check_value(&self, value: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(value)
            .is_ok_and(|tag| self.check_mac().verify_slice(&tag).is_ok())
    }

    fn check_mac(&self) -> HmacSha256 {
        let mut mac = self.derive(Purpose::SecretCheck).mac();
        mac.update(b"ticketd server secret check");
        mac
    }
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(..)")
    }
}

/// A key derived from the server secret for one purpose. Wiped from memory
/// when dropped, never shown by `Debug`.
#[derive(Clone)]
pub struct DerivedKey {
    purpose: Purpose,
    key: Zeroizing<[u8; SECRET_BYTES]>,
}

impl DerivedKey {
    /// What the key is for.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// A fresh HMAC-SHA256 under this key.
    pub fn mac(&self) -> HmacSha256 {
        hmac_sha256(&self.key)
    }
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DerivedKey({:?}, ..)", self.purpose)
    }
}

/// HMAC-SHA256 under a 32-byte key. HMAC pads a key shorter than the
/// hash's block with zeros (RFC 2104, section 2), so giving it the padded
/// block is the same MAC, and a block of the right size cannot be refused
/// (unlike a slice, whose length is checked at run time).
fn hmac_sha256(key: &[u8; SECRET_BYTES]) -> HmacSha256 {
    let mut block = Zeroizing::new([0u8; BLOCK_BYTES]);
    block[..SECRET_BYTES].copy_from_slice(key);
    HmacSha256::new(&(*block).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_padded_key_is_hmac_under_the_key_itself() {
        // RFC 4231, test case 2 ("Jefe"), through the padded block.
        let mut key = [0u8; SECRET_BYTES];
        key[..4].copy_from_slice(b"Jefe");
        let mut mac = hmac_sha256(&key);
        mac.update(b"what do ya want for nothing?");
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(hex, expected);
        let mut by_slice = HmacSha256::new_from_slice(&key).unwrap();
        by_slice.update(b"x");
        let mut by_block = hmac_sha256(&key);
        by_block.update(b"x");
        assert_eq!(by_slice.finalize(), by_block.finalize());
    }

    #[test]
    fn derivation_is_hkdf_expand_of_one_block() {
        let secret = ServerSecret::new([9; SECRET_BYTES]);
        let label = Purpose::IdempotencyFingerprint.label();
        let mut mac = HmacSha256::new_from_slice(&[9; SECRET_BYTES]).unwrap();
        mac.update(label.as_bytes());
        mac.update(&[1]);
        let expected: [u8; SECRET_BYTES] = mac.finalize().into_bytes().into();
        let derived = secret.derive(Purpose::IdempotencyFingerprint);
        assert_eq!(*derived.key, expected);
        assert_eq!(derived.purpose(), Purpose::IdempotencyFingerprint);
    }

    #[test]
    fn purposes_and_secrets_derive_different_keys() {
        let labels: Vec<&str> = Purpose::ALL.iter().map(|p| p.label()).collect();
        for (index, label) in labels.iter().enumerate() {
            assert!(!labels[..index].contains(label), "{label} is used twice");
        }
        let one = ServerSecret::new([1; SECRET_BYTES]);
        let two = ServerSecret::new([2; SECRET_BYTES]);
        let keys = |secret: &ServerSecret| -> Vec<[u8; SECRET_BYTES]> {
            Purpose::ALL
                .iter()
                .map(|purpose| *secret.derive(*purpose).key)
                .collect()
        };
        let (ones, twos) = (keys(&one), keys(&two));
        assert_ne!(ones[0], ones[1], "one key per purpose");
        for (a, b) in ones.iter().zip(&twos) {
            assert_ne!(a, b, "another secret, other keys");
        }
        assert_eq!(keys(&one.clone()), ones, "the same secret, the same keys");
    }

    #[test]
    fn check_values_recognise_their_secret_only() {
        let secret = ServerSecret::generate().unwrap();
        let value = secret.check_value();
        assert!(secret.verify_check_value(&value));
        assert_eq!(secret.check_value(), value, "deterministic");
        assert!(!ServerSecret::generate().unwrap().verify_check_value(&value));
        assert!(!secret.verify_check_value("not base64!"));
        assert!(!secret.verify_check_value(""));
        assert!(!value.contains(&URL_SAFE_NO_PAD.encode(secret.expose())));
        assert_eq!(format!("{secret:?}"), "ServerSecret(..)");
        let derived = format!("{:?}", secret.derive(Purpose::SecretCheck));
        assert_eq!(derived, "DerivedKey(SecretCheck, ..)");
    }
}
