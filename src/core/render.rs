//! Message bodies as HTML: what a client can insert into a page as it is.
//!
//! Rendering is pure and happens when a message is read; the stored body is
//! never changed. Every output is safe to embed in an HTML document:
//!
//! - [`BodyFormat::Plain`]: the text is HTML-escaped. Paragraphs (runs of
//!   lines separated by blank lines) become `<p>`, and the line breaks inside
//!   a paragraph become `<br>` (see `render/plain.rs`).
//! - [`BodyFormat::Markdown`]: CommonMark with tables and strikethrough,
//!   rendered by `pulldown-cmark`. Raw HTML in the Markdown is escaped and
//!   shown as the text the sender typed, and images become links to the
//!   image (`render/markdown.rs`). The result then passes an allow-list
//!   sanitiser (`render/sanitize.rs`) that keeps only the elements and attributes the renderer
//!   itself produces, and only `http`, `https` and `mailto` links.
//!
//! Rendering costs time linear in the body's length and yields at most
//! [`max_html_bytes`] of HTML. A Markdown body that would nest deeper than
//! [`MAX_DEPTH`], hold more than [`MAX_TABLE_CELLS`] table cells or render
//! longer than that is rendered as plain text instead (`render/bounds.rs`).

use crate::core::message::BodyFormat;

mod bounds;
mod cache;
pub mod hostile;
mod markdown;
mod plain;
mod sanitize;

#[cfg(test)]
mod cost_tests;
#[cfg(test)]
mod xss_tests;

/// Renders a message body as sanitised HTML, according to its format.
///
/// Whatever the input, the output holds only the elements and attributes
/// of the allow-list in `render/sanitize.rs`, and links only to `http`,
/// `https` and `mailto` URLs.
///
/// The result is at most [`max_html_bytes`] long. A Markdown body beyond
/// the bounds of `render/bounds.rs` is rendered as plain text.
pub fn to_html(body: &str, format: BodyFormat) -> String {
    match format {
        BodyFormat::Plain => plain::to_html(body),
        BodyFormat::Markdown => markdown_to_html(body).unwrap_or_else(|| plain::to_html(body)),
    }
}

pub use bounds::{MAX_DEPTH, MAX_TABLE_CELLS, max_html_bytes};
pub use cache::HtmlCache;

/// Markdown as sanitised HTML, or `None` if it is beyond the bounds.
fn markdown_to_html(body: &str) -> Option<String> {
    if bounds::exceeds_parse_bounds(body) {
        return None;
    }
    let max_bytes = max_html_bytes(body.len());
    let html = sanitize::clean(&markdown::to_unsanitised_html(body, max_bytes)?);
    (html.len() <= max_bytes).then_some(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_chooses_the_renderer() {
        let body = "*not* emphasis\nnext line";
        assert_eq!(
            to_html(body, BodyFormat::Plain),
            "<p>*not* emphasis<br>\nnext line</p>\n"
        );
        assert_eq!(
            to_html(body, BodyFormat::Markdown),
            "<p><em>not</em> emphasis\nnext line</p>\n"
        );
    }

    #[test]
    fn markdown_features_survive_sanitising() {
        let cases = [
            ("# Title\n### Sub", "<h1>Title</h1>\n<h3>Sub</h3>\n"),
            (
                "*em* _em_ **strong** ~~gone~~ `code`",
                "<p><em>em</em> <em>em</em> <strong>strong</strong> <del>gone</del> <code>code</code></p>\n",
            ),
            (
                "line one  \nline two\\\nline three",
                "<p>line one<br>\nline two<br>\nline three</p>\n",
            ),
            ("- a\n- b", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n"),
            (
                "3. c\n4. d",
                "<ol start=\"3\">\n<li>c</li>\n<li>d</li>\n</ol>\n",
            ),
            ("> quoted", "<blockquote>\n<p>quoted</p>\n</blockquote>\n"),
            ("a\n\n---\n\nb", "<p>a</p>\n<hr>\n<p>b</p>\n"),
            (
                "```rust\nfn main() { let a = 1 < 2; }\n```",
                "<pre><code class=\"language-rust\">fn main() { let a = 1 &lt; 2; }\n</code></pre>\n",
            ),
            (
                "    indented code",
                "<pre><code>indented code</code></pre>\n",
            ),
            (
                "| Plan | Price |\n|:-----|------:|\n| Pro  | 10 |",
                "<table><thead><tr><th style=\"text-align: left\">Plan</th><th style=\"text-align: right\">Price</th></tr></thead><tbody>\n<tr><td style=\"text-align: left\">Pro</td><td style=\"text-align: right\">10</td></tr>\n</tbody></table>\n",
            ),
            (
                "[docs](https://example.com/docs \"Docs\") <https://example.com> <help@example.com>",
                "<p><a href=\"https://example.com/docs\" title=\"Docs\" rel=\"noopener noreferrer nofollow\">docs</a> <a href=\"https://example.com\" rel=\"noopener noreferrer nofollow\">https://example.com</a> <a href=\"mailto:help@example.com\" rel=\"noopener noreferrer nofollow\">help@example.com</a></p>\n",
            ),
            (
                "![screenshot](https://example.com/s.png)",
                "<p><a href=\"https://example.com/s.png\" rel=\"noopener noreferrer nofollow\">screenshot</a></p>\n",
            ),
            ("a &amp; b &copy;", "<p>a &amp; b ©</p>\n"),
        ];
        for (markdown, html) in cases {
            assert_eq!(to_html(markdown, BodyFormat::Markdown), html, "{markdown}");
        }
    }

    #[test]
    fn both_formats_escape_markup() {
        for format in BodyFormat::ALL {
            let html = to_html("a <b>bold</b> & \"quoted\" claim", format);
            assert!(
                html.contains("a &lt;b&gt;bold&lt;/b&gt; &amp; "),
                "{format:?}: {html}"
            );
            assert!(!html.contains("<b>"), "{format:?}: {html}");
        }
    }
}
