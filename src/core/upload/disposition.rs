//! `Content-Disposition: attachment` for a download (RFC 6266), with the
//! file's name in both forms a browser may read: a plain `filename` that
//! only uses safe ASCII, and `filename*` (RFC 8187, formerly RFC 5987)
//! carrying the exact name in UTF-8, so that any Unicode name survives.

use std::fmt::Write;

/// The header value for downloading a file called `filename`.
pub fn attachment(filename: &str) -> String {
    let mut value = String::with_capacity(32 + filename.len() * 4);
    value.push_str("attachment; filename=\"");
    value.extend(filename.chars().map(ascii_fallback));
    value.push_str("\"; filename*=UTF-8''");
    for byte in filename.bytes() {
        if is_attr_char(byte) {
            value.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(value, "%{byte:02X}");
        }
    }
    value
}

/// The character the plain `filename` shows for `c`: printable ASCII
/// except the quote, the backslash and the percent sign (which some
/// browsers decode), and `_` for anything else.
fn ascii_fallback(c: char) -> char {
    match c {
        '"' | '\\' | '%' => '_',
        ' '..='~' => c,
        _ => '_',
    }
}

/// RFC 8187 `attr-char`: what `filename*` may carry unencoded.
fn is_attr_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `filename*`'s percent-encoding, as a browser does.
    fn decoded(value: &str) -> String {
        let encoded = value
            .split("filename*=UTF-8''")
            .nth(1)
            .expect("a filename* parameter");
        let mut bytes = Vec::new();
        let mut rest = encoded.as_bytes();
        while let Some((&first, tail)) = rest.split_first() {
            if first == b'%' {
                let hex = std::str::from_utf8(&tail[..2]).expect("two hex digits");
                bytes.push(u8::from_str_radix(hex, 16).expect("hex"));
                rest = &tail[2..];
            } else {
                bytes.push(first);
                rest = tail;
            }
        }
        String::from_utf8(bytes).expect("UTF-8")
    }

    #[test]
    fn an_ascii_name_is_kept_in_both_forms() {
        assert_eq!(
            attachment("report-2026.pdf"),
            "attachment; filename=\"report-2026.pdf\"; filename*=UTF-8''report-2026.pdf"
        );
    }

    #[test]
    fn any_unicode_name_survives_in_filename_star() {
        for name in [
            "Überweisung März.pdf",
            "スクリーンショット 2026-12-02.png",
            "emoji 🧾 receipt.jpg",
            "quote\" back\\slash %41 semi;colon,comma.txt",
            "tab\there\r\nnewline.log",
        ] {
            let value = attachment(name);
            assert_eq!(decoded(&value), name, "{value}");
            // The header value itself is visible ASCII and spaces only.
            assert!(value.bytes().all(|b| (b' '..=b'~').contains(&b)), "{value}");
            let plain = value
                .split('"')
                .nth(1)
                .expect("a quoted filename parameter");
            assert!(!plain.contains(['\\', '%']), "{value}");
        }
    }

    #[test]
    fn the_plain_name_replaces_what_it_cannot_carry() {
        assert!(attachment("März.pdf").starts_with("attachment; filename=\"M_rz.pdf\";"));
    }
}
