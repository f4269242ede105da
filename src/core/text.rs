//! Validated user text: ticket subjects and message bodies.
//!
//! Text is kept exactly as sent (no trimming or normalisation); it must hold
//! at least one non-whitespace character, stay within a length counted in
//! Unicode scalar values (or, for an API whose limits count so, in UTF-16
//! code units: [`Counting`]), and contain no NUL characters.
//!
//! The canonical API publishes 200 characters for a subject and 25,000 for
//! a message; an operator may lower them with [`TextLimits`], never raise
//! them. A profile that publishes longer subjects gets up to
//! [`Subject::MAX_STORED_CHARS`] (255), the most a [`Subject`] ever holds.

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
    /// Shorter than an API's minimum (beyond not being blank).
    #[error("must be at least {min} characters long (got {actual})")]
    TooFew {
        /// The minimum length.
        min: usize,
        /// The length that was sent.
        actual: usize,
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

/// How a length is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Counting {
    /// In Unicode scalar values (characters): the canonical API's way.
    #[default]
    Chars,
    /// In UTF-16 code units, as JavaScript's `length` (and validators
    /// built on it, such as Zod's) counts: a character outside the Basic
    /// Multilingual Plane counts twice.
    Utf16Units,
}

impl Counting {
    /// The length of `text`, counted this way.
    pub fn len(self, text: &str) -> usize {
        match self {
            Counting::Chars => text.chars().count(),
            Counting::Utf16Units => text.encode_utf16().count(),
        }
    }
}

fn check(text: &str, (min, max): (usize, usize), counting: Counting) -> Result<(), TextError> {
    if text.trim().is_empty() {
        return Err(TextError::TooShort { min: 1 });
    }
    let actual = counting.len(text);
    if actual < min {
        return Err(TextError::TooFew { min, actual });
    }
    if actual > max {
        return Err(TextError::TooLong { max, actual });
    }
    if text.contains('\0') {
        return Err(TextError::ContainsNul);
    }
    Ok(())
}

/// The longest subject and message a deployment accepts, in characters.
///
/// Invariant: each is at least 1 and at most the stored limit
/// ([`Subject::MAX_STORED_CHARS`], [`MessageBody::MAX_CHARS`]);
/// [`TextLimits::new`] keeps an operator's within the canonical published
/// ones, and [`TextLimits::with_published_subject`] goes no further than
/// the stored one, so parsing within these limits never produces text
/// longer than the types allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLimits {
    subject_chars: usize,
    message_chars: usize,
    /// The shortest subject and message, for an API that sets one (1
    /// otherwise: not blank is the core's own minimum).
    minimums: (usize, usize),
    counting: Counting,
}

/// A limit outside what [`TextLimits`] allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextLimitError {
    /// The subject limit is 0 or above [`Subject::MAX_CHARS`].
    #[error("must be between 1 and {max} (the published limit)", max = Subject::MAX_CHARS)]
    Subject,
    /// The message limit is 0 or above [`MessageBody::MAX_CHARS`].
    #[error("must be between 1 and {max} (the published limit)", max = MessageBody::MAX_CHARS)]
    Message,
}

impl TextLimits {
    /// The published limits: 200-character subjects, 25,000-character messages.
    pub const PUBLISHED: TextLimits = TextLimits {
        subject_chars: Subject::MAX_CHARS,
        message_chars: MessageBody::MAX_CHARS,
        minimums: (1, 1),
        counting: Counting::Chars,
    };

    /// Limits of `subject_chars` and `message_chars` characters.
    ///
    /// # Errors
    /// A limit that is 0 or above the published one.
    pub fn new(subject_chars: usize, message_chars: usize) -> Result<Self, TextLimitError> {
        if !(1..=Subject::MAX_CHARS).contains(&subject_chars) {
            return Err(TextLimitError::Subject);
        }
        if !(1..=MessageBody::MAX_CHARS).contains(&message_chars) {
            return Err(TextLimitError::Message);
        }
        Ok(Self {
            subject_chars,
            message_chars,
            minimums: (1, 1),
            counting: Counting::Chars,
        })
    }

    /// The longest text any API stores: what a dump's text is checked
    /// against.
    pub const STORED: TextLimits = TextLimits {
        subject_chars: Subject::MAX_STORED_CHARS,
        message_chars: MessageBody::MAX_CHARS,
        minimums: (1, 1),
        counting: Counting::Chars,
    };

    /// These limits as an API that publishes subjects of up to
    /// `subject_chars` (at most [`Subject::MAX_STORED_CHARS`]) applies
    /// them: its own subject limit, unless the deployment lowered the
    /// canonical one, which then holds for every API.
    #[must_use]
    pub fn with_published_subject(self, subject_chars: usize) -> Self {
        if self.subject_chars < Subject::MAX_CHARS {
            return self;
        }
        Self {
            subject_chars: subject_chars.clamp(1, Subject::MAX_STORED_CHARS),
            ..self
        }
    }

    /// These limits with lengths counted `counting`'s way, for an API
    /// whose published limits count so. Counting UTF-16 code units never
    /// gives fewer than characters, so text within these limits is within
    /// the characters' too.
    #[must_use]
    pub fn counting(self, counting: Counting) -> Self {
        Self { counting, ..self }
    }

