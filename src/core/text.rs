//! Validated user text: ticket subjects and message bodies.
//!
//! Text is kept exactly as sent (no trimming or normalisation); it must hold
//! at least one non-whitespace character, stay within a length counted in
//! Unicode scalar values, and contain no NUL characters.

use crate::core::crypto::SealedBody;

/// Why a piece of text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty, or only whitespace.
    #[error("must contain at least {min} non-whitespace character")]
    TooShort {
        /// The minimum length.
        min: usize,
    },
    /// Longer than the limit.
    #[error("must be at most {max} characters long (got {actual})")]
    TooLong {
        /// The maximum length in characters.
        max: usize,
        /// The length that was sent.
        actual: usize,
    },
    /// Contains a NUL character, which no store keeps faithfully.
    #[error("must not contain NUL characters")]
    ContainsNul,
}

fn check(text: &str, max: usize) -> Result<(), TextError> {
    if text.trim().is_empty() {
        return Err(TextError::TooShort { min: 1 });
    }
    let actual = text.chars().count();
    if actual > max {
        return Err(TextError::TooLong { max, actual });
    }
    if text.contains('\0') {
        return Err(TextError::ContainsNul);
    }
    Ok(())
}

/// A ticket subject: 1 to 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    /// The longest subject, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Validates a subject.
    pub fn parse(text: String) -> Result<Self, TextError> {
        check(&text, Self::MAX_CHARS)?;
        Ok(Self(text))
    }

    /// The subject text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes the text out.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A message body: 1 to 25,000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    /// The longest body, in characters (the limit the seed API publishes).
    pub const MAX_CHARS: usize = 25_000;

    /// Validates a message body.
    pub fn parse(text: String) -> Result<Self, TextError> {
        check(&text, Self::MAX_CHARS)?;
        Ok(Self(text))
    }

    /// The stored form of a body sealed for encryption at rest. Its
    /// plaintext was validated by [`MessageBody::parse`] before sealing; the
    /// sealed text is longer than the plaintext limit, and is kept whole.
    pub fn sealed(sealed: SealedBody) -> Self {
        Self(sealed.into_string())
    }

    /// The body text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes the text out.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_text_exactly_as_sent() {
        let body = MessageBody::parse("  hello\r\n".to_owned()).map(MessageBody::into_string);
        assert_eq!(body.as_deref(), Ok("  hello\r\n"));
    }

    #[test]
    fn counts_characters_not_bytes() {
        let at_limit = "é".repeat(Subject::MAX_CHARS);
        assert!(Subject::parse(at_limit).is_ok());
        let over = "é".repeat(Subject::MAX_CHARS + 1);
        assert_eq!(
            Subject::parse(over),
            Err(TextError::TooLong {
                max: 200,
                actual: 201
            })
        );
    }

    #[test]
    fn refuses_blank_and_nul() {
        assert_eq!(
            Subject::parse(String::new()),
            Err(TextError::TooShort { min: 1 })
        );
        assert_eq!(
            Subject::parse(" \n\t".to_owned()),
            Err(TextError::TooShort { min: 1 })
        );
        assert_eq!(
            MessageBody::parse("a\0b".to_owned()),
            Err(TextError::ContainsNul)
        );
    }

    #[test]
    fn message_limit_is_the_seeds() {
        assert!(MessageBody::parse("x".repeat(25_000)).is_ok());
        assert!(matches!(
            MessageBody::parse("x".repeat(25_001)),
            Err(TextError::TooLong { max: 25_000, .. })
        ));
    }
}
