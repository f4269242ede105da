//! Rendered bodies kept in memory, so that a message is rendered once
//! rather than on every read.
//!
//! A message's body never changes once sent, so its HTML, keyed by the
//! message's id, never goes stale. The cache holds the HTML of messages
//! marked `encrypted` too: it lives only in this process's memory, never in
//! the database. Its size is bounded in bytes; when full, the entries
//! cached longest ago go first. It is split into shards, each behind its
//! own lock, so that readers on different workers rarely wait for one
//! another.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use crate::core::id::MessageId;
use crate::core::message::Message;

/// Independently locked parts of the cache.
const SHARDS: usize = 16;

/// What an entry costs beyond its HTML: its key, its place in the map and
/// the eviction queue, and the `Arc`'s counts.
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// Rendered HTML by message id, at most a given number of bytes in all.
pub struct HtmlCache {
    shards: Box<[Mutex<Shard>]>,
    /// Each shard's share of the budget.
    shard_budget: usize,
}

#[derive(Default)]
struct Shard {
    html: HashMap<MessageId, Arc<str>>,
    /// Ids in the order they were cached, oldest first.
    order: VecDeque<MessageId>,
    bytes: usize,
}

impl HtmlCache {
    /// A cache of at most `budget_bytes` bytes of HTML and bookkeeping; 0
    /// keeps nothing, so every read renders.
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_budget: budget_bytes / SHARDS,
        }
    }

    /// `message`'s body as HTML, rendered now unless it is cached.
    pub fn html(&self, message: &Message) -> Arc<str> {
        if let Some(html) = self.get(message.id) {
            return html;
        }
        let html: Arc<str> = super::to_html(&message.body, message.body_format).into();
        self.insert(message.id, Arc::clone(&html));
        html
    }

    /// The cached HTML of message `id`, if any.
    pub fn get(&self, id: MessageId) -> Option<Arc<str>> {
        self.shard(id).html.get(&id).cloned()
    }

    /// Caches `html` as message `id`'s, evicting the oldest entries of its
    /// shard to make room. HTML larger than a shard's budget is not kept.
    pub fn insert(&self, id: MessageId, html: Arc<str>) {
        let weight = html.len() + ENTRY_OVERHEAD_BYTES;
        if weight > self.shard_budget {
            return;
        }
        let mut shard = self.shard(id);
        if shard.html.contains_key(&id) {
            return;
        }
        while shard.bytes + weight > self.shard_budget {
            let Some(oldest) = shard.order.pop_front() else {
                break;
            };
            if let Some(evicted) = shard.html.remove(&oldest) {
                shard.bytes -= evicted.len() + ENTRY_OVERHEAD_BYTES;
            }
        }
        shard.html.insert(id, html);
        shard.order.push_back(id);
        shard.bytes += weight;
    }

    /// The shard that holds `id`, locked. A panic while it was held leaves
    /// nothing half-done that matters here (at worst a byte count off by
    /// one entry), so a poisoned lock is used as it is.
    fn shard(&self, id: MessageId) -> std::sync::MutexGuard<'_, Shard> {
        // The low bits of a ULID are random.
        let index = (id.ulid().0 as usize) % SHARDS;
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::access::Role;
    use crate::core::id::{TicketId, UserId};
    use crate::core::message::BodyFormat;
    use crate::core::time::Timestamp;

    fn id(n: u128) -> MessageId {
        // The same shard for every n: the shard index is the low bits.
        MessageId::from_ulid(ulid::Ulid((n << 8) * SHARDS as u128))
    }

    #[test]
    fn entries_are_kept_until_their_shard_is_full_then_the_oldest_goes() {
        let html = "x".repeat(1000);
        let weight = html.len() + ENTRY_OVERHEAD_BYTES;
        let cache = HtmlCache::new(3 * weight * SHARDS);
        for n in 0..3 {
            cache.insert(id(n), html.as_str().into());
        }
        assert!((0..3).all(|n| cache.get(id(n)).is_some()));
        cache.insert(id(3), html.as_str().into());
        assert!(cache.get(id(0)).is_none());
        assert!((1..4).all(|n| cache.get(id(n)).is_some()));
    }

    #[test]
    fn html_larger_than_a_shard_is_not_kept() {
        let cache = HtmlCache::new(SHARDS * 100);
        cache.insert(id(1), "x".repeat(100).into());
        assert!(cache.get(id(1)).is_none());
        let off = HtmlCache::new(0);
        off.insert(id(1), "".into());
        assert!(off.get(id(1)).is_none());
    }

    #[test]
    fn a_message_renders_once_then_comes_from_the_cache() {
        let cache = HtmlCache::new(1 << 20);
        let mut message = Message {
            numeric_id: 1,
            id: MessageId::generate(),
            ticket_id: TicketId::generate(),
            seq: 1,
            sent_at: Timestamp::now(),
            body: "*hi*".to_owned(),
            body_format: BodyFormat::Markdown,
            encrypted: false,
            sender_id: UserId::generate(),
            sender_role: Role::Customer,
            sender_name: "Jane".to_owned(),
            attachments: Vec::new(),
            task: None,
        };
        let first = cache.html(&message);
        assert_eq!(&*first, "<p><em>hi</em></p>\n");
        // The body never changes in practice; changing it here shows the
        // second answer was not rendered again.
        message.body = "other".to_owned();
        assert!(Arc::ptr_eq(&first, &cache.html(&message)));
    }
}
