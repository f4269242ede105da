//! What one connection is doing, and when it must be closed for doing
//! nothing.
//!
//! The I/O wrapper reports bytes read and written, the service reports when a
//! request starts and when its response is done; [`Activity::deadline`] turns
//! that into the instant after which the connection is closed:
//!
//! - waiting for the first request: the header-read timeout or the
//!   unauthenticated idle timeout from accept, whichever is shorter;
//! - waiting between requests (keep-alive): the idle timeout from the end of
//!   the previous response, or the unauthenticated idle timeout while no
//!   request on the connection has been authenticated;
//! - reading a request head: the header-read timeout from its first byte
//!   (however slowly the rest trickles in);
//! - handling a request: none here (the request timeout answers it, and the
//!   body deadline a body that trickles in);
//! - writing a response: the idle timeout (or the unauthenticated one) from
//!   the last byte the client accepted, so a client that stops reading does
//!   not hold the connection.
//!
//! The shorter timeout for connections that have not authenticated a
//! request keeps anyone without an API key from holding connections open
//! cheaply: a `/healthz` every few seconds is all they buy.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The timeouts a connection is held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// Longest time to receive a request head.
    pub header_read: Duration,
    /// Longest pause between requests, or in reading a response.
    pub idle: Duration,
    /// [`idle`](Self::idle) for a connection on which no request has been
    /// authenticated yet (at most `idle`).
    pub unauthenticated_idle: Duration,
}

/// Why a connection was closed by its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// A request head did not arrive in time.
    HeaderRead,
    /// Nothing happened for the idle timeout.
    Idle,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request in progress. `first_byte` is when the next head began to
    /// arrive; `served` is false until the first request on the connection.
    AwaitingHead {
        since: Instant,
        first_byte: Option<Instant>,
        served: bool,
    },
    /// The request numbered `request` is being handled.
    Handling { request: u64 },
    /// The response to `request` is being written; `progress` is when the
    /// client last accepted bytes of it.
    Responding { request: u64, progress: Instant },
}

#[derive(Debug)]
struct State {
    phase: Phase,
    requests: u64,
    /// Whether a request on the connection has been authenticated.
    authenticated: bool,
}

