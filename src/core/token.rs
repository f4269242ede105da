//! API key tokens: `tkd_<key ulid>_<secret>`.
//!
//! The key id inside the token lets the server find the key with one indexed
//! lookup; the 256-bit secret is stored only as its SHA-256 digest (a slow
//! password hash buys nothing for a secret with this much entropy) and is
//! compared in constant time.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::core::id::KeyId;

const TOKEN_PREFIX: &str = "tkd_";
const SECRET_BYTES: usize = 32;

/// The SHA-256 digest of a key's secret: all the server keeps of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Whether `secret` hashes to this digest, compared in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        let candidate = Sha256::digest(secret.as_bytes());
        bool::from(candidate.as_slice().ct_eq(&self.0))
    }

    /// The digest from stored bytes; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// A bearer token as a client presents it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// The key the token belongs to.
    pub key_id: KeyId,
    secret: String,
}

impl ApiToken {
    /// A new token for `key_id` with a fresh random secret.
    ///
    /// # Errors
    /// Fails only if the operating system's random source does.
    pub fn generate(key_id: KeyId) -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)?;
        let secret = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        Ok(Self { key_id, secret })
    }

    /// Parses a presented token; `None` if it is not of our form.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(TOKEN_PREFIX)?;
        let (key, secret) = rest.split_once('_')?;
        let key_id = KeyId::from_key(key)?;
        let well_formed = secret.len() == SECRET_BYTES * 2
            && secret
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| Self {
            key_id,
            secret: secret.to_owned(),
        })
    }

    /// The digest to store for this token's secret.
    pub fn secret_hash(&self) -> SecretHash {
        SecretHash(Sha256::digest(self.secret.as_bytes()).into())
    }

    /// Whether this token's secret matches a stored digest.
    pub fn verify(&self, stored: &SecretHash) -> bool {
        stored.matches(&self.secret)
    }

    /// The full token text, to show the key's creator once.
    pub fn expose(&self) -> String {
        format!("{TOKEN_PREFIX}{}_{}", self.key_id.key(), self.secret)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_verify() -> Result<(), getrandom::Error> {
        let token = ApiToken::generate(KeyId::generate())?;
        let parsed = ApiToken::parse(&token.expose());
        assert_eq!(parsed.as_ref(), Some(&token));
        assert!(token.verify(&token.secret_hash()));
        let other = ApiToken::generate(token.key_id)?;
        assert!(!other.verify(&token.secret_hash()));
        Ok(())
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let key = KeyId::generate().key();
        let secret = "ab".repeat(32);
        assert!(ApiToken::parse(&format!("tkd_{key}_{secret}")).is_some());
        for text in [
            String::new(),
            format!("{key}_{secret}"),
            format!("tkd_{key}{secret}"),
            format!("tkd_{key}_{}", &secret[1..]),
            format!("tkd_{key}_{}", secret.to_uppercase()),
            format!("tkd_{}_{secret}", &key[1..]),
            format!("tkd_{key}_{secret}0"),
        ] {
            assert_eq!(ApiToken::parse(&text), None, "{text:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() -> Result<(), getrandom::Error> {
        let token = ApiToken::generate(KeyId::generate())?;
        let shown = format!("{token:?}");
        assert!(!shown.contains(&token.expose()[31..]));
        Ok(())
    }
}
