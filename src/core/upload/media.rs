//! Which files an upload may be: an allow-list of media types, each
//! checked against the file's first bytes, so that a file declared as one
//! type but holding another (an executable called `image/png`) is refused.

use std::fmt;

/// How many leading bytes [`MediaCheck::admits`] looks at.
pub const SNIFF_BYTES: usize = 512;

/// A media type ticketd knows how to recognise from a file's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownType {
    /// `image/png`.
    Png,
    /// `image/jpeg`.
    Jpeg,
    /// `image/gif`.
    Gif,
    /// `image/webp`.
    Webp,
    /// `image/avif`.
    Avif,
    /// `application/pdf`.
    Pdf,
    /// `application/zip`.
    Zip,
    /// `text/plain`: UTF-8 text without NUL bytes.
    PlainText,
    /// `text/x-log`: log files, checked as text.
    Log,
    /// `text/csv`, checked as text.
    Csv,
    /// `application/json`, checked as text.
    Json,
}

impl KnownType {
    /// Every known type.
    pub const ALL: [KnownType; 11] = [
        KnownType::Png,
        KnownType::Jpeg,
        KnownType::Gif,
        KnownType::Webp,
        KnownType::Avif,
        KnownType::Pdf,
        KnownType::Zip,
        KnownType::PlainText,
        KnownType::Log,
        KnownType::Csv,
        KnownType::Json,
    ];

    /// The types allowed unless configured otherwise: images, PDF, plain
    /// text, logs and zip archives.
    pub const DEFAULT_ALLOWED: [KnownType; 9] = [
        KnownType::Png,
        KnownType::Jpeg,
        KnownType::Gif,
        KnownType::Webp,
        KnownType::Avif,
        KnownType::Pdf,
        KnownType::PlainText,
        KnownType::Log,
        KnownType::Zip,
    ];

    /// The media type's name (its `type/subtype`, lowercase).
    pub fn as_str(self) -> &'static str {
        match self {
            KnownType::Png => "image/png",
            KnownType::Jpeg => "image/jpeg",
            KnownType::Gif => "image/gif",
            KnownType::Webp => "image/webp",
            KnownType::Avif => "image/avif",
            KnownType::Pdf => "application/pdf",
            KnownType::Zip => "application/zip",
            KnownType::PlainText => "text/plain",
            KnownType::Log => "text/x-log",
            KnownType::Csv => "text/csv",
            KnownType::Json => "application/json",
        }
    }

    /// The known type a `Content-Type` value names, ignoring its parameters
    /// (`text/plain; charset=utf-8` is `text/plain`) and case.
    pub fn parse(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        Self::ALL
            .into_iter()
            .find(|known| known.as_str().eq_ignore_ascii_case(essence))
    }

    /// Whether a file starting with `head` (its first [`SNIFF_BYTES`] or
    /// all of it, if shorter) can be of this type.
    pub fn matches(self, head: &[u8]) -> bool {
        match self {
            KnownType::Png => head.starts_with(b"\x89PNG\r\n\x1a\n"),
            KnownType::Jpeg => head.starts_with(&[0xFF, 0xD8, 0xFF]),
            KnownType::Gif => head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a"),
            KnownType::Webp => {
                head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP"
            }
            // An ISO base media file whose `ftyp` box names an AVIF brand.
            KnownType::Avif => {
                head.len() >= 12
                    && &head[4..8] == b"ftyp"
                    && matches!(&head[8..12], b"avif" | b"avis")
            }
            KnownType::Pdf => head.starts_with(b"%PDF-"),
            // A local file header, or the end record of an empty archive.
            KnownType::Zip => head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06"),
            KnownType::PlainText | KnownType::Log | KnownType::Csv | KnownType::Json => {
                is_text(head)
            }
        }
    }
}

impl fmt::Display for KnownType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `head` is the start of UTF-8 text: valid UTF-8 (a character cut
/// off at the end of the sniffed bytes is allowed) without NUL bytes.
fn is_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // Cut off mid-character at the end, not invalid.
        Err(error) => error.error_len().is_none(),
    }
}

/// The media types uploads may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaCheck {
    allowed: Vec<KnownType>,
}

/// Why a file's media type was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The declared type is not on the allow-list.
    #[error("uploads may not be of this media type")]
    NotAllowed,
    /// The file's bytes are not of the declared type.
    #[error("the file's content is not of its declared media type")]
    ContentMismatch(KnownType),
}

impl Default for MediaCheck {
    fn default() -> Self {
        Self::new(KnownType::DEFAULT_ALLOWED.to_vec())
    }
}

