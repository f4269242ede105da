//! The cost of rendering hostile Markdown, against ordinary Markdown of the
//! same length: each body of the security review's findings, and others of
//! the same kinds, must render within [`MAX_COST_RATIO`] times the CPU time
//! of prose, and to at most [`max_html_bytes`].
//!
//! Times are this thread's CPU time, the least of a few runs, so that other
//! work on the machine does not count; the bound is a ratio, so the speed
//! of the machine does not matter either.

use std::time::Duration;

use cpu_time::ThreadTime;

use super::hostile::{MAX_BODY_CHARS, hostile_markdown, ordinary_markdown};
use super::{BodyFormat, max_html_bytes, to_html};

/// How many times the CPU time of prose of the same length any body may
/// take. Before the bounds, the worst of these took over a thousand times.
const MAX_COST_RATIO: f64 = 25.0;

/// The least CPU time of a few renders of `body`.
fn render_cost(body: &str) -> Duration {
    (0..3)
        .map(|_| {
            let start = ThreadTime::now();
            std::hint::black_box(to_html(std::hint::black_box(body), BodyFormat::Markdown));
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

#[test]
fn hostile_markdown_renders_within_a_multiple_of_prose() {
    for (name, body) in hostile_markdown() {
        assert!(body.chars().count() <= MAX_BODY_CHARS, "{name}");
        let html = to_html(&body, BodyFormat::Markdown);
        assert!(
            html.len() <= max_html_bytes(body.len()),
            "{name}: {} bytes of HTML from {}",
            html.len(),
            body.len()
        );
        let cost = render_cost(&body);
        let baseline = render_cost(&ordinary_markdown(body.len()));
        let ratio = cost.as_secs_f64() / baseline.as_secs_f64().max(1e-6);
        println!(
            "{name}: {cost:?} ({ratio:.1} times prose), {} bytes of HTML",
            html.len()
        );
        assert!(
            ratio <= MAX_COST_RATIO,
            "{name}: {cost:?}, {ratio:.1} times prose of the same length ({baseline:?})"
        );
    }
}

#[test]
fn the_bombs_render_as_their_text() {
    for (name, body) in hostile_markdown().into_iter().take(4) {
        assert_eq!(
            to_html(&body, BodyFormat::Markdown),
            to_html(&body, BodyFormat::Plain),
            "{name}"
        );
    }
}
