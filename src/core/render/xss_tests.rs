//! Well-known XSS vectors through both renderers. The output is tokenized
//! with html5ever (the parser the sanitiser itself uses) and every tag,
//! attribute and URL checked against the allow-list, so a vector cannot
//! slip through by being spelled differently from what a substring search
//! expects.

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

use super::sanitize::{LINK_REL, LINK_SCHEMES, TAGS};
use super::to_html;
use crate::core::message::BodyFormat;

const VECTORS: &[&str] = &[
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<<script>script>alert(1)<</script>/script>",
    "<img src=x onerror=alert(1)>",
    "<img src=\"javascript:alert(1)\">",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<a href=javascript:alert(1)>x</a>",
    "<a href=\"&#x6A;avascript:alert(1)\">x</a>",
    "<a href=\"vbscript:msgbox(1)\">x</a>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1) \"title\")",
    "[x](<javascript:alert(1)>)",
    "[x](javascript&#58;alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](java&#9;script:alert(1))",
    "[x](%6Aavascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](DATA:text/html,<script>alert(1)</script>)",
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "[![x](https://example.com/i.png)](javascript:alert(1))",
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<vbscript:msgbox(1)>",
    "<data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==>",
    "<https://example.com/\"onmouseover=\"alert(1)>",
    "[x](https://example.com\" onclick=\"alert(1))",
    "[x](https://example.com \"t\\\" onmouseover=\\\"alert(1)\")",
    "[x](//evil.example/path)",
    "<iframe src=\"https://evil.example\"></iframe>",
    "<iframe srcdoc=\"<script>alert(1)</script>\">",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
    "<style>body { display: none }</style>",
    "<p style=\"background:url(javascript:alert(1))\">x</p>",
    "<object data=\"https://evil.example/x.swf\"></object>",
    "<embed src=\"https://evil.example/x.swf\">",
    "<details open ontoggle=alert(1)>",
    "<form action=\"javascript:alert(1)\"><button>x</button></form>",
    "<base href=\"javascript:/\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    "<!-- <script>alert(1)</script> -->",
    "<!--><img src=x onerror=alert(1)>-->",
    "text <b onmouseover=alert(1)>inline</b> html",
    "```\"><script>alert(1)</script>\ncode\n```",
    "``` x\" onclick=\"alert(1)\ncode\n```",
    "| a | b |\n|---|:-:|\n| <script>alert(1)</script> | [x](javascript:alert(1)) |",
    "> <img src=x onerror=alert(1)>\n> [x](javascript:alert(1))",
    "- <svg onload=alert(1)>\n- [x](data:text/html,x)",
];

/// Every tag token of a document, start and end.
#[derive(Default)]
struct TagCollector {
    tags: RefCell<Vec<Tag>>,
    other_markup: RefCell<Vec<String>>,
}

impl TokenSink for TagCollector {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        match token {
            Token::TagToken(tag) => self.tags.borrow_mut().push(tag),
            Token::CommentToken(text) => self
                .other_markup
                .borrow_mut()
                .push(format!("<!--{text}-->")),
            Token::DoctypeToken(_) => self.other_markup.borrow_mut().push("<!doctype>".to_owned()),
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

/// The attributes each element may carry.
fn allowed_attribute(element: &str, attribute: &str) -> bool {
    matches!(
        (element, attribute),
        ("a", "href" | "title" | "rel")
            | ("ol", "start")
            | ("code", "class")
            | ("th" | "td", "style")
    )
}

/// Everything wrong with `html` as the output of the renderer.
fn audit(html: &str) -> Vec<String> {
    let tokenizer = Tokenizer::new(TagCollector::default(), TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from(html));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let mut faults = tokenizer.sink.other_markup.take();
    for tag in tokenizer.sink.tags.take() {
        let element = &*tag.name;
        if !TAGS.contains(&element) {
            faults.push(format!("element <{element}>"));
        }
        if tag.kind == TagKind::EndTag {
            continue;
        }
        for attribute in &tag.attrs {
            let (name, value) = (&*attribute.name.local, &*attribute.value);
            if !allowed_attribute(element, name) {
                faults.push(format!("attribute {name}={value:?} on <{element}>"));
            }
            if name == "href" {
                let scheme = ammonia::Url::parse(value).map(|url| url.scheme().to_owned());
                if !scheme.is_ok_and(|scheme| LINK_SCHEMES.contains(&scheme.as_str())) {
                    faults.push(format!("link to {value:?}"));
                }
            }
            if name == "rel" && value != LINK_REL {
                faults.push(format!("rel={value:?}"));
            }
        }
        if element == "a" && !tag.attrs.iter().any(|a| &*a.name.local == "rel") {
            faults.push("a link without rel".to_owned());
        }
    }
    faults
}

#[test]
fn the_audit_catches_what_it_looks_for() {
    assert!(
        audit(
            "<p>fine <a href=\"https://example.com\" rel=\"noopener noreferrer nofollow\">x</a></p>"
        )
        .is_empty()
    );
    for bad in [
        "<script>alert(1)</script>",
        "<p onclick=\"x()\">a</p>",
        "<p ONMOUSEOVER=x>a</p>",
        "<a href=\"javascript:alert(1)\" rel=\"noopener noreferrer nofollow\">x</a>",
        "<a href=\"java&#9;script&#58;alert(1)\" rel=\"noopener noreferrer nofollow\">x</a>",
        "<a href=\"data:text/html,x\" rel=\"noopener noreferrer nofollow\">x</a>",
        "<a href=\"https://example.com\">no rel</a>",
        "<iframe></iframe>",
        "<!-- c -->",
        "<img src=x>",
    ] {
        assert!(!audit(bad).is_empty(), "the audit let {bad:?} through");
    }
}

#[test]
fn no_vector_survives_either_renderer() {
    let all = VECTORS.join("\n\n");
    for format in BodyFormat::ALL {
        for vector in VECTORS.iter().copied().chain([all.as_str()]) {
            let html = to_html(vector, format);
            let faults = audit(&html);
            assert!(
                faults.is_empty(),
                "{format:?} {vector:?}\n-> {html}\n{faults:?}"
            );
            let lower = html.to_ascii_lowercase();
            for needle in [
                "<script", "<iframe", "<object", "<style", "<svg", "<img", "<embed",
            ] {
                assert!(!lower.contains(needle), "{format:?} {vector:?} -> {html}");
            }
        }
    }
}

#[test]
fn unsafe_links_keep_their_text_but_lose_their_target() {
    for vector in [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](javascript&#58;alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[x](//evil.example/path)",
    ] {
        assert_eq!(
            to_html(vector, BodyFormat::Markdown),
            "<p><a rel=\"noopener noreferrer nofollow\">x</a></p>\n",
            "{vector}"
        );
    }
    assert_eq!(
        to_html("<javascript:alert(1)>", BodyFormat::Markdown),
        "<p><a rel=\"noopener noreferrer nofollow\">javascript:alert(1)</a></p>\n"
    );
}

#[test]
fn raw_html_is_shown_as_the_text_the_sender_typed() {
    assert_eq!(
        to_html("<img src=x onerror=alert(1)>", BodyFormat::Markdown),
        "<p>&lt;img src=x onerror=alert(1)&gt;</p>\n"
    );
    assert_eq!(
        to_html("a <svg onload=alert(1)> b", BodyFormat::Markdown),
        "<p>a &lt;svg onload=alert(1)&gt; b</p>\n"
    );
    assert_eq!(
        to_html("<!-- hidden -->", BodyFormat::Markdown),
        "<p>&lt;!-- hidden --&gt;</p>\n"
    );
}
