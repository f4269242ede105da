//! What a Markdown body may cost to render, and the checks that keep it
//! there.
//!
//! Rendering must cost time and memory linear in the body's length, and
//! produce HTML at most a fixed multiple of it, whatever the sender typed.
//! Three shapes of Markdown break that if left alone:
//!
//! - **Deep nesting.** Thousands of nested lists or quotes (`"- "` or
//!   `"> "` repeated) make the sanitiser's HTML tree builder, and the
//!   parser on lazy continuation lines, quadratic in the depth.
//! - **Padded tables.** The parser fills every row out to the header's
//!   column count, so a wide header over many one-cell rows turns a few
//!   bytes per row into hundreds of empty cells.
//! - **Expanding constructs.** A link reference repeated many times, or
//!   markup dense with attributes, outgrows the text it came from.
//!
//! A body that would exceed a bound is rendered as plain text instead
//! (escaped, with its paragraphs and line breaks), which costs and weighs
//! about what the text does. The first two bounds are estimated from the
//! raw text by [`exceeds_parse_bounds`], before the parser runs, because
//! the parser itself pays for them; they are then enforced exactly on the
//! parsed events ([`MAX_DEPTH`]). The output is capped while it is written
//! ([`max_html_bytes`]).

/// The most elements the rendered HTML may have open at once: lists, list
/// items, quotes, paragraphs, table parts and inline markup together (a
/// list nested in a list item costs two levels: the list and its item).
pub const MAX_DEPTH: usize = 64;

/// The most table cells a body may hold in all, counting the empty cells
/// the renderer adds to fill short rows.
pub const MAX_TABLE_CELLS: usize = 10_000;

/// The most bytes of HTML a body of `body_bytes` bytes may render to:
/// eight times its length, plus 1 KiB for the smallest bodies. Escaping
/// alone can multiply text by five (`'` becomes `&#39;`), and a table of
/// one-character aligned cells by about nine, so ordinary Markdown stays
/// well inside it.
pub fn max_html_bytes(body_bytes: usize) -> usize {
    body_bytes.saturating_mul(8).saturating_add(1024)
}

/// Whether `markdown` could nest deeper than [`MAX_DEPTH`] or hold more
/// than [`MAX_TABLE_CELLS`] cells, judged from its lines in one pass.
///
/// Both estimates err high, never low, so a body they pass cannot make the
/// parser do more than linear work; a body they refuse is rendered as
/// plain text.
pub fn exceeds_parse_bounds(markdown: &str) -> bool {
    let mut depth = DepthEstimate::default();
    let mut cells = CellEstimate::default();
    for line in super::plain::lines(markdown) {
        if depth.line(line) > MAX_DEPTH || cells.line(line) > MAX_TABLE_CELLS {
            return true;
        }
    }
    false
}

/// An upper bound on how many containers (block quotes, lists and list
/// items) are open at each line.
///
/// A line keeps open at most the containers of the line before it: list
/// items by indentation (two columns or more each) and quotes by a `>`
/// each, or all of them when it is a lazy continuation of a paragraph. It
/// opens one more for each quote or list marker at its start. Counting
/// every marker and half of the indentation overcounts (a rule such as
/// `- - -` counts three), which only makes the bound looser.
#[derive(Default)]
struct DepthEstimate {
    /// The bound for the line before.
    previous: usize,
    /// Whether the line before was blank (it ends any paragraph, so the
    /// next line cannot be a lazy continuation).
    after_blank: bool,
}

impl DepthEstimate {
    /// The bound for `line`, the next line of the body. Lists and their
    /// items are counted as one level each, so the result is compared with
    /// [`MAX_DEPTH`] loosely: ammonia and the parser see two elements per
    /// list level, which [`MAX_DEPTH`] bounds exactly afterwards.
    fn line(&mut self, line: &str) -> usize {
        if line.trim().is_empty() {
            self.after_blank = true;
            return self.previous;
        }
        let prefix = Prefix::of(line);
        let continued = self.previous.min(prefix.indent_columns / 2);
        let own = prefix.markers + continued;
        let lazy = if self.after_blank { 0 } else { self.previous };
        self.previous = own.max(lazy);
        self.after_blank = false;
        self.previous
    }
}

/// The container markers and indentation at the start of a line.
struct Prefix {
    /// `>` and list markers (`-`, `*`, `+`, `1.`, `1)`) before the text.
    markers: usize,
    /// Columns of whitespace among them (a tab counts four).
    indent_columns: usize,
}

impl Prefix {
    fn of(line: &str) -> Self {
        let bytes = line.as_bytes();
        let mut prefix = Prefix {
            markers: 0,
            indent_columns: 0,
        };
        let mut at = 0;
        loop {
            match bytes.get(at) {
                Some(b' ') => prefix.indent_columns += 1,
                Some(b'\t') => prefix.indent_columns += 4,
                Some(b'>') => prefix.markers += 1,
                Some(b'-' | b'*' | b'+') if ends_marker(bytes, at + 1) => prefix.markers += 1,
                Some(b'0'..=b'9') => match ordered_marker_end(bytes, at) {
                    Some(end) => {
                        prefix.markers += 1;
                        at = end;
                        continue;
                    }
                    None => return prefix,
                },
                _ => return prefix,
            }
            at += 1;
        }
    }
}

/// Whether a list marker ending just before `at` is followed by
/// whitespace or the end of the line, as a marker must be.
fn ends_marker(bytes: &[u8], at: usize) -> bool {
    matches!(bytes.get(at), None | Some(b' ' | b'\t'))
}

