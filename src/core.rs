//! The storage-agnostic core: identifiers, timestamps, the ticket and message
//! model, the lifecycle rules and the access model. Nothing here performs I/O
//! or knows about HTTP or SQL; the API adapters and the stores both build on it.

pub mod access;
pub mod agency_signature;
pub mod crypto;
pub mod dump;
pub mod id;
pub mod idempotency;
pub mod lifecycle;
pub mod message;
pub mod page;
pub mod plan;
pub mod render;
pub mod server_secret;
pub mod text;
pub mod ticket;
pub mod time;
pub mod token;
pub mod upload;
pub mod workspace;
