//! Encryption at rest of message bodies marked `encrypted`.
//!
//! A body is sealed with XChaCha20-Poly1305 under a data key, with a fresh
//! random 192-bit nonce per message (random nonces of that size never
//! repeat in practice, so no counter has to be kept across nodes) and the
//! envelope's version, the key id, the ticket id and the message id as
//! associated data: a sealed body moved to another message, or relabelled
//! with another key id, fails to open just as an edited one does.
//!
//! The stored form is text, so both stores keep it in the `body` column:
//!
//! ```text
//! tkdenc:v1:<key id, 26 characters>:<base64url(nonce || ciphertext || tag)>
//! ```
//!
//! Uploads marked `encrypted` are sealed by envelope: each has a random
//! content key of its own ([`ContentKey`]) that seals its bytes as a
//! stream of records ([`stream`]), and the content key is kept in the
//! upload's row sealed under a data key, bound to the upload:
//!
//! ```text
//! tkdupl:v1:<key id, 26 characters>:<base64url(nonce || sealed content key || tag)>
//! ```
//!
//! A rotation re-seals only that short text; the bytes never change.
//!
//! Key material comes in as values; reading and writing key files is
//! [`crate::encryption`]'s business.

pub mod stream;

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use ulid::Ulid;
use zeroize::Zeroizing;

use crate::core::id::{MessageId, TicketId, UploadId};

/// What every sealed body starts with.
pub const ENVELOPE_PREFIX: &str = "tkdenc:v1:";

/// What every sealed content key of an upload starts with.
pub const CONTENT_KEY_PREFIX: &str = "tkdupl:v1:";

/// Bytes of a data key.
pub const KEY_BYTES: usize = 32;

const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
const KEY_ID_CHARS: usize = 26;

/// The plaintext of a key check value.
const CHECK_PLAINTEXT: &[u8] = b"ticketd data key check";

/// A data key's id: a ULID in lowercase, 26 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataKeyId(Ulid);

impl DataKeyId {
    /// A fresh id (ordered by creation time).
    pub fn generate() -> Self {
        Self(Ulid::new())
    }

    /// Parses the 26-character lowercase form.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != KEY_ID_CHARS || text.bytes().any(|byte| byte.is_ascii_uppercase()) {
            return None;
        }
        Ulid::from_string(text).ok().map(Self)
    }
}

impl fmt::Display for DataKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::core::id::lowercase(self.0, &mut [0; ulid::ULID_LEN]))
    }
}

impl fmt::Debug for DataKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One data key: its id and its secret. The secret is wiped from memory
/// when the key is dropped, and never shown by `Debug`.
#[derive(Clone)]
pub struct DataKey {
    id: DataKeyId,
    secret: Zeroizing<[u8; KEY_BYTES]>,
}

impl DataKey {
    /// A key from its id and secret.
    pub fn new(id: DataKeyId, secret: [u8; KEY_BYTES]) -> Self {
        Self {
            id,
            secret: Zeroizing::new(secret),
        }
    }

    /// A new key with a fresh id and random secret.
    ///
    /// # Errors
    /// Only if the operating system's random source fails.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut secret = Zeroizing::new([0u8; KEY_BYTES]);
        getrandom::fill(secret.as_mut()).map_err(|_| CryptoError::NoRandomness)?;
        Ok(Self {
            id: DataKeyId::generate(),
            secret,
        })
    }

    /// The key's id.
    pub fn id(&self) -> DataKeyId {
        self.id
    }

    /// The secret, for writing it to a key file.
    pub fn secret(&self) -> &[u8; KEY_BYTES] {
        &self.secret
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(self.secret.as_ref()))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({}, ..)", self.id)
    }
}

