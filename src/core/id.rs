//! Public identifiers: a type prefix and a ULID in lowercase Crockford base32
//! (`tkt_01hxa3b4c5d6e7f8g9h0j1k2m3`).

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

            /// A fresh id: the current time and 80 random bits.
            pub fn generate() -> Self {
                Self(Ulid::new())
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