impl MediaCheck {
    /// Allows exactly `allowed`.
    pub fn new(allowed: Vec<KnownType>) -> Self {
        Self { allowed }
    }

    /// The types allowed, in the order configured.
    pub fn allowed(&self) -> &[KnownType] {
        &self.allowed
    }

    /// The allowed type `content_type` declares.
    ///
    /// # Errors
    /// `NotAllowed` if it declares none of the allowed types.
    pub fn allowed_type(&self, content_type: &str) -> Result<KnownType, MediaError> {
        KnownType::parse(content_type)
            .filter(|known| self.allowed.contains(known))
            .ok_or(MediaError::NotAllowed)
    }

    /// Checks a file declared as `content_type` whose first bytes are
    /// `head`.
    ///
    /// # Errors
    /// `NotAllowed`, or `ContentMismatch` if the bytes are not of the
    /// declared type.
    pub fn admits(&self, content_type: &str, head: &[u8]) -> Result<KnownType, MediaError> {
        let known = self.allowed_type(content_type)?;
        let head = &head[..head.len().min(SNIFF_BYTES)];
        if known.matches(head) {
            Ok(known)
        } else {
            Err(MediaError::ContentMismatch(known))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const EXE: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff";

    #[test]
    fn names_round_trip_with_parameters_and_case() {
        for known in KnownType::ALL {
            assert_eq!(KnownType::parse(known.as_str()), Some(known));
        }
        assert_eq!(
            KnownType::parse("Text/Plain; charset=utf-8"),
            Some(KnownType::PlainText)
        );
        assert_eq!(KnownType::parse("image/svg+xml"), None);
        assert_eq!(KnownType::parse(""), None);
    }

    #[test]
    fn a_file_must_hold_what_it_declares() {
        let check = MediaCheck::default();
        assert_eq!(check.admits("image/png", PNG), Ok(KnownType::Png));
        assert_eq!(
            check.admits("image/png", EXE),
            Err(MediaError::ContentMismatch(KnownType::Png))
        );
        assert_eq!(
            check.admits("text/plain", EXE),
            Err(MediaError::ContentMismatch(KnownType::PlainText))
        );
        assert_eq!(
            check.admits("application/pdf", b"%PDF-1.7\n"),
            Ok(KnownType::Pdf)
        );
        assert_eq!(
            check.admits("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xE0]),
            Ok(KnownType::Jpeg)
        );
        assert_eq!(
            check.admits("image/gif", b"GIF89a\x01\0"),
            Ok(KnownType::Gif)
        );
        assert_eq!(
            check.admits("image/webp", b"RIFF\x24\0\0\0WEBPVP8 "),
            Ok(KnownType::Webp)
        );
        assert_eq!(
            check.admits("image/avif", b"\0\0\0\x1cftypavif\0\0\0\0"),
            Ok(KnownType::Avif)
        );
        assert_eq!(
            check.admits("image/avif", b"\0\0\0\x1cftypheic\0\0\0\0"),
            Err(MediaError::ContentMismatch(KnownType::Avif))
        );
        assert_eq!(
            check.admits("application/zip", b"PK\x03\x04\x14\0"),
            Ok(KnownType::Zip)
        );
    }

    #[test]
    fn types_off_the_list_are_refused() {
        let check = MediaCheck::default();
        assert_eq!(
            check.admits("application/json", b"{}"),
            Err(MediaError::NotAllowed)
        );
        assert_eq!(
            check.admits("application/x-msdownload", EXE),
            Err(MediaError::NotAllowed)
        );
        let json_only = MediaCheck::new(vec![KnownType::Json]);
        assert_eq!(
            json_only.admits("application/json", b"{}"),
            Ok(KnownType::Json)
        );
        assert_eq!(
            json_only.admits("image/png", PNG),
            Err(MediaError::NotAllowed)
        );
    }

    #[test]
    fn text_may_be_cut_mid_character_but_not_hold_nul_or_invalid_bytes() {
        let check = MediaCheck::default();
        let text = "aü".repeat(200);
        let cut = &text.as_bytes()[..SNIFF_BYTES];
        assert!(
            std::str::from_utf8(cut).is_err(),
            "the cut falls mid-character"
        );
        assert_eq!(check.admits("text/x-log", cut), Ok(KnownType::Log));
        assert!(check.admits("text/plain", b"line\0line").is_err());
        assert!(check.admits("text/plain", b"\xff\xfe").is_err());
        assert_eq!(check.admits("text/plain", b""), Ok(KnownType::PlainText));
    }
}