/// Why encrypting or decrypting failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The operating system's random source failed.
    #[error("the operating system's random source failed")]
    NoRandomness,
    /// The body is not a sealed body at all.
    #[error("the body is not sealed")]
    NotSealed,
    /// The body starts like a sealed body but is not one.
    #[error("the sealed body is malformed")]
    Malformed,
    /// The body was sealed with a key the keyring does not hold.
    #[error("the body was sealed with key {0}, which the key file does not hold")]
    UnknownKey(DataKeyId),
    /// Authentication failed: the body, its key id or its place (ticket
    /// and message) were changed, or the key is not the one it was sealed
    /// with.
    #[error("the sealed body failed authentication (altered, moved or under another key)")]
    Forged,
    /// The plaintext is too long to seal (never for a valid message body).
    #[error("the body cannot be sealed")]
    Unsealable,
}

/// The keys a ticketd holds, oldest first. New bodies are sealed with the
/// newest ([`Keyring::current`]); any of them opens what it sealed.
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<DataKey>,
}

impl Keyring {
    /// A keyring of `keys`, oldest first.
    ///
    /// # Errors
    /// A message if there is no key or an id is repeated.
    pub fn new(keys: Vec<DataKey>) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("it holds no key".into());
        }
        for (index, key) in keys.iter().enumerate() {
            if keys[..index].iter().any(|earlier| earlier.id == key.id) {
                return Err(format!("key {} appears twice", key.id));
            }
        }
        Ok(Self { keys })
    }

    /// The key new bodies are sealed with: the newest.
    pub fn current(&self) -> &DataKey {
        // `new` refuses an empty keyring; the fallback is never taken.
        &self.keys[self.keys.len().saturating_sub(1)]
    }

    /// The key with this id.
    pub fn get(&self, id: DataKeyId) -> Option<&DataKey> {
        self.keys.iter().find(|key| key.id == id)
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> &[DataKey] {
        &self.keys
    }
}

/// A sealed message body, as stored: only [`seal`] makes one.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBody(String);

impl SealedBody {
    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes the stored text out.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for SealedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedBody({} chars)", self.0.len())
    }
}

/// What a sealed text is: a message body, or the stored response of an
/// idempotent reply. Each is bound to its kind as well as to its ticket and
/// message, so one can never be passed off as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sealing {
    Body,
    Response,
}

/// The associated data of a sealed text: what its ciphertext is bound to.
fn associated_data(
    sealing: Sealing,
    key: DataKeyId,
    ticket: TicketId,
    message: MessageId,
) -> String {
    let domain = match sealing {
        Sealing::Body => ENVELOPE_PREFIX,
        Sealing::Response => "tkdresp:v1:",
    };
    format!("{domain}{key}:{}:{}", ticket.key(), message.key())
}

/// Seals `plaintext` as the body of `message` in `ticket`, under `key`,
/// with a fresh random nonce.
///
/// # Errors
/// `NoRandomness` if the random source fails.
pub fn seal(
    key: &DataKey,
    ticket: TicketId,
    message: MessageId,
    plaintext: &str,
) -> Result<SealedBody, CryptoError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|_| CryptoError::NoRandomness)?;
    seal_with_nonce(key, ticket, message, plaintext, nonce)
}

/// [`seal`] with a given nonce (which must never be used twice with one
/// key; for tests).
///
/// # Errors
/// `Unsealable` only for a plaintext of gigabytes.
pub fn seal_with_nonce(
    key: &DataKey,
    ticket: TicketId,
    message: MessageId,
    plaintext: &str,
    nonce: [u8; NONCE_BYTES],
) -> Result<SealedBody, CryptoError> {
    seal_as(Sealing::Body, key, ticket, message, plaintext, nonce)
}

/// Seals the stored response (JSON) of an idempotent reply to `message`,
/// under `key`, with a fresh random nonce: kept like the message's body,
/// but bound as a response.
///
/// # Errors
/// `NoRandomness` if the random source fails.
pub fn seal_response(
    key: &DataKey,
    ticket: TicketId,
    message: MessageId,
    response: &str,
) -> Result<SealedBody, CryptoError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|_| CryptoError::NoRandomness)?;
    seal_as(Sealing::Response, key, ticket, message, response, nonce)
}

