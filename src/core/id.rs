//! Public identifiers: a type prefix and a ULID in lowercase Crockford base32
//! (`tkt_01hxa3b4c5d6e7f8g9h0j1k2m3`).
//!
//! The same 128 bits can be written as a UUID ([`uuid_text`],
//! [`parse_uuid`]), for the APIs whose clients know UUIDs. Ids minted now
//! ([`new_ulid`]) are RFC 9562 UUIDv7 values as well as ULIDs: both start
//! with the time in milliseconds (48 bits), and the bits a UUID reserves
//! for its version (7) and variant (`10`) are set in the ULID's random
//! part, leaving 74 random bits. Ids minted before keep working: they are
//! ULIDs, and their UUID form is still the same bits.

use std::fmt;
use std::str::FromStr;

use ulid::Ulid;

/// Defines a prefixed ULID newtype with parsing, formatting and generation.
macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Ulid);

        impl $name {
            /// The prefix that starts every id of this kind.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id: the current time and 74 random bits, a UUIDv7
            /// too ([`new_ulid`]).
            pub fn generate() -> Self {
                Self(new_ulid())
            }

            /// The id written as a UUID (the same 128 bits).
            pub fn to_uuid(&self) -> String {
                uuid_text(self.0)
            }

            /// Parses the UUID form of an id, in either case.
            pub fn from_uuid(text: &str) -> Option<Self> {
                parse_uuid(text).map(Self)
            }

            /// Wraps an existing ULID.
            pub fn from_ulid(ulid: Ulid) -> Self {
                Self(ulid)
            }

            /// The ULID inside the id.
            pub fn ulid(&self) -> Ulid {
                self.0
            }

            /// The bare ULID in lowercase, without the prefix: the form the
            /// stores keep.
            pub fn key(&self) -> String {
                lowercase(self.0, &mut [0; ulid::ULID_LEN]).to_owned()
            }

            /// Parses the bare lowercase or uppercase ULID a store kept.
            pub fn from_key(key: &str) -> Option<Self> {
                parse_ulid(key).map(Self)
            }

            /// Parses the public form `prefix_ulid`; `None` if it is not one.
            pub fn parse(text: &str) -> Option<Self> {
                text.strip_prefix($prefix).and_then(parse_ulid).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($prefix)?;
                f.write_str(lowercase(self.0, &mut [0; ulid::ULID_LEN]))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(text: &str) -> Result<Self, InvalidId> {
                Self::parse(text).ok_or(InvalidId { expected: $prefix })
            }
        }
    };
}

/// The bits of a UUID's version (the high nibble of its seventh byte).
const UUID_VERSION_BITS: u128 = 0xf << 76;
/// Version 7: time-ordered, from Unix milliseconds.
const UUID_VERSION_7: u128 = 0x7 << 76;
/// The bits of a UUID's variant (the top two of its ninth byte).
const UUID_VARIANT_BITS: u128 = 0x3 << 62;
/// RFC 9562's variant, `10`.
const UUID_VARIANT_RFC: u128 = 0x2 << 62;

/// A fresh ULID that is also an RFC 9562 UUIDv7: the current time in
/// milliseconds, version 7, the RFC variant and 74 random bits.
pub fn new_ulid() -> Ulid {
    as_uuid_v7(Ulid::new())
}

/// `ulid` with the UUIDv7 version and variant bits set.
fn as_uuid_v7(ulid: Ulid) -> Ulid {
    let bits = u128::from(ulid) & !UUID_VERSION_BITS & !UUID_VARIANT_BITS;
    Ulid::from(bits | UUID_VERSION_7 | UUID_VARIANT_RFC)
}

