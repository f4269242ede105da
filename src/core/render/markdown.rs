//! Markdown bodies as HTML, before sanitising.
//!
//! CommonMark (with its `<scheme:...>` autolinks), plus GitHub-style tables
//! and `~~strikethrough~~`. Nothing else: no task lists (their checkboxes
//! would be form controls), no footnotes, heading attributes, math or smart
//! punctuation.
//!
//! Two things differ from a plain CommonMark renderer, both decided here
//! rather than left to the sanitiser:
//!
//! - **Raw HTML is escaped**, inline or as a block: senders see the tags
//!   they typed as text, as a chat or an issue tracker would show them,
//!   rather than losing them silently. A raw HTML block becomes a paragraph
//!   (bare text directly in a list item, as in a tight list) with its line
//!   breaks kept.
//! - **Images become links** to the image, labelled with their alt text (or
//!   the URL when there is none). Showing remote images would let a sender
//!   learn when and from where a message is read; an image inside a link is
//!   just its label.

use std::fmt;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

use super::bounds::MAX_DEPTH;

/// The extensions to CommonMark that bodies may use.
const OPTIONS: Options = Options::ENABLE_TABLES.union(Options::ENABLE_STRIKETHROUGH);

/// Renders Markdown as HTML, or `None` if it nests deeper than
/// [`MAX_DEPTH`] or its HTML would exceed `max_bytes` (see
/// `render/bounds.rs`). Raw HTML is escaped, but URLs are passed through as
/// written: the result must be sanitised before anyone sees it.
pub(super) fn to_unsanitised_html(markdown: &str, max_bytes: usize) -> Option<String> {
    let events = neutralise(Parser::new_ext(markdown, OPTIONS))?;
    let mut html = CappedString {
        text: String::with_capacity((markdown.len() + markdown.len() / 2 + 16).min(max_bytes)),
        max_bytes,
    };
    pulldown_cmark::html::write_html_fmt(&mut html, events.into_iter()).ok()?;
    Some(html.text)
}

/// A string that refuses to grow past `max_bytes`, so that writing HTML
/// stops as soon as it is too long rather than once it is all written.
struct CappedString {
    text: String,
    max_bytes: usize,
}

impl fmt::Write for CappedString {
    fn write_str(&mut self, piece: &str) -> fmt::Result {
        if self.text.len() + piece.len() > self.max_bytes {
            return Err(fmt::Error);
        }
        self.text.push_str(piece);
        Ok(())
    }
}

/// An image being rewritten.
struct OpenImage<'a> {
    /// Where its label starts in the output.
    label_start: usize,
    /// Its URL, the label when it has no alt text.
    url: CowStr<'a>,
    /// Whether it became a link (it did unless it sits inside one).
    linked: bool,
}

