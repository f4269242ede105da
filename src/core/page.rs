//! Keyset pagination: page sizes and opaque cursors.
//!
//! A cursor names the last item of the page a client has seen; the next page
//! starts strictly after it in the list's order, so items inserted meanwhile
//! never shift or repeat what follows. Cursors are opaque to clients
//! (URL-safe base64 of a small versioned text).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::core::id::TicketId;
use crate::core::time::Timestamp;

/// How many items a page holds: 1 to 100, 25 unless asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    /// The default page size.
    pub const DEFAULT: PageSize = PageSize(25);
    /// The largest page size.
    pub const MAX: u32 = 100;

    /// A page size within 1..=100.
    pub fn new(size: u32) -> Option<Self> {
        (1..=Self::MAX).contains(&size).then_some(Self(size))
    }

    /// The size.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A page request: its size and where to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<C> {
    /// How many items at most.
    pub size: PageSize,
    /// Start after this item; `None` for the first page.
    pub after: Option<C>,
}

/// One page of results and the cursor for the next, if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    /// The items in list order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// Builds a page from up to `size + 1` rows fetched in list order: the
    /// extra row only tells that another page exists.
    pub fn from_overfetch(mut rows: Vec<T>, size: PageSize, cursor_of: impl Fn(&T) -> C) -> Self {
        let size = size.get() as usize;
        let has_more = rows.len() > size;
        rows.truncate(size);
        let next = if has_more {
            rows.last().map(cursor_of)
        } else {
            None
        };
        Self { items: rows, next }
    }
}

/// A position in a ticket list (most recent activity first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketCursor {
    /// The `updated_at` of the last ticket seen.
    pub updated_at: Timestamp,
    /// Its id, breaking ties.
    pub id: TicketId,
}

/// A position in a ticket's thread (oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageCursor {
    /// The `seq` of the last message seen.
    pub seq: i64,
}

/// Encoding of a cursor as an opaque string.
pub trait Cursor: Sized {
    /// The opaque text a client gets.
    fn encode(&self) -> String;
    /// Parses opaque text; `None` if it is not a cursor of this kind.
    fn decode(text: &str) -> Option<Self>;
}

fn opaque(plain: &str) -> String {
    URL_SAFE_NO_PAD.encode(plain)
}

fn reveal(text: &str) -> Option<String> {
    if text.len() > 128 {
        return None;
    }
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

impl Cursor for TicketCursor {
    fn encode(&self) -> String {
        opaque(&format!(
            "t1:{}:{}",
            self.updated_at.millis(),
            self.id.key()
        ))
    }

    fn decode(text: &str) -> Option<Self> {
        let plain = reveal(text)?;
        let mut parts = plain.strip_prefix("t1:")?.split(':');
        let millis = parts.next()?.parse().ok()?;
        let id = TicketId::from_key(parts.next()?)?;
        parts.next().is_none().then_some(Self {
            updated_at: Timestamp::from_millis(millis),
            id,
        })
    }
}

impl Cursor for MessageCursor {
    fn encode(&self) -> String {
        opaque(&format!("m1:{}", self.seq))
    }

    fn decode(text: &str) -> Option<Self> {
        let seq = reveal(text)?.strip_prefix("m1:")?.parse().ok()?;
        Some(Self { seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let ticket = TicketCursor {
            updated_at: Timestamp::from_millis(1_777_291_200_123),
            id: TicketId::generate(),
        };
        assert_eq!(TicketCursor::decode(&ticket.encode()), Some(ticket));
        let message = MessageCursor { seq: 42 };
        assert_eq!(MessageCursor::decode(&message.encode()), Some(message));
    }

    #[test]
    fn foreign_or_garbled_cursors_are_rejected() {
        let message = MessageCursor { seq: 42 }.encode();
        assert_eq!(TicketCursor::decode(&message), None);
        for text in ["", "!!", "bTE6", "bTE6eA", &"A".repeat(200)] {
            assert_eq!(MessageCursor::decode(text), None, "{text:?}");
            assert_eq!(TicketCursor::decode(text), None, "{text:?}");
        }
    }

    #[test]
    fn pages_know_whether_more_follow() {
        let size = PageSize::new(2).unwrap_or(PageSize::DEFAULT);
        let page = Page::from_overfetch(vec![1, 2, 3], size, |n| *n);
        assert_eq!((page.items, page.next), (vec![1, 2], Some(2)));
        let last = Page::from_overfetch(vec![1, 2], size, |n| *n);
        assert_eq!((last.items, last.next), (vec![1, 2], None));
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(PageSize::new(0), None);
        assert_eq!(PageSize::new(101), None);
        assert_eq!(PageSize::new(100).map(PageSize::get), Some(100));
    }
}
