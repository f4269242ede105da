//! The cost of rendering hostile Markdown, measured in-process: each body
//! of `ticketd::core::render::hostile` against ordinary Markdown of the same
//! length, in this thread's CPU time, the least of a few runs.

use std::time::Duration;

use cpu_time::ThreadTime;
use serde::Serialize;
use ticketd::core::message::BodyFormat;
use ticketd::core::render::hostile::{hostile_markdown, ordinary_markdown};
use ticketd::core::render::to_html;

/// Renders per body; the least is reported.
const RUNS: usize = 5;

/// One hostile body's cost.
#[derive(Debug, Clone, Serialize)]
pub struct RenderResult {
    pub body: String,
    pub body_bytes: usize,
    pub html_bytes: usize,
    /// CPU time of one render, in microseconds.
    pub cpu_us: f64,
    /// The same for ordinary Markdown of the same length.
    pub ordinary_cpu_us: f64,
    /// `cpu_us` over `ordinary_cpu_us`.
    pub ratio_to_ordinary: f64,
}

fn least_cpu(body: &str) -> Duration {
    (0..RUNS)
        .map(|_| {
            let start = ThreadTime::now();
            std::hint::black_box(to_html(std::hint::black_box(body), BodyFormat::Markdown));
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Measures every hostile body.
pub fn measure() -> Vec<RenderResult> {
    hostile_markdown()
        .into_iter()
        .map(|(name, body)| {
            let cpu = least_cpu(&body).as_secs_f64() * 1e6;
            let ordinary = least_cpu(&ordinary_markdown(body.len())).as_secs_f64() * 1e6;
            RenderResult {
                body: name.to_owned(),
                body_bytes: body.len(),
                html_bytes: to_html(&body, BodyFormat::Markdown).len(),
                cpu_us: cpu,
                ordinary_cpu_us: ordinary,
                ratio_to_ordinary: cpu / ordinary.max(0.001),
            }
        })
        .collect()
}

/// The table of results, the worst last.
pub fn table(results: &[RenderResult]) -> String {
    let mut out =
        String::from("rendering hostile Markdown (in-process, CPU time of one render):\n");
    out.push_str(&format!(
        "  {:<38} {:>7} {:>8} {:>9} {:>12} {:>6}\n",
        "body", "bytes", "html", "cpu us", "ordinary us", "ratio"
    ));
    for result in results {
        out.push_str(&format!(
            "  {:<38} {:>7} {:>8} {:>9.0} {:>12.0} {:>5.1}x\n",
            result.body,
            result.body_bytes,
            result.html_bytes,
            result.cpu_us,
            result.ordinary_cpu_us,
            result.ratio_to_ordinary
        ));
    }
    if let Some(worst) = results
        .iter()
        .max_by(|a, b| a.ratio_to_ordinary.total_cmp(&b.ratio_to_ordinary))
    {
        out.push_str(&format!(
            "  worst: {} at {:.0} us, {:.1}x ordinary Markdown of its length\n",
            worst.body, worst.cpu_us, worst.ratio_to_ordinary
        ));
    }
    out
}