fn seal_as(
    sealing: Sealing,
    key: &DataKey,
    ticket: TicketId,
    message: MessageId,
    plaintext: &str,
    nonce: [u8; NONCE_BYTES],
) -> Result<SealedBody, CryptoError> {
    let aad = associated_data(sealing, key.id, ticket, message);
    let ciphertext = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Unsealable)?;
    let mut payload = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
    payload.extend_from_slice(&nonce);
    payload.extend_from_slice(&ciphertext);
    Ok(SealedBody(format!(
        "{ENVELOPE_PREFIX}{}:{}",
        key.id,
        URL_SAFE_NO_PAD.encode(payload)
    )))
}

/// Whether a stored body is in the sealed form (whether or not it opens).
pub fn is_sealed(body: &str) -> bool {
    body.starts_with(ENVELOPE_PREFIX)
}

/// The key id and the decoded payload of a sealed body.
fn parse_envelope(body: &str) -> Result<(DataKeyId, Vec<u8>), CryptoError> {
    parse_envelope_of(ENVELOPE_PREFIX, body)
}

/// The key id and the decoded payload of an envelope starting with `prefix`.
fn parse_envelope_of(prefix: &str, body: &str) -> Result<(DataKeyId, Vec<u8>), CryptoError> {
    let rest = body.strip_prefix(prefix).ok_or(CryptoError::NotSealed)?;
    let (key, payload) = rest.split_once(':').ok_or(CryptoError::Malformed)?;
    let key = DataKeyId::parse(key).ok_or(CryptoError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| CryptoError::Malformed)?;
    if payload.len() < NONCE_BYTES + TAG_BYTES {
        return Err(CryptoError::Malformed);
    }
    Ok((key, payload))
}

/// The id of the key a sealed body claims to be sealed with.
pub fn sealed_key_id(body: &str) -> Option<DataKeyId> {
    parse_envelope(body).ok().map(|(key, _)| key)
}

/// Opens the sealed body of `message` in `ticket`.
///
/// # Errors
/// `NotSealed` or `Malformed` for text that is no sealed body,
/// `UnknownKey` if the keyring lacks its key, `Forged` if it fails
/// authentication.
pub fn open(
    keyring: &Keyring,
    ticket: TicketId,
    message: MessageId,
    body: &str,
) -> Result<String, CryptoError> {
    open_as(Sealing::Body, keyring, ticket, message, body)
}

/// Opens a response sealed by [`seal_response`].
///
/// # Errors
/// As [`open`]; a sealed message body is `Forged` here.
pub fn open_response(
    keyring: &Keyring,
    ticket: TicketId,
    message: MessageId,
    sealed: &str,
) -> Result<String, CryptoError> {
    open_as(Sealing::Response, keyring, ticket, message, sealed)
}

fn open_as(
    sealing: Sealing,
    keyring: &Keyring,
    ticket: TicketId,
    message: MessageId,
    body: &str,
) -> Result<String, CryptoError> {
    let (key_id, payload) = parse_envelope(body)?;
    let key = keyring.get(key_id).ok_or(CryptoError::UnknownKey(key_id))?;
    let (nonce, ciphertext) = payload.split_at(NONCE_BYTES);
    let aad = associated_data(sealing, key_id, ticket, message);
    let plaintext = key
        .cipher()
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Forged)?;
    String::from_utf8(plaintext).map_err(|_| CryptoError::Forged)
}

/// The key that seals one upload's bytes ([`stream`]): random, its own,
/// and kept only sealed under a data key ([`seal_content_key`]). Wiped
/// from memory when dropped; never shown by `Debug`.
#[derive(Clone)]
pub struct ContentKey(Zeroizing<[u8; KEY_BYTES]>);

