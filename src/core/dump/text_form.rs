//! How core values are spelled inside a dump: each as a JSON string in its
//! one canonical form (public ids, RFC 3339 times, storage names), so that
//! the same data always gives the same bytes and every value is checked as
//! it is read.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Unexpected, Visitor};
use serde::ser::{SerializeSeq, Serializer};

use crate::core::access::{Role, Scope, Scopes};
use crate::core::id::{KeyId, MessageId, TaskRef, TicketId, UploadId, UserId, WorkspaceId};
use crate::core::message::BodyFormat;
use crate::core::ticket::{Category, Priority, TicketStatus};
use crate::core::time::Timestamp;
use crate::core::token::SecretHash;

/// A value with one canonical spelling as text.
pub(crate) trait TextForm: Sized {
    /// What the text must be, for error messages ("a usr_ id").
    const EXPECTED: &'static str;

    /// The canonical text; `Err` if the value has none.
    fn to_text(&self) -> Result<String, String>;

    /// Parses the canonical text; `None` for anything else.
    fn from_text(text: &str) -> Option<Self>;
}

macro_rules! id_text_form {
    ($($id:ty => $expected:literal),* $(,)?) => {
        $(
            impl TextForm for $id {
                const EXPECTED: &'static str = $expected;

                fn to_text(&self) -> Result<String, String> {
                    Ok(self.to_string())
                }

                fn from_text(text: &str) -> Option<Self> {
                    // Ids are written in lowercase; one spelling per id keeps
                    // dumps byte-comparable.
                    Self::parse(text).filter(|id| id.to_string() == text)
                }
            }
        )*
    };
}

id_text_form!(
    WorkspaceId => "a ws_ id in lowercase",
    UserId => "a usr_ id in lowercase",
    KeyId => "a key_ id in lowercase",
    TicketId => "a tkt_ id in lowercase",
    MessageId => "a tmsg_ id in lowercase",
    UploadId => "an upl_ id in lowercase",
);

macro_rules! named_text_form {
    ($($named:ty => $expected:literal),* $(,)?) => {
        $(
            impl TextForm for $named {
                const EXPECTED: &'static str = $expected;

                fn to_text(&self) -> Result<String, String> {
                    Ok(self.as_str().to_owned())
                }

                fn from_text(text: &str) -> Option<Self> {
                    Self::parse(text)
                }
            }
        )*
    };
}

named_text_form!(
    Role => "customer, staff or automation",
    TicketStatus => "open, in_progress, awaiting_response, resolved or closed",
    Priority => "low, normal, high or urgent",
    BodyFormat => "plain or markdown",
    Scope => "read:support or write:support",
);

impl TextForm for TaskRef {
    const EXPECTED: &'static str = "a UUID in lowercase";

    fn to_text(&self) -> Result<String, String> {
        Ok(self.to_uuid())
    }

    fn from_text(text: &str) -> Option<Self> {
        Self::from_uuid(text).filter(|task| task.to_uuid() == text)
    }
}

impl TextForm for Category {
    const EXPECTED: &'static str =
        "a category: 1 to 64 lowercase letters, digits, _ and -, starting with a letter";

    fn to_text(&self) -> Result<String, String> {
        Ok(self.as_str().to_owned())
    }

    fn from_text(text: &str) -> Option<Self> {
        Category::parse(text)
    }
}

impl TextForm for Timestamp {
    const EXPECTED: &'static str =
        "an RFC 3339 UTC time with milliseconds (2026-04-27T12:00:00.000Z)";

    fn to_text(&self) -> Result<String, String> {
        let text = self.to_string();
        // Years outside 0000-9999 have no RFC 3339 form; refuse to write a
        // dump that could not be read back.
        if Timestamp::parse_rfc3339(&text) == Some(*self) {
            Ok(text)
        } else {
            Err(format!(
                "the time {} ms since the epoch has no RFC 3339 form",
                self.millis()
            ))
        }
    }

    fn from_text(text: &str) -> Option<Self> {
        Timestamp::parse_rfc3339(text)
    }
}

impl TextForm for SecretHash {
    const EXPECTED: &'static str = "64 lowercase hexadecimal digits";

    fn to_text(&self) -> Result<String, String> {
        Ok(self.0.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    fn from_text(text: &str) -> Option<Self> {
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let mut hash = [0u8; 32];
        for (byte, pair) in hash.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
        }
        Some(SecretHash(hash))
    }
}

fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

struct TextVisitor<T>(PhantomData<T>);

impl<T: TextForm> Visitor<'_> for TextVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        T::from_text(text).ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
    }
}

/// `#[serde(with = "text")]`: a value as its canonical text.
pub(crate) mod text {
    use serde::ser::Error as _;

    use super::*;

    pub(crate) fn serialize<T: TextForm, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_text().map_err(S::Error::custom)?)
    }

    pub(crate) fn deserialize<'de, T: TextForm, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        deserializer.deserialize_str(TextVisitor(PhantomData))
    }
}

/// `#[serde(with = "optional_text")]`: an optional value as its canonical
/// text or `null`. The member must be present either way.
pub(crate) mod optional_text {
    use super::*;

    pub(crate) fn serialize<T: TextForm, S: Serializer>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::text::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, T: TextForm, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        deserializer.deserialize_option(OptionalVisitor(PhantomData))
    }

    struct OptionalVisitor<T>(PhantomData<T>);

    impl<'de, T: TextForm> Visitor<'de> for OptionalVisitor<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "null or {}", T::EXPECTED)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        // serde's buffered content (tagged enums, flattening) hands `null` over
        // as a unit.
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
            super::text::deserialize(inner).map(Some)
        }
    }
}

/// `#[serde(with = "scope_list")]`: a key's scopes as an array of names in
/// canonical order.
pub(crate) mod scope_list {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        scopes: &Scopes,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for scope in scopes.iter() {
            seq.serialize_element(scope.as_str())?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Scopes, D::Error> {
        deserializer.deserialize_seq(ScopesVisitor)
    }

    struct ScopesVisitor;

    impl<'de> Visitor<'de> for ScopesVisitor {
        type Value = Scopes;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of scope names")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut names: A) -> Result<Scopes, A::Error> {
            let mut scopes = Vec::new();
            while let Some(scope) = names.next_element_seed(ScopeSeed)? {
                scopes.push(scope);
            }
            Ok(scopes.into_iter().collect())
        }
    }

    struct ScopeSeed;

    impl<'de> de::DeserializeSeed<'de> for ScopeSeed {
        type Value = Scope;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Scope, D::Error> {
            super::text::deserialize(deserializer)
        }
    }
}