/// Turns raw HTML into text and images into links; `None` if more than
/// [`MAX_DEPTH`] elements are open at once.
fn neutralise<'a>(events: impl Iterator<Item = Event<'a>>) -> Option<Vec<Event<'a>>> {
    let mut out = Vec::new();
    let mut html_block: Option<String> = None;
    let mut images: Vec<OpenImage<'a>> = Vec::new();
    let mut links = 0usize;
    // Whether each open container is a list item.
    let mut open_items: Vec<bool> = Vec::new();
    for event in events {
        match &event {
            Event::Start(Tag::HtmlBlock) | Event::End(TagEnd::HtmlBlock) => {}
            Event::Start(tag) => {
                open_items.push(matches!(tag, Tag::Item));
                if open_items.len() > MAX_DEPTH {
                    return None;
                }
            }
            Event::End(_) => {
                open_items.pop();
            }
            _ => {}
        }
        match event {
            Event::Start(Tag::HtmlBlock) => html_block = Some(String::new()),
            Event::End(TagEnd::HtmlBlock) => {
                if let Some(raw) = html_block.take() {
                    let in_item = open_items.last().copied().unwrap_or(false);
                    push_block_as_text(&mut out, &raw, !in_item);
                }
            }
            Event::Html(raw) => match html_block.as_mut() {
                Some(block) => block.push_str(&raw),
                None => out.push(Event::Text(raw)),
            },
            Event::InlineHtml(raw) => out.push(Event::Text(raw)),
            link @ Event::Start(Tag::Link { .. }) => {
                links += 1;
                out.push(link);
            }
            end @ Event::End(TagEnd::Link) => {
                links = links.saturating_sub(1);
                out.push(end);
            }
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let linked = links == 0;
                if linked {
                    links += 1;
                    out.push(Event::Start(Tag::Link {
                        link_type,
                        dest_url: dest_url.clone(),
                        title,
                        id,
                    }));
                }
                images.push(OpenImage {
                    label_start: out.len(),
                    url: dest_url,
                    linked,
                });
            }
            Event::End(TagEnd::Image) => {
                if let Some(image) = images.pop() {
                    if out.len() == image.label_start {
                        out.push(Event::Text(image.url));
                    }
                    if image.linked {
                        links = links.saturating_sub(1);
                        out.push(Event::End(TagEnd::Link));
                    }
                }
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// A raw HTML block as text, one line per line, in a paragraph if asked.
fn push_block_as_text(out: &mut Vec<Event<'_>>, raw: &str, paragraph: bool) {
    let mut lines = raw
        .lines()
        .filter(|line| !line.trim().is_empty())
        .peekable();
    if lines.peek().is_none() {
        return;
    }
    if paragraph {
        out.push(Event::Start(Tag::Paragraph));
    }
    let mut first = true;
    for line in lines {
        if !first {
            out.push(Event::HardBreak);
        }
        first = false;
        out.push(Event::Text(CowStr::from(line.to_owned())));
    }
    if paragraph {
        out.push(Event::End(TagEnd::Paragraph));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(markdown: &str) -> String {
        to_unsanitised_html(markdown, usize::MAX).unwrap_or_default()
    }

    #[test]
    fn inline_html_is_shown_as_text() {
        assert_eq!(
            render("say <b>hi</b> <span onclick=\"x()\">there</span>"),
            "<p>say &lt;b&gt;hi&lt;/b&gt; &lt;span onclick=\"x()\"&gt;there&lt;/span&gt;</p>\n"
        );
    }

    #[test]
    fn an_html_block_is_a_paragraph_of_text() {
        assert_eq!(
            render("<div>\n<script>alert(1)</script>\n</div>\n\nafter"),
            "<p>&lt;div&gt;<br />\n&lt;script&gt;alert(1)&lt;/script&gt;<br />\n&lt;/div&gt;</p>\n<p>after</p>\n"
        );
        assert_eq!(
            render("<!-- a comment -->"),
            "<p>&lt;!-- a comment --&gt;</p>\n"
        );
    }

    #[test]
    fn images_become_links_labelled_with_their_alt_text() {
        assert_eq!(
            render("![the error](https://example.com/e.png \"Error\")"),
            "<p><a href=\"https://example.com/e.png\" title=\"Error\">the error</a></p>\n"
        );
        assert_eq!(
            render("![](https://example.com/e.png)"),
            "<p><a href=\"https://example.com/e.png\">https://example.com/e.png</a></p>\n"
        );
    }

    #[test]
    fn an_image_inside_a_link_is_its_label() {
        assert_eq!(
            render("[![build](https://ci.example.com/badge.svg)](https://ci.example.com)"),
            "<p><a href=\"https://ci.example.com\">build</a></p>\n"
        );
        assert_eq!(
            render("[before ![](https://x.example/i.png) after](https://example.com)"),
            "<p><a href=\"https://example.com\">before https://x.example/i.png after</a></p>\n"
        );
    }

    #[test]
    fn an_html_block_in_a_list_item_stays_bare_text() {
        assert_eq!(
            render("- <svg onload=alert(1)>\n- two"),
            "<ul>\n<li>&lt;svg onload=alert(1)&gt;</li>\n<li>two</li>\n</ul>\n"
        );
    }

    #[test]
    fn nesting_beyond_the_bound_renders_nothing() {
        let within = format!("{}a", "* ".repeat(MAX_DEPTH / 2 - 1));
        assert!(to_unsanitised_html(&within, usize::MAX).is_some());
        let beyond = format!("{}a", "* ".repeat(MAX_DEPTH / 2 + 1));
        assert_eq!(to_unsanitised_html(&beyond, usize::MAX), None);
        let emphasis = format!("{}b{}", "**a ".repeat(MAX_DEPTH), "**".repeat(MAX_DEPTH));
        assert_eq!(to_unsanitised_html(&emphasis, usize::MAX), None);
    }

    #[test]
    fn writing_stops_at_the_byte_bound() {
        let html = render("a *b* c");
        assert_eq!(html, "<p>a <em>b</em> c</p>\n");
        assert_eq!(
            to_unsanitised_html("a *b* c", html.len()),
            Some(html.clone())
        );
        assert_eq!(to_unsanitised_html("a *b* c", html.len() - 1), None);
    }

    #[test]
    fn task_list_markers_stay_text() {
        assert_eq!(render("- [ ] todo"), "<ul>\n<li>[ ] todo</li>\n</ul>\n");
    }
}