impl ContentKey {
    /// A new random content key.
    ///
    /// # Errors
    /// Only if the operating system's random source fails.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut secret = Zeroizing::new([0u8; KEY_BYTES]);
        getrandom::fill(secret.as_mut()).map_err(|_| CryptoError::NoRandomness)?;
        Ok(Self(secret))
    }

    /// A content key from its bytes (for tests and for opening).
    pub fn new(secret: [u8; KEY_BYTES]) -> Self {
        Self(Zeroizing::new(secret))
    }
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentKey(..)")
    }
}

/// The associated data of a sealed content key: its envelope's version,
/// the data key's id and the upload's id.
fn content_key_data(key: DataKeyId, upload: UploadId) -> String {
    format!("{CONTENT_KEY_PREFIX}{key}:{}", upload.key())
}

/// Seals the content key of `upload` under the data key `key`, with a
/// fresh random nonce; the text is what the upload's row keeps.
///
/// # Errors
/// `NoRandomness` if the random source fails.
pub fn seal_content_key(
    key: &DataKey,
    upload: UploadId,
    content_key: &ContentKey,
) -> Result<String, CryptoError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|_| CryptoError::NoRandomness)?;
    let aad = content_key_data(key.id, upload);
    let ciphertext = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: content_key.0.as_ref(),
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Unsealable)?;
    let mut payload = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
    payload.extend_from_slice(&nonce);
    payload.extend_from_slice(&ciphertext);
    Ok(format!(
        "{CONTENT_KEY_PREFIX}{}:{}",
        key.id,
        URL_SAFE_NO_PAD.encode(payload)
    ))
}

/// The id of the data key a sealed content key claims to be sealed with.
pub fn content_key_id(sealed: &str) -> Option<DataKeyId> {
    parse_envelope_of(CONTENT_KEY_PREFIX, sealed)
        .ok()
        .map(|(key, _)| key)
}

/// Opens the sealed content key of `upload`.
///
/// # Errors
/// `NotSealed` or `Malformed` for text that is no sealed content key,
/// `UnknownKey` if the keyring lacks its data key, `Forged` if it fails
/// authentication (altered, or another upload's).
pub fn open_content_key(
    keyring: &Keyring,
    upload: UploadId,
    sealed: &str,
) -> Result<ContentKey, CryptoError> {
    let (key_id, payload) = parse_envelope_of(CONTENT_KEY_PREFIX, sealed)?;
    let key = keyring.get(key_id).ok_or(CryptoError::UnknownKey(key_id))?;
    let (nonce, ciphertext) = payload.split_at(NONCE_BYTES);
    let aad = content_key_data(key_id, upload);
    let plaintext = Zeroizing::new(
        key.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Forged)?,
    );
    let secret: [u8; KEY_BYTES] = plaintext
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::Forged)?;
    Ok(ContentKey::new(secret))
}

/// A key check value: a constant sealed under `key`, stored beside the
/// data so that a key file that does not belong to it is recognised before
/// anything is read or written with it. It reveals nothing of the key.
///
/// # Errors
/// `NoRandomness` if the random source fails.
pub fn check_value(key: &DataKey) -> Result<String, CryptoError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|_| CryptoError::NoRandomness)?;
    let aad = format!("tkdenc:check:{}", key.id);
    let ciphertext = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: CHECK_PLAINTEXT,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Unsealable)?;
    let mut payload = nonce.to_vec();
    payload.extend_from_slice(&ciphertext);
    Ok(URL_SAFE_NO_PAD.encode(payload))
}