/// The 128 bits of `ulid` as a UUID: lowercase hex, hyphenated 8-4-4-4-12.
pub fn uuid_text(ulid: Ulid) -> String {
    let hex = format!("{:032x}", u128::from(ulid));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The ULID of the 128 bits a hyphenated UUID (36 characters, hex digits
/// in either case) writes; `None` for anything else.
pub fn parse_uuid(text: &str) -> Option<Ulid> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut bits: u128 = 0;
    for (at, byte) in bytes.iter().enumerate() {
        if matches!(at, 8 | 13 | 18 | 23) {
            if *byte != b'-' {
                return None;
            }
            continue;
        }
        let digit = char::from(*byte).to_digit(16)?;
        bits = (bits << 4) | u128::from(digit);
    }
    Some(Ulid::from(bits))
}

/// An opaque 128-bit id a client tags a message with, to find the
/// messages of one of its tasks again (AppHandoff's `task_id`). ticketd
/// keeps it and filters by it; it names nothing of ticketd's.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskRef(Ulid);

impl TaskRef {
    /// Parses the UUID form, in either case.
    pub fn from_uuid(text: &str) -> Option<Self> {
        parse_uuid(text).map(Self)
    }

    /// The UUID form, in lowercase.
    pub fn to_uuid(&self) -> String {
        uuid_text(self.0)
    }

    /// The bare lowercase ULID of the same bits: the form the stores keep.
    pub fn key(&self) -> String {
        lowercase(self.0, &mut [0; ulid::ULID_LEN]).to_owned()
    }

    /// Parses the form the stores keep.
    pub fn from_key(key: &str) -> Option<Self> {
        parse_ulid(key).map(Self)
    }
}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uuid())
    }
}

/// A string that is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid `{expected}` id")]
pub struct InvalidId {
    /// The prefix the id should have started with.
    pub expected: &'static str,
}

/// `ulid` in lowercase Crockford base32, spelled out in `buffer`: ids are
/// formatted on every request, so without an allocation of their own.
pub(crate) fn lowercase(ulid: Ulid, buffer: &mut [u8; ulid::ULID_LEN]) -> &str {
    let text = ulid.array_to_str(buffer);
    text.make_ascii_lowercase();
    text
}

/// Parses exactly 26 Crockford base32 characters in either case; rejects
/// anything longer, shorter or out of range, so that each id has one spelling.
fn parse_ulid(text: &str) -> Option<Ulid> {
    if text.len() != ulid::ULID_LEN {
        return None;
    }
    // 26 characters hold 130 bits; the first may only carry the top three of
    // the 128, or the decoder silently wraps around.
    if !(b'0'..=b'7').contains(&text.as_bytes()[0]) {
        return None;
    }
    Ulid::from_string(text).ok()
}

