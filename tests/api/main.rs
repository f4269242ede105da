//! The API integration suite: each test starts a real ticketd on a random
//! port with a fresh database and talks HTTP to it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap is a failed test"
)]

mod helpers;

mod auth;
mod cli;
mod errors;
mod lifecycle;
mod messages;
mod openapi;
mod pagination;
mod tickets;
mod transfer;