    /// These limits with subjects and messages of at least `subject_chars`
    /// and `message_chars`, for an API that publishes minimums.
    #[must_use]
    pub fn at_least(self, subject_chars: usize, message_chars: usize) -> Self {
        Self {
            minimums: (subject_chars.max(1), message_chars.max(1)),
            ..self
        }
    }

    /// These limits, lowered to at most `subject_chars` and
    /// `message_chars` (for an API that publishes stricter ones).
    #[must_use]
    pub fn narrowed(self, subject_chars: usize, message_chars: usize) -> Self {
        Self {
            subject_chars: self.subject_chars.min(subject_chars).max(1),
            message_chars: self.message_chars.min(message_chars).max(1),
            ..self
        }
    }

    /// The longest subject, in characters.
    pub fn subject_chars(self) -> usize {
        self.subject_chars
    }

    /// The longest message body, in characters.
    pub fn message_chars(self) -> usize {
        self.message_chars
    }

    /// Validates a subject against these limits.
    ///
    /// # Errors
    /// Blank, too long, or holding a NUL character.
    pub fn subject(self, text: String) -> Result<Subject, TextError> {
        self.check_subject(&text)?;
        Ok(Subject(text))
    }

    /// Validates a message body against these limits.
    ///
    /// # Errors
    /// Blank, too long, or holding a NUL character.
    pub fn message(self, text: String) -> Result<MessageBody, TextError> {
        self.check_message(&text)?;
        Ok(MessageBody(text))
    }

    /// Checks a subject against these limits, for text that is stored
    /// already (a dump's) rather than taken in.
    ///
    /// # Errors
    /// As [`TextLimits::subject`].
    pub fn check_subject(self, text: &str) -> Result<(), TextError> {
        check(text, (self.minimums.0, self.subject_chars), self.counting)
    }

    /// Checks a message body against these limits, as
    /// [`TextLimits::check_subject`] does a subject.
    ///
    /// # Errors
    /// As [`TextLimits::message`].
    pub fn check_message(self, text: &str) -> Result<(), TextError> {
        check(text, (self.minimums.1, self.message_chars), self.counting)
    }
}

/// The longest display name (of a workspace, a user or a plan), in
/// characters.
pub const NAME_MAX_CHARS: usize = 200;

/// Checks a display name by a subject's rules: at least one
/// non-whitespace character, at most [`NAME_MAX_CHARS`], no NUL.
///
/// # Errors
/// Blank, too long, or holding a NUL character.
pub fn check_name(text: &str) -> Result<(), TextError> {
    check(text, (1, NAME_MAX_CHARS), Counting::Chars)
}

impl Default for TextLimits {
    fn default() -> Self {
        Self::PUBLISHED
    }
}

/// A ticket subject: 1 to 200 characters, or up to 255 through an API
/// that publishes that ([`TextLimits::with_published_subject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    /// The longest subject, in characters, the canonical API publishes.
    pub const MAX_CHARS: usize = 200;

    /// The longest subject any API ticketd serves takes, in characters
    /// (Daakey's 255), and so the longest one stored.
    pub const MAX_STORED_CHARS: usize = 255;

    /// Validates a subject against the published limit.
    ///
    /// # Errors
    /// Blank, too long, or holding a NUL character.
    pub fn parse(text: String) -> Result<Self, TextError> {
        TextLimits::PUBLISHED.subject(text)
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

    /// Validates a message body against the published limit.
    ///
    /// # Errors
    /// Blank, too long, or holding a NUL character.
    pub fn parse(text: String) -> Result<Self, TextError> {
        TextLimits::PUBLISHED.message(text)
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
    fn an_api_publishing_longer_subjects_gets_them_unless_the_deployment_lowered_them() {
        let published = TextLimits::PUBLISHED.with_published_subject(255);
        assert_eq!(published.subject_chars(), 255);
        assert!(published.subject("x".repeat(255)).is_ok());
        assert!(published.subject("x".repeat(256)).is_err());
        assert_eq!(
            TextLimits::PUBLISHED
                .with_published_subject(1000)
                .subject_chars(),
            Subject::MAX_STORED_CHARS
        );
        let lowered = TextLimits::new(80, 1000).unwrap();
        assert_eq!(lowered.with_published_subject(255), lowered);
    }

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
    fn limits_can_be_lowered_but_not_raised() {
        let limits = TextLimits::new(10, 100).expect("within the published limits");
        assert!(limits.subject("x".repeat(10)).is_ok());
        assert_eq!(
            limits.subject("x".repeat(11)),
            Err(TextError::TooLong {
                max: 10,
                actual: 11
            })
        );
        assert!(limits.message("é".repeat(100)).is_ok());
        assert!(matches!(
            limits.message("é".repeat(101)),
            Err(TextError::TooLong { max: 100, .. })
        ));
        assert_eq!(TextLimits::new(0, 100), Err(TextLimitError::Subject));
        assert_eq!(TextLimits::new(201, 100), Err(TextLimitError::Subject));
        assert_eq!(TextLimits::new(10, 0), Err(TextLimitError::Message));
        assert_eq!(TextLimits::new(10, 25_001), Err(TextLimitError::Message));
        assert_eq!(TextLimits::new(200, 25_000), Ok(TextLimits::default()));
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