public_id!(
    /// A workspace: the isolation boundary nothing crosses.
    WorkspaceId,
    "ws_"
);
public_id!(
    /// A user of a workspace (customer, staff or automation).
    UserId,
    "usr_"
);
public_id!(
    /// An API key; the id is embedded in the key's token.
    KeyId,
    "key_"
);
public_id!(
    /// A support ticket.
    TicketId,
    "tkt_"
);
public_id!(
    /// A message in a ticket.
    MessageId,
    "tmsg_"
);
public_id!(
    /// A file a user uploaded, to attach to a message.
    UploadId,
    "upl_"
);
public_id!(
    /// One HTTP request, for correlating responses with logs.
    RequestId,
    "req_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_in_lowercase() {
        let id = TicketId::generate();
        let text = id.to_string();
        assert!(text.starts_with("tkt_"));
        assert_eq!(text.len(), 30);
        assert_eq!(text, text.to_ascii_lowercase());
        assert_eq!(TicketId::parse(&text), Some(id));
    }

    /// Whether `text` passes a strict UUIDv7 check: the hyphenated
    /// lowercase form, version 7 and the RFC variant.
    fn is_strict_uuid_v7(text: &str) -> bool {
        let bytes = text.as_bytes();
        bytes.len() == 36
            && bytes.iter().enumerate().all(|(at, byte)| match at {
                8 | 13 | 18 | 23 => *byte == b'-',
                14 => *byte == b'7',
                19 => matches!(byte, b'8' | b'9' | b'a' | b'b'),
                _ => byte.is_ascii_digit() || (b'a'..=b'f').contains(byte),
            })
    }

    /// Random 128-bit values, and the edges.
    fn samples() -> Vec<u128> {
        let mut values = vec![
            0,
            1,
            u128::MAX,
            u128::MAX >> 1,
            1 << 127,
            0x0123_4567_89ab_cdef,
        ];
        let mut bytes = [0u8; 16 * 2000];
        getrandom::fill(&mut bytes).expect("random bytes");
        values.extend(
            bytes
                .chunks_exact(16)
                .map(|chunk| u128::from_be_bytes(chunk.try_into().expect("16 bytes"))),
        );
        values
    }

    #[test]
    fn every_id_converts_between_its_uuid_and_ulid_forms_without_loss() {
        for bits in samples() {
            let id = TicketId::from_ulid(Ulid::from(bits));
            let uuid = id.to_uuid();
            assert_eq!(uuid.len(), 36);
            assert_eq!(uuid, uuid.to_ascii_lowercase());
            assert_eq!(TicketId::from_uuid(&uuid), Some(id), "{uuid}");
            assert_eq!(TicketId::from_uuid(&uuid.to_ascii_uppercase()), Some(id));
            // And the ULID form, in either case.
            assert_eq!(TicketId::from_key(&id.key()), Some(id));
            assert_eq!(TicketId::from_key(&id.key().to_ascii_uppercase()), Some(id));
            assert_eq!(u128::from(parse_uuid(&uuid).expect("a uuid")), bits);
        }
        for bad in [
            "",
            "0123456789abcdef0123456789abcdef",
            "01234567-89ab-cdef-0123-456789abcdef0",
            "01234567-89ab-cdef-0123_456789abcdef",
            "0123456789-ab-cdef-0123-456789abcdef",
            "01234567-89ab-cdef-0123-456789abcdeg",
            "+1234567-89ab-cdef-0123-456789abcdef",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn new_ids_are_strict_uuid_v7_values_and_ulids_of_now() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis();
        for _ in 0..2000 {
            let id = MessageId::generate();
            let uuid = id.to_uuid();
            assert!(is_strict_uuid_v7(&uuid), "{uuid}");
            assert!(u128::from(id.ulid().timestamp_ms()) >= before);
            assert_eq!(MessageId::parse(&id.to_string()), Some(id));
        }
        // Setting the bits keeps the time and whatever else was random.
        for bits in samples() {
            let ulid = Ulid::from(bits);
            let v7 = as_uuid_v7(ulid);
            assert!(is_strict_uuid_v7(&uuid_text(v7)));
            assert_eq!(v7.timestamp_ms(), ulid.timestamp_ms());
            let kept = !UUID_VERSION_BITS & !UUID_VARIANT_BITS;
            assert_eq!(u128::from(v7) & kept, bits & kept);
        }
    }

    #[test]
    fn the_seed_example_parses() {
        let id = TicketId::parse("tkt_01hxa3b4c5d6e7f8g9h0j1k2m3").map(|id| id.to_string());
        assert_eq!(id.as_deref(), Some("tkt_01hxa3b4c5d6e7f8g9h0j1k2m3"));
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for text in [
            "",
            "tkt_",
            "tkt_01hxa3b4c5d6e7f8g9h0j1k2m",
            "tkt_01hxa3b4c5d6e7f8g9h0j1k2m3x",
            "tmsg_01hxa3b4c5d6e7f8g9h0j1k2m3",
            "tkt_01hxa3b4c5d6e7f8g9h0j1k2u3",
            "tkt_81hxa3b4c5d6e7f8g9h0j1k2m3",
            "tkt_01hxa3b4c5d6e7f8g9h0j1k2m😀",
        ] {
            assert_eq!(TicketId::parse(text), None, "{text:?}");
        }
    }
}