/// One connection's activity, shared by its I/O, its service and its
/// watchdog.
#[derive(Debug)]
pub(super) struct Activity {
    state: Mutex<State>,
    /// Wakes the watchdog when the deadline may have come closer.
    changed: Notify,
}

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                phase: Phase::AwaitingHead {
                    since: Instant::now(),
                    first_byte: None,
                    served: false,
                },
                requests: 0,
                authenticated: false,
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain data, consistent after any completed update, so
        // a panic elsewhere while it was held leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client sent bytes.
    pub fn on_read(&self) {
        let mut state = self.state();
        if let Phase::AwaitingHead {
            first_byte: first_byte @ None,
            ..
        } = &mut state.phase
        {
            *first_byte = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// The client accepted bytes of a response.
    pub fn on_write(&self) {
        if let Phase::Responding { progress, .. } = &mut self.state().phase {
            *progress = Instant::now();
        }
    }

    /// A request head was read; returns the request's number.
    pub fn request_started(&self) -> u64 {
        let mut state = self.state();
        state.requests += 1;
        let request = state.requests;
        state.phase = Phase::Handling { request };
        drop(state);
        self.changed.notify_one();
        request
    }

    /// A request on the connection was authenticated: from now on it gets
    /// the full idle timeout.
    pub fn authenticated(&self) {
        // The deadline can only move later; the watchdog finds it on waking.
        self.state().authenticated = true;
    }

    /// The handler answered `request`; its response is being written.
    pub fn responding(&self, request: u64) {
        let mut state = self.state();
        if matches!(state.phase, Phase::Handling { request: current } if current == request) {
            state.phase = Phase::Responding {
                request,
                progress: Instant::now(),
            };
            drop(state);
            self.changed.notify_one();
        }
    }

    /// `request` is over (its response written, or abandoned).
    pub fn finished(&self, request: u64) {
        let mut state = self.state();
        let current = match state.phase {
            Phase::Handling { request } | Phase::Responding { request, .. } => request,
            Phase::AwaitingHead { .. } => return,
        };
        if current == request {
            state.phase = Phase::AwaitingHead {
                since: Instant::now(),
                first_byte: None,
                served: true,
            };
            drop(state);
            self.changed.notify_one();
        }
    }

    /// When the connection must be closed if nothing changes, and why;
    /// `None` while a request is being handled.
    fn deadline(&self, timeouts: Timeouts) -> Option<(Instant, Expiry)> {
        let state = self.state();
        let idle = if state.authenticated {
            timeouts.idle
        } else {
            timeouts.unauthenticated_idle.min(timeouts.idle)
        };
        match state.phase {
            Phase::AwaitingHead {
                first_byte: Some(first_byte),
                ..
            } => Some((first_byte + timeouts.header_read, Expiry::HeaderRead)),
            Phase::AwaitingHead {
                since,
                served: false,
                ..
            } if timeouts.header_read <= idle => {
                Some((since + timeouts.header_read, Expiry::HeaderRead))
            }
            Phase::AwaitingHead { since, .. } => Some((since + idle, Expiry::Idle)),
            Phase::Handling { .. } => None,
            Phase::Responding { progress, .. } => Some((progress + idle, Expiry::Idle)),
        }
    }

    /// Completes when the connection has passed its deadline.
    pub async fn expired(&self, timeouts: Timeouts) -> Expiry {
        loop {
            match self.deadline(timeouts) {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    // A later deadline (more progress) is found on waking;
                    // an earlier one comes with a notification.
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(75),
        unauthenticated_idle: Duration::from_secs(5),
    };

    fn due(activity: &Activity) -> Option<(Duration, Expiry)> {
        let now = Instant::now();
        activity
            .deadline(TIMEOUTS)
            .map(|(at, why)| (at.saturating_duration_since(now), why))
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_phase() {
        let activity = Activity::new();
        assert_eq!(
            due(&activity),
            Some((Duration::from_secs(5), Expiry::Idle)),
            "a new connection waits the shorter of the header-read and unauthenticated timeouts"
        );

        tokio::time::advance(Duration::from_secs(4)).await;
        activity.on_read();
        tokio::time::advance(Duration::from_secs(3)).await;
        activity.on_read();
        assert_eq!(
            due(&activity),
            Some((Duration::from_secs(7), Expiry::HeaderRead)),
            "the head's deadline runs from its first byte"
        );

        let request = activity.request_started();
        assert_eq!(due(&activity), None);
        activity.authenticated();
        activity.responding(request);
        tokio::time::advance(Duration::from_secs(50)).await;
        activity.on_write();
        assert_eq!(
            due(&activity),
            Some((Duration::from_secs(75), Expiry::Idle))
        );

        activity.finished(request);
        activity.on_write();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            due(&activity),
            Some((Duration::from_secs(70), Expiry::Idle))
        );
        activity.on_read();
        assert_eq!(
            due(&activity),
            Some((Duration::from_secs(10), Expiry::HeaderRead))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_an_authenticated_request_gets_the_shorter_idle_timeout() {
        let activity = Activity::new();
        let health = activity.request_started();
        activity.responding(health);
        assert_eq!(
            due(&activity),
            Some((Duration::from_secs(5), Expiry::Idle)),
            "an unauthenticated client that stops reading"
        );
        activity.finished(health);
        assert_eq!(
            due(&activity),
            Some((Duration::from_secs(5), Expiry::Idle)),
            "keep-alive after an unauthenticated request"
        );
        tokio::time::advance(Duration::from_secs(4)).await;
        activity.on_read();
        assert_eq!(
            due(&activity),
            Some((Duration::from_secs(10), Expiry::HeaderRead)),
            "a head in progress keeps the header-read timeout"
        );
        let authenticated = activity.request_started();
        activity.authenticated();
        activity.finished(authenticated);
        assert_eq!(
            due(&activity),
            Some((Duration::from_secs(75), Expiry::Idle))
        );

        // A header-read timeout shorter than the unauthenticated one rules
        // a new connection.
        let quick = Timeouts {
            header_read: Duration::from_secs(2),
            ..TIMEOUTS
        };
        let fresh = Activity::new();
        let (at, why) = fresh.deadline(quick).expect("a deadline");
        assert_eq!(
            (at.saturating_duration_since(Instant::now()), why),
            (Duration::from_secs(2), Expiry::HeaderRead)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_request_does_not_disturb_the_next() {
        let activity = Activity::new();
        activity.authenticated();
        let first = activity.request_started();
        activity.finished(first);
        let second = activity.request_started();
        activity.finished(first);
        activity.responding(first);
        assert_eq!(due(&activity), None, "the second request is still handled");
        activity.finished(second);
        assert_eq!(
            due(&activity),
            Some((Duration::from_secs(75), Expiry::Idle))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_waits_for_the_deadline_and_is_woken_by_a_closer_one() {
        let activity = std::sync::Arc::new(Activity::new());
        let request = activity.request_started();
        activity.authenticated();
        activity.finished(request);
        let started = Instant::now();
        let watcher = tokio::spawn({
            let activity = std::sync::Arc::clone(&activity);
            async move { activity.expired(TIMEOUTS).await }
        });
        tokio::time::advance(Duration::from_secs(30)).await;
        activity.on_read();
        assert_eq!(watcher.await.ok(), Some(Expiry::HeaderRead));
        assert_eq!(started.elapsed(), Duration::from_secs(40));
    }
}
