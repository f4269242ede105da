//! Pagination cursors: decoding never panics, and a decoded cursor encodes
//! to one that decodes to the same position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticketd::core::page::{Cursor, MessageCursor, TicketCursor};

fuzz_target!(|text: &str| {
    if let Some(cursor) = TicketCursor::decode(text) {
        assert_eq!(TicketCursor::decode(&cursor.encode()), Some(cursor));
    }
    if let Some(cursor) = MessageCursor::decode(text) {
        assert_eq!(MessageCursor::decode(&cursor.encode()), Some(cursor));
    }
});
