//! The Markdown renderer: any text renders without panicking, to at most
//! `max_html_bytes` of HTML, in both formats.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticketd::core::message::BodyFormat;
use ticketd::core::render::{max_html_bytes, to_html};

fuzz_target!(|bytes: &[u8]| {
    let Ok(body) = std::str::from_utf8(bytes) else {
        return;
    };
    for format in BodyFormat::ALL {
        let html = to_html(body, format);
        assert!(
            html.len() <= max_html_bytes(body.len()),
            "{format:?}: {} bytes of HTML from {}",
            html.len(),
            body.len()
        );
    }
});
