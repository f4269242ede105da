//! The use cases every API calls: open a ticket, reply, act on a ticket,
//! find and list. The canonical API and each compatibility profile parse
//! their own wire format into these commands, call [`Support`], and render
//! what it returns (or its [`ServiceError`]) in their own format; the rules
//! live here and in the core, once.
//!
//! [`Support`] owns the role rules (who may open a ticket for whom, who may
//! take which action), gives new tickets and messages their ids and times
//! (from a [`Clock`] and an [`IdSource`], so tests can fix them), and
//! passes an idempotency completion to the one store write it protects.
//! [`Idempotency`] grants and gives back the claims those completions come
//! from, for every API.
//!
//! Every write a use case starts is noted for the request it serves
//! ([`watch_writes`]), so that the HTTP layer never answers "timed out"
//! for a write that may still commit.

mod commit_window;
mod error;
mod idempotency;
mod support;
mod uploads;

#[cfg(test)]
pub(crate) use commit_window::note_write as note_write_for_tests;
pub use commit_window::{started_a_write, watch_writes};
pub use error::ServiceError;
pub use idempotency::{
    CLAIM_LEASE, ClaimAnswer, GrantedClaim, HeldClaim, Idempotency, IdempotencyPolicy, KeyedRequest,
};
pub use support::{Clock, Draft, IdSource, OpenTicket, RandomIds, Support, SystemClock};
pub use uploads::{
    ContentKeys, FileRules, IncomingFile, MalformedFile, UploadError, UploadPolicy, Uploads,
};
