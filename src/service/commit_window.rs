//! Whether the request being served has started a write: once it has, the
//! write may commit at any moment, so the request must be answered with
//! its outcome, never with a timeout (a client that retries a timed-out
//! write it believes failed would write it twice).
//!
//! The HTTP layer runs each request inside [`watch_writes`]; the use cases
//! call [`note_write`] just before the one store write a command makes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

tokio::task_local! {
    static WRITE_STARTED: Arc<AtomicBool>;
}

/// Runs `request`, setting `started` once it starts a write.
pub async fn watch_writes<F: Future>(started: Arc<AtomicBool>, request: F) -> F::Output {
    WRITE_STARTED.scope(started, request).await
}

/// Notes that the request being served (if any) starts a write.
pub(crate) fn note_write() {
    let _ = WRITE_STARTED.try_with(|started| started.store(true, Ordering::Release));
}

/// Whether the request `started` watches has started a write.
pub fn started_a_write(started: &AtomicBool) -> bool {
    started.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_writes_inside_the_watched_request_are_noted() {
        let started = Arc::new(AtomicBool::new(false));
        // Outside any request: nothing to note, and no panic.
        note_write();
        watch_writes(Arc::clone(&started), async {}).await;
        assert!(!started_a_write(&started));
        watch_writes(Arc::clone(&started), async {
            tokio::task::yield_now().await;
            note_write();
        })
        .await;
        assert!(started_a_write(&started));
    }
}