/// Whether `value` is a check value made with exactly this key.
pub fn verify_check_value(key: &DataKey, value: &str) -> bool {
    let Ok(payload) = URL_SAFE_NO_PAD.decode(value) else {
        return false;
    };
    if payload.len() < NONCE_BYTES + TAG_BYTES {
        return false;
    }
    let (nonce, ciphertext) = payload.split_at(NONCE_BYTES);
    let aad = format!("tkdenc:check:{}", key.id);
    key.cipher()
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .is_ok_and(|plaintext| plaintext == CHECK_PLAINTEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> DataKey {
        DataKey::new(DataKeyId::generate(), [byte; KEY_BYTES])
    }

    #[test]
    fn sealed_bodies_open_to_the_plaintext_and_hide_it() {
        let key = key(7);
        let keyring = Keyring::new(vec![key.clone()]).unwrap();
        let (ticket, message) = (TicketId::generate(), MessageId::generate());
        let plaintext = "My password is hunter2 ✓";
        let sealed = seal(&key, ticket, message, plaintext).unwrap();
        assert!(is_sealed(sealed.as_str()));
        assert!(!sealed.as_str().contains("hunter2"));
        assert_eq!(sealed_key_id(sealed.as_str()), Some(key.id()));
        assert_eq!(
            open(&keyring, ticket, message, sealed.as_str()).as_deref(),
            Ok(plaintext)
        );
        // A fresh nonce each time: the same text never seals alike.
        let again = seal(&key, ticket, message, plaintext).unwrap();
        assert_ne!(again, sealed);
    }

    #[test]
    fn a_sealed_response_and_a_sealed_body_are_not_interchangeable() {
        let key = key(3);
        let keyring = Keyring::new(vec![key.clone()]).unwrap();
        let (ticket, message) = (TicketId::generate(), MessageId::generate());
        let response = seal_response(&key, ticket, message, r#"{"body":"x"}"#).unwrap();
        assert_eq!(
            open_response(&keyring, ticket, message, response.as_str()).as_deref(),
            Ok(r#"{"body":"x"}"#)
        );
        assert_eq!(
            open(&keyring, ticket, message, response.as_str()),
            Err(CryptoError::Forged)
        );
        let body = seal(&key, ticket, message, "x").unwrap();
        assert_eq!(
            open_response(&keyring, ticket, message, body.as_str()),
            Err(CryptoError::Forged)
        );
    }

    #[test]
    fn altered_moved_or_relabelled_bodies_fail_authentication() {
        let key = key(1);
        let other = key_with_id(2, key.id());
        let keyring = Keyring::new(vec![key.clone()]).unwrap();
        let (ticket, message) = (TicketId::generate(), MessageId::generate());
        let sealed = seal(&key, ticket, message, "secret").unwrap();
        let text = sealed.as_str();

        // One character inside the ciphertext changed.
        let at = text.len() - 10;
        let swapped = if &text[at..=at] == "A" { "B" } else { "A" };
        let altered = format!("{}{swapped}{}", &text[..at], &text[at + 1..]);
        assert_eq!(
            open(&keyring, ticket, message, &altered),
            Err(CryptoError::Forged)
        );
        // The same body presented as another message's, or another ticket's.
        assert_eq!(
            open(&keyring, ticket, MessageId::generate(), text),
            Err(CryptoError::Forged)
        );
        assert_eq!(
            open(&keyring, TicketId::generate(), message, text),
            Err(CryptoError::Forged)
        );
        // The right id but the wrong key material.
        let wrong = Keyring::new(vec![other]).unwrap();
        assert_eq!(
            open(&wrong, ticket, message, text),
            Err(CryptoError::Forged)
        );
        // Relabelled with another key's id.
        let newer = self::key(3);
        let both = Keyring::new(vec![key.clone(), newer.clone()]).unwrap();
        let relabelled = text.replace(&key.id().to_string(), &newer.id().to_string());
        assert_eq!(
            open(&both, ticket, message, &relabelled),
            Err(CryptoError::Forged)
        );
    }

    fn key_with_id(byte: u8, id: DataKeyId) -> DataKey {
        DataKey::new(id, [byte; KEY_BYTES])
    }

    #[test]
    fn what_is_not_a_sealed_body_is_named() {
        let keyring = Keyring::new(vec![key(1)]).unwrap();
        let (ticket, message) = (TicketId::generate(), MessageId::generate());
        let open = |body: &str| open(&keyring, ticket, message, body);
        assert_eq!(open("plain text"), Err(CryptoError::NotSealed));
        assert_eq!(open("tkdenc:v1:"), Err(CryptoError::Malformed));
        assert_eq!(open("tkdenc:v1:nokey:AAAA"), Err(CryptoError::Malformed));
        let unknown = DataKeyId::generate();
        let short = format!("tkdenc:v1:{unknown}:AAAA");
        assert_eq!(open(&short), Err(CryptoError::Malformed));
        let sealed = seal(&key(9), ticket, message, "x").unwrap();
        let id = sealed_key_id(sealed.as_str()).unwrap();
        assert_eq!(open(sealed.as_str()), Err(CryptoError::UnknownKey(id)));
    }

    #[test]
    fn the_newest_key_is_current_and_older_ones_still_open() {
        let old = key(1);
        let new = key(2);
        let (ticket, message) = (TicketId::generate(), MessageId::generate());
        let by_old = seal(&old, ticket, message, "before").unwrap();
        let keyring = Keyring::new(vec![old.clone(), new.clone()]).unwrap();
        assert_eq!(keyring.current().id(), new.id());
        assert_eq!(
            open(&keyring, ticket, message, by_old.as_str()).as_deref(),
            Ok("before")
        );
        assert!(Keyring::new(Vec::new()).is_err());
        assert!(Keyring::new(vec![old.clone(), old]).is_err());
    }

    #[test]
    fn check_values_recognise_their_key_only() {
        let key = key(5);
        let value = check_value(&key).unwrap();
        assert!(verify_check_value(&key, &value));
        assert!(!verify_check_value(&key_with_id(6, key.id()), &value));
        assert!(!verify_check_value(&self::key(5), &value), "another id");
        assert!(!verify_check_value(&key, "not base64!"));
        assert!(!format!("{key:?}").contains("5, 5"));
    }

    #[test]
    fn content_keys_open_for_their_upload_only() {
        let old = key(1);
        let new = key(2);
        let keyring = Keyring::new(vec![old.clone(), new.clone()]).unwrap();
        let upload = UploadId::generate();
        let content = ContentKey::new([9; KEY_BYTES]);
        let sealed = seal_content_key(&old, upload, &content).unwrap();
        assert!(sealed.starts_with(CONTENT_KEY_PREFIX));
        assert_eq!(content_key_id(&sealed), Some(old.id()));
        let opened = open_content_key(&keyring, upload, &sealed).unwrap();
        assert_eq!(*opened.0, [9; KEY_BYTES]);
        assert_eq!(format!("{opened:?}"), "ContentKey(..)");
        // Another upload's, relabelled, or a message body: all refused.
        assert_eq!(
            open_content_key(&keyring, UploadId::generate(), &sealed).map(|_| ()),
            Err(CryptoError::Forged)
        );
        let relabelled = sealed.replace(&old.id().to_string(), &new.id().to_string());
        assert_eq!(
            open_content_key(&keyring, upload, &relabelled).map(|_| ()),
            Err(CryptoError::Forged)
        );
        let body = seal(&old, TicketId::generate(), MessageId::generate(), "x").unwrap();
        assert_eq!(
            open_content_key(&keyring, upload, body.as_str()).map(|_| ()),
            Err(CryptoError::NotSealed)
        );
        let lone = Keyring::new(vec![new]).unwrap();
        assert_eq!(
            open_content_key(&lone, upload, &sealed).map(|_| ()),
            Err(CryptoError::UnknownKey(old.id()))
        );
    }

    #[test]
    fn key_ids_are_lowercase_ulids() {
        let id = DataKeyId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 26);
        assert_eq!(DataKeyId::parse(&text), Some(id));
        assert_eq!(DataKeyId::parse(&text.to_ascii_uppercase()), None);
        assert_eq!(DataKeyId::parse("short"), None);
    }
}
