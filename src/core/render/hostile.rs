//! Hostile Markdown: bodies that the tests, the benchmark and the fuzzer
//! use to show that rendering stays bounded (see `render/bounds.rs`). The
//! first four are the shapes that once made one read cost seconds of CPU
//! and, for the tables, 19 MB of HTML.

use crate::core::text::MessageBody;

/// The longest body the API accepts, in characters.
pub const MAX_BODY_CHARS: usize = MessageBody::MAX_CHARS;

/// `unit` repeated to fill a body, then `tail`.
fn fill(unit: &str, tail: &str) -> String {
    let count = (MAX_BODY_CHARS - tail.len()) / unit.len();
    format!("{}{tail}", unit.repeat(count))
}

/// Eight tables, each a 362-column header over 724 one-cell rows, which the
/// renderer would pad to 262,144 cells apiece.
fn padded_tables() -> String {
    let table = format!(
        "{}x\n{}-\n{}\n",
        "x|".repeat(361),
        "-|".repeat(361),
        "x\n".repeat(724)
    );
    table.repeat(8)
}

/// Markdown bodies within the API's limits that cost renderers dearly, by
/// name: each shape the bounds of `render/bounds.rs` exist for, at the
/// largest size a message may have.
pub fn hostile_markdown() -> Vec<(&'static str, String)> {
    vec![
        ("eight padded tables", padded_tables()),
        ("nested lists", format!("{}a", "- ".repeat(12_499))),
        ("nested quotes", format!("{}a", "> ".repeat(12_499))),
        ("lists in quotes", format!("{}a", "> - ".repeat(6_249))),
        (
            "lazy lines under deep lists",
            format!("{}a\n{}", "- ".repeat(6_000), "b\n".repeat(6_000)),
        ),
        (
            "lazy lines just within the bounds",
            format!("{}a\n{}", "- ".repeat(40), "b\n".repeat(12_000)),
        ),
        ("nested strong emphasis", fill("**a ", "b")),
        ("dense emphasis", fill("*_", "")),
        ("dense links", fill("[a](http://x) ", "")),
        ("autolinks", fill("<http://a> ", "")),
        (
            "a long link reference used everywhere",
            format!(
                "[r]: http://{}\n\n{}",
                "a".repeat(2_000),
                "[a][r] ".repeat(3_200)
            ),
        ),
        ("escapes", fill("&<>\"'", "")),
        ("open brackets", fill("[", "")),
        ("backticks", fill("`a``", "")),
    ]
}

/// Ordinary Markdown of `length` bytes: sentences with a little emphasis
/// and code, the baseline hostile bodies are measured against.
pub fn ordinary_markdown(length: usize) -> String {
    let sentence = "The export *fails* after `30 s` when the report has more than a few rows. ";
    sentence.repeat(length / sentence.len() + 1)[..length].to_owned()
}
