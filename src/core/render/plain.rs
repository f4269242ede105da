//! Plain-text bodies as HTML: escaped, with paragraphs and line breaks kept.
//!
//! A paragraph is a run of lines between blank (empty or whitespace-only)
//! lines; each becomes a `<p>`, and the line breaks inside it become `<br>`.
//! `\n`, `\r\n` and a lone `\r` all end a line. Blank lines only separate
//! paragraphs, so leading, trailing and repeated blank lines leave no trace.
//! Nothing else about the text is interpreted: URLs are not linked and
//! Markdown-like characters stay as they are.

/// Renders plain text as HTML. The result holds no markup but `<p>` and
/// `<br>`, whatever the text.
pub(super) fn to_html(text: &str) -> String {
    let mut html = String::with_capacity(text.len() + text.len() / 8 + 16);
    let mut in_paragraph = false;
    for line in lines(text) {
        if line.trim().is_empty() {
            if in_paragraph {
                html.push_str("</p>\n");
                in_paragraph = false;
            }
            continue;
        }
        html.push_str(if in_paragraph { "<br>\n" } else { "<p>" });
        in_paragraph = true;
        escape_into(&mut html, line);
    }
    if in_paragraph {
        html.push_str("</p>\n");
    }
    html
}

/// The lines of `text`, ended by `\n`, `\r\n` or `\r`.
pub(super) fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .flat_map(|line| line.strip_suffix('\r').unwrap_or(line).split('\r'))
}

/// Appends `text` with the five characters that are markup in HTML text or
/// attribute values escaped.
fn escape_into(html: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
        html.push_str(&rest[..at]);
        html.push_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        });
        // Each of the five is one byte long.
        rest = &rest[at + 1..];
    }
    html.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_is_one_paragraph() {
        assert_eq!(
            to_html("Here are the extra details you asked for."),
            "<p>Here are the extra details you asked for.</p>\n"
        );
    }

    #[test]
    fn escapes_every_markup_character() {
        assert_eq!(
            to_html(r#"<script>alert("x" & 'y')</script>"#),
            "<p>&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;</p>\n"
        );
        assert_eq!(
            to_html("&amp; stays as typed"),
            "<p>&amp;amp; stays as typed</p>\n"
        );
    }

    #[test]
    fn line_breaks_become_br_and_blank_lines_paragraphs() {
        assert_eq!(
            to_html("Hi,\nline two\r\nline three\rline four\n\n  \n\nBye"),
            "<p>Hi,<br>\nline two<br>\nline three<br>\nline four</p>\n<p>Bye</p>\n"
        );
    }

    #[test]
    fn outer_blank_lines_leave_no_trace_and_spaces_are_kept() {
        assert_eq!(
            to_html("\n\n  indented  text \n\n"),
            "<p>  indented  text </p>\n"
        );
    }

    #[test]
    fn markdown_is_not_interpreted() {
        assert_eq!(
            to_html("# not a heading\n*not emphasis* [x](https://example.com)"),
            "<p># not a heading<br>\n*not emphasis* [x](https://example.com)</p>\n"
        );
    }

    #[test]
    fn multibyte_text_passes_through() {
        assert_eq!(to_html("Grüße — 你好 <3"), "<p>Grüße — 你好 &lt;3</p>\n");
    }
}
