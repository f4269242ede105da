//! The allow-list every rendered Markdown body passes through.
//!
//! It admits exactly the markup the Markdown renderer produces for
//! support messages, nothing more: paragraphs and line breaks, emphasis,
//! strikethrough, inline code and code blocks, lists, block quotes,
//! headings, rules, tables and links. Attributes are kept only where they
//! carry meaning (`href` and `title` on links, `start` on ordered lists, a
//! code block's `language-*` class, a table cell's text alignment).
//!
//! Links keep only absolute `http`, `https` and `mailto` URLs (a relative
//! URL would resolve against whichever page shows the message) and always
//! carry `rel="noopener noreferrer nofollow"`. Comments are dropped, and
//! so are `<script>` and `<style>` with their content; any other element
//! not listed is unwrapped to its text.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use ammonia::{Builder, UrlRelative};

/// The elements that may appear.
pub(super) const TAGS: &[&str] = &[
    "a",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
];

/// The URL schemes a link may use.
pub(super) const LINK_SCHEMES: [&str; 3] = ["http", "https", "mailto"];

/// The `rel` every link gets: no access to the reading page, no referrer,
/// no endorsement.
pub(super) const LINK_REL: &str = "noopener noreferrer nofollow";

/// The `style` values a table cell may have (the renderer's alignments).
const CELL_ALIGNMENTS: [&str; 3] = [
    "text-align: left",
    "text-align: center",
    "text-align: right",
];

/// Built once: a policy is a handful of hash sets.
static POLICY: LazyLock<Builder<'static>> = LazyLock::new(policy);

/// Sanitises rendered HTML down to the allow-list.
pub(super) fn clean(html: &str) -> String {
    POLICY.clean(html).to_string()
}

fn policy() -> Builder<'static> {
    let alignments = || HashMap::from([("style", HashSet::from(CELL_ALIGNMENTS))]);
    let mut builder = Builder::empty();
    builder
        .tags(TAGS.iter().copied().collect())
        .clean_content_tags(HashSet::from(["script", "style"]))
        .generic_attributes(HashSet::new())
        .tag_attributes(HashMap::from([
            ("a", HashSet::from(["href", "title"])),
            ("ol", HashSet::from(["start"])),
            ("code", HashSet::from(["class"])),
        ]))
        .tag_attribute_values(HashMap::from([("th", alignments()), ("td", alignments())]))
        .url_schemes(HashSet::from(LINK_SCHEMES))
        .url_relative(UrlRelative::Deny)
        .link_rel(Some(LINK_REL))
        .strip_comments(true)
        .attribute_filter(|element, attribute, value| match (element, attribute) {
            ("code", "class") => is_language_class(value).then_some(Cow::Borrowed(value)),
            _ => Some(Cow::Borrowed(value)),
        });
    builder
}

/// `language-NAME`, as the renderer writes a fenced code block's language,
/// with a name of letters, digits and `#+-._` (`c++`, `c#`, `objective-c`).
fn is_language_class(class: &str) -> bool {
    class.strip_prefix("language-").is_some_and(|name| {
        (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"#+-._".contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_allowed_markup() {
        let html = "<h2>Steps</h2>\n<ol start=\"3\">\n<li><em>a</em> <strong>b</strong> <del>c</del></li>\n</ol>\n<blockquote>\n<p>q<br>r</p>\n</blockquote>\n<hr>\n<pre><code class=\"language-rust\">fn main() {}\n</code></pre>\n";
        assert_eq!(clean(html), html);
    }

    #[test]
    fn links_get_rel_and_keep_only_safe_absolute_urls() {
        assert_eq!(
            clean("<a href=\"https://example.com/a?b=c\" title=\"t\">x</a>"),
            "<a href=\"https://example.com/a?b=c\" title=\"t\" rel=\"noopener noreferrer nofollow\">x</a>"
        );
        assert_eq!(
            clean("<a href=\"mailto:help@example.com\">mail</a>"),
            "<a href=\"mailto:help@example.com\" rel=\"noopener noreferrer nofollow\">mail</a>"
        );
        for href in [
            "javascript:alert(1)",
            "/relative",
            "//example.com/protocol-relative",
            "#fragment",
            "ftp://example.com/",
            "data:text/html,x",
        ] {
            assert_eq!(
                clean(&format!("<a href=\"{href}\">x</a>")),
                "<a rel=\"noopener noreferrer nofollow\">x</a>",
                "{href}"
            );
        }
    }

    #[test]
    fn only_the_renderers_cell_alignments_survive() {
        assert_eq!(
            clean(
                "<table><tbody><tr><td style=\"text-align: right\">1</td><td style=\"color: red\">2</td></tr></tbody></table>"
            ),
            "<table><tbody><tr><td style=\"text-align: right\">1</td><td>2</td></tr></tbody></table>"
        );
    }

    #[test]
    fn code_classes_must_name_a_language() {
        for (class, kept) in [
            ("language-rust", true),
            ("language-c++", true),
            ("language-objective-c", true),
            ("language-", false),
            ("hljs", false),
            ("language-a b", false),
            ("language-x\" onclick=\"y", false),
        ] {
            assert_eq!(is_language_class(class), kept, "{class}");
        }
        assert_eq!(clean("<code class=\"big red\">x</code>"), "<code>x</code>");
    }

    #[test]
    fn everything_else_is_dropped_or_unwrapped() {
        assert_eq!(
            clean(
                "<p onclick=\"x()\" id=\"i\" class=\"c\" style=\"s\">a<!-- c --><script>b()</script><style>p{}</style><img src=\"https://example.com/i.png\"><span>d</span><iframe src=\"https://example.com\"></iframe></p>"
            ),
            "<p>ad</p>"
        );
    }
}
