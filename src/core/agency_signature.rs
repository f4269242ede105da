//! Agency signatures: the `X-Agency-Signature` value that a Daakey-style
//! white-label app sends with every request of the agency profile, naming
//! the agency (the workspace) it was built for.
//!
//! A signature is `v1.<payload>.<tag>`: the payload is base64url JSON
//! `{"agency_id", "agency_code", "kid", "iat"}` and the tag is base64url
//! HMAC-SHA256 of `v1.<payload>` under the server secret's
//! [`Purpose::AgencySignature`] key. `kid` is the workspace's current
//! signature generation, a random value the database keeps: minting a new
//! generation (`ticketd workspace rotate-signature`) revokes every
//! signature of the old one, for that workspace alone.
//!
//! The signature ships inside an app, so it is no secret from the app's
//! users: it selects and pins the agency, and proves that ticketd issued
//! that agency's value; the bearer key authorises, and must belong to the
//! workspace the signature names.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use serde::{Deserialize, Serialize};

use crate::core::access::KeyWorkspace;
use crate::core::crypto::CryptoError;
use crate::core::server_secret::{DerivedKey, Purpose, ServerSecret};
use crate::core::time::Timestamp;

/// The version prefix of every signature this module makes.
const VERSION: &str = "v1";

/// The longest header value looked at; anything longer is refused unread.
pub const MAX_SIGNATURE_BYTES: usize = 1024;

/// Random bytes of a signature generation.
const KID_BYTES: usize = 12;

/// The key agency signatures are made with, derived from the server secret.
#[derive(Clone, Debug)]
pub struct AgencySignatureKey(DerivedKey);

/// What a genuine signature says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAgency {
    /// The workspace's numeric id.
    pub agency_id: i64,
    /// The workspace's code.
    pub agency_code: String,
    /// The signature generation it was minted in.
    pub kid: String,
    /// When it was minted (seconds since the epoch).
    pub iat: i64,
}

impl SignedAgency {
    /// Whether it names `workspace` in its current generation.
    pub fn names(&self, workspace: &KeyWorkspace) -> bool {
        self.agency_id == workspace.numeric_id
            && self.agency_code == workspace.code
            && workspace.agency_signature_kid.as_deref() == Some(self.kid.as_str())
    }
}

/// A new random signature generation.
///
/// # Errors
/// Only if the operating system's random source fails.
pub fn new_generation() -> Result<String, CryptoError> {
    let mut bytes = [0u8; KID_BYTES];
    getrandom::fill(&mut bytes).map_err(|_| CryptoError::NoRandomness)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl AgencySignatureKey {
    /// The key `secret` derives for agency signatures.
    pub fn new(secret: &ServerSecret) -> Self {
        Self(secret.derive(Purpose::AgencySignature))
    }

    fn mac_of(&self, signed_part: &str) -> crate::core::server_secret::HmacSha256 {
        let mut mac = self.0.mac();
        mac.update(signed_part.as_bytes());
        mac
    }

    /// A signature for `workspace` in its current generation, minted at
    /// `now`; `None` if the workspace has no generation yet.
    pub fn mint(&self, workspace: &KeyWorkspace, now: Timestamp) -> Option<String> {
        let payload = SignedAgency {
            agency_id: workspace.numeric_id,
            agency_code: workspace.code.clone(),
            kid: workspace.agency_signature_kid.clone()?,
            iat: now.millis().div_euclid(1000),
        };
        let json = serde_json::to_vec(&payload).ok()?;
        let signed_part = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(json));
        let tag = self.mac_of(&signed_part).finalize().into_bytes();
        Some(format!("{signed_part}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// What `value` says, if ticketd made it: `None` for anything else
    /// (missing parts, bad encoding, a tag that does not match, compared
    /// in constant time). Costs at most [`MAX_SIGNATURE_BYTES`] of work.
    pub fn verify(&self, value: &str) -> Option<SignedAgency> {
        if value.len() > MAX_SIGNATURE_BYTES {
            return None;
        }
        let (signed_part, tag) = value.rsplit_once('.')?;
        let (version, payload) = signed_part.split_once('.')?;
        if version != VERSION {
            return None;
        }
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac_of(signed_part).verify_slice(&tag).ok()?;
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(kid: Option<&str>) -> KeyWorkspace {
        KeyWorkspace {
            numeric_id: 123,
            code: "AGENCY123".into(),
            agency_signature_kid: kid.map(str::to_owned),
        }
    }

    fn key() -> AgencySignatureKey {
        AgencySignatureKey::new(&ServerSecret::new([7; 32]))
    }

    #[test]
    fn a_minted_signature_names_its_workspace() {
        let agency = workspace(Some("gen-1"));
        let signature = key().mint(&agency, Timestamp::from_millis(1_700_000_000_000));
        let signed = signature.as_deref().and_then(|value| key().verify(value));
        assert_eq!(
            signed.as_ref().map(|signed| signed.iat),
            Some(1_700_000_000)
        );
        assert!(signed.is_some_and(|signed| signed.names(&agency)));
        assert_eq!(key().mint(&workspace(None), Timestamp::now()), None);
    }

    #[test]
    fn another_generation_or_agency_is_not_named() {
        let signature = key()
            .mint(&workspace(Some("gen-1")), Timestamp::now())
            .unwrap_or_default();
        let signed = key().verify(&signature).expect("genuine");
        assert!(!signed.names(&workspace(Some("gen-2"))));
        assert!(!signed.names(&workspace(None)));
        let other = KeyWorkspace {
            numeric_id: 124,
            ..workspace(Some("gen-1"))
        };
        assert!(!signed.names(&other));
    }

    #[test]
    fn altered_foreign_and_malformed_values_are_refused() {
        let agency = workspace(Some("gen-1"));
        let signature = key().mint(&agency, Timestamp::now()).unwrap_or_default();
        let foreign = AgencySignatureKey::new(&ServerSecret::new([8; 32]))
            .mint(&agency, Timestamp::now())
            .unwrap_or_default();
        let (signed_part, _) = signature.rsplit_once('.').unwrap_or_default();
        let forged_payload = URL_SAFE_NO_PAD
            .encode(br#"{"agency_id":124,"agency_code":"AGENCY123","kid":"gen-1","iat":0}"#);
        let (_, tag) = signature.rsplit_once('.').unwrap_or_default();
        let long = format!("{signature}{}", "A".repeat(MAX_SIGNATURE_BYTES));
        for bad in [
            String::new(),
            "{signature}".to_owned(),
            foreign,
            format!("{signed_part}."),
            format!("{signed_part}.AAAA"),
            format!("v1.{forged_payload}.{tag}"),
            format!("v2{}", &signature[2..]),
            signature.replacen('.', "..", 1),
            long,
        ] {
            assert_eq!(key().verify(&bad), None, "{bad}");
        }
    }
}