/// Where an ordered list marker (`1.` or `1)`, up to nine digits) that
/// starts at `at` ends, if one does.
fn ordered_marker_end(bytes: &[u8], at: usize) -> Option<usize> {
    let digits = bytes[at..]
        .iter()
        .take(10)
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    let end = at + digits + 1;
    (digits <= 9 && matches!(bytes.get(at + digits), Some(b'.' | b')')) && ends_marker(bytes, end))
        .then_some(end)
}

/// An upper bound on the table cells a body holds, padding included.
///
/// A table's rows are consecutive non-blank lines, so every table lies
/// within one run of them; within a run, tables follow one another. A
/// table has as many columns as its delimiter row (`|---|:-:|`) has cells,
/// and at most one more than the `|` in it. So a run holds at most its
/// widest delimiter-like line's columns times its length in cells.
#[derive(Default)]
struct CellEstimate {
    /// Cells counted in the runs already ended.
    finished: usize,
    /// Lines in the current run of non-blank lines.
    run_lines: usize,
    /// The most columns a delimiter-like line of the current run could
    /// give a table.
    run_columns: usize,
}

impl CellEstimate {
    /// The bound for the body up to and including `line`.
    fn line(&mut self, line: &str) -> usize {
        if line.trim().is_empty() {
            self.finished = self.current();
            self.run_lines = 0;
            self.run_columns = 0;
            return self.finished;
        }
        self.run_lines += 1;
        if could_be_delimiter_row(line) {
            let columns = line.bytes().filter(|&byte| byte == b'|').count() + 1;
            self.run_columns = self.run_columns.max(columns);
        }
        self.current()
    }

    fn current(&self) -> usize {
        self.finished
            .saturating_add(self.run_columns.saturating_mul(self.run_lines))
    }
}

/// Whether `line` could be a table's delimiter row, inside any containers:
/// it holds a `-` and nothing but delimiter characters, whitespace and
/// container markers.
fn could_be_delimiter_row(line: &str) -> bool {
    line.contains('-')
        && line
            .bytes()
            .all(|byte| b"|-: \t>*+.)".contains(&byte) || byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(markdown: &str) -> usize {
        let mut estimate = DepthEstimate::default();
        markdown
            .split('\n')
            .map(|line| estimate.line(line))
            .max()
            .unwrap_or(0)
    }

    fn cells(markdown: &str) -> usize {
        let mut estimate = CellEstimate::default();
        markdown
            .split('\n')
            .map(|line| estimate.line(line))
            .last()
            .unwrap_or(0)
    }

    #[test]
    fn nesting_is_never_underestimated() {
        for (markdown, at_least) in [
            ("plain text", 0),
            ("- a\n- b\n- c", 1),
            ("- a\n  - b\n    - c", 3),
            ("1. a\n   2) b\n      - c", 3),
            ("> > > quoted", 3),
            ("> - > - a", 4),
            ("- - - a\n  lazy continuation", 3),
            ("\t-\ta\n\t\t-\tb", 2),
        ] {
            assert!(
                depth(markdown) >= at_least,
                "{markdown:?}: {}",
                depth(markdown)
            );
        }
    }

    #[test]
    fn indentation_alone_opens_nothing() {
        assert_eq!(
            depth("code:\n\n                                        deep"),
            0
        );
        assert_eq!(
            depth("- a\n\n                                            b"),
            1
        );
    }

    #[test]
    fn a_blank_line_ends_what_only_laziness_kept_open() {
        assert_eq!(depth("- - - - a\nlazy\n\nafter"), 4);
        let mut estimate = DepthEstimate::default();
        for line in ["> > > a", "lazy", "", "after"] {
            estimate.line(line);
        }
        assert_eq!(estimate.previous, 0);
    }

    #[test]
    fn ordinary_markdown_is_far_from_the_bounds() {
        let body = "# Report\n\n> On Monday you wrote:\n> > the export fails\n\n1. Open the page\n2. Click *Export*\n   - it spins\n   - then fails\n\n| step | result |\n|:-----|-------:|\n| 1 | ok |\n| 2 | fails |\n";
        assert!(depth(body) <= 3, "{}", depth(body));
        // Four rows of two columns; the leading and trailing `|` of the
        // delimiter row make it look four columns wide.
        assert_eq!(cells(body), 16);
        assert!(!exceeds_parse_bounds(body));
    }

    #[test]
    fn the_bombs_are_caught_before_parsing() {
        assert!(exceeds_parse_bounds(&format!("{}a", "- ".repeat(12_499))));
        assert!(exceeds_parse_bounds(&format!("{}a", "> ".repeat(12_500))));
        assert!(exceeds_parse_bounds(&format!("{}a", "> - ".repeat(6_250))));
        let wide_table = format!(
            "{}x\n{}-\n{}",
            "x|".repeat(361),
            "-|".repeat(361),
            "x\n".repeat(724)
        );
        assert!(exceeds_parse_bounds(&wide_table));
    }

    #[test]
    fn table_cells_count_the_widest_delimiter_of_each_run() {
        assert_eq!(cells("a|b|c\n-|-|-\n1\n2"), 12);
        assert_eq!(cells("a|b\n-|-\n1\n\nc|d|e\n-|-|-\n2"), 6 + 9);
        // A run of rules or empty list items is one column wide.
        assert_eq!(cells(&"-\n".repeat(5_000)), 5_000);
    }

    #[test]
    fn ordered_markers_need_a_dot_or_parenthesis_and_a_space() {
        for (line, markers) in [
            ("1. a", 1),
            ("123456789) a", 1),
            ("1234567890. a", 0),
            ("1.a", 0),
            ("2024 was", 0),
            ("1. 2. 3. a", 3),
        ] {
            assert_eq!(Prefix::of(line).markers, markers, "{line:?}");
        }
    }
}
