//! The API keys this node has looked up recently, so that a busy key is read
//! from the database once per [`KeyCache`] lifetime instead of on every
//! request.
//!
//! What is kept is the key's stored credentials (the digest of its secret,
//! whether it is revoked, and who it acts as); every request still proves
//! its secret against the digest. Only keys that exist are kept, so a guess
//! always reaches the database and a key created a moment ago works at once.
//! The price is that a key revoked elsewhere (by `ticketd key revoke`, or on
//! another node) keeps working on this node until its entry is older than
//! the lifetime, which is why the lifetime is short and configurable
//! (`api_key_cache_secs`, zero to turn the cache off).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::core::id::KeyId;
use crate::store::KeyCredentials;

/// The most keys kept at once; beyond it, stale entries are dropped, and if
/// every entry is fresh the cache starts over.
const MAX_ENTRIES: usize = 16_384;

/// Recently read key credentials, each kept for a fixed lifetime.
pub struct KeyCache {
    lifetime: Duration,
    entries: Mutex<HashMap<KeyId, Entry>>,
}

struct Entry {
    credentials: Arc<KeyCredentials>,
    read_at: Instant,
}

impl KeyCache {
    /// A cache whose entries are used for `lifetime` after they were read;
    /// a zero lifetime keeps nothing.
    pub fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The credentials of `key`, if they were read less than a lifetime ago.
    pub fn get(&self, key: KeyId) -> Option<Arc<KeyCredentials>> {
        if self.lifetime.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&key)
            .filter(|entry| entry.read_at.elapsed() < self.lifetime)
            .map(|entry| Arc::clone(&entry.credentials))
    }

    /// The credentials of `key` as last read, however long ago (entries
    /// stay until the cache is full): proof that the key existed and what
    /// its secret was, but not that it is still valid.
    pub fn get_stale(&self, key: KeyId) -> Option<Arc<KeyCredentials>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&key)
            .map(|entry| Arc::clone(&entry.credentials))
    }

    /// Keeps `credentials`, read from the database at `read_at`.
    pub fn insert(&self, key: KeyId, credentials: Arc<KeyCredentials>, read_at: Instant) {
        if self.lifetime.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, entry| entry.read_at.elapsed() < self.lifetime);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                credentials,
                read_at,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::access::{Actor, KeyWorkspace, Principal, Role, Scopes, TicketScope};
    use crate::core::id::{UserId, WorkspaceId};
    use crate::core::token::ApiToken;

    fn credentials(key: KeyId) -> Arc<KeyCredentials> {
        let token = ApiToken::generate(key).expect("random bytes");
        Arc::new(KeyCredentials {
            secret_hash: token.secret_hash(),
            revoked: false,
            principal: Principal {
                key_id: key,
                scopes: Scopes::parse_list("read:support").expect("a scope"),
                actor: Actor {
                    workspace_id: WorkspaceId::generate(),
                    user_id: UserId::generate(),
                    role: Role::Customer,
                    name: "Jane Example".into(),
                    scope: TicketScope::ByRole,
                },
                workspace: KeyWorkspace {
                    numeric_id: 1,
                    code: "ACME".into(),
                    agency_signature_kid: None,
                },
            },
        })
    }

    #[test]
    fn an_entry_is_used_for_its_lifetime_and_not_after() {
        let cache = KeyCache::new(Duration::from_secs(60));
        let key = KeyId::generate();
        assert!(cache.get(key).is_none());
        cache.insert(key, credentials(key), Instant::now());
        assert_eq!(cache.get(key).expect("a fresh entry").principal.key_id, key);

        let old = Instant::now()
            .checked_sub(Duration::from_secs(61))
            .expect("a minute ago");
        cache.insert(key, credentials(key), old);
        assert!(cache.get(key).is_none(), "a stale entry was used");
        assert_eq!(
            cache
                .get_stale(key)
                .expect("a stale entry")
                .principal
                .key_id,
            key
        );
        assert!(cache.get_stale(KeyId::generate()).is_none());
    }

    #[test]
    fn a_zero_lifetime_keeps_nothing() {
        let cache = KeyCache::new(Duration::ZERO);
        let key = KeyId::generate();
        cache.insert(key, credentials(key), Instant::now());
        assert!(cache.get(key).is_none());
    }

    #[test]
    fn a_full_cache_drops_its_stale_entries_first() {
        let cache = KeyCache::new(Duration::from_secs(60));
        let old = Instant::now()
            .checked_sub(Duration::from_secs(61))
            .expect("a minute ago");
        let fresh = KeyId::generate();
        cache.insert(fresh, credentials(fresh), Instant::now());
        for _ in 1..MAX_ENTRIES {
            let key = KeyId::generate();
            cache.insert(key, credentials(key), old);
        }
        let newest = KeyId::generate();
        cache.insert(newest, credentials(newest), Instant::now());
        let entries = cache.entries.lock().expect("not poisoned").len();
        assert_eq!(entries, 2, "stale entries were kept");
        assert!(cache.get(fresh).is_some() && cache.get(newest).is_some());
    }
}
