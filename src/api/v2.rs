//! The canonical API, `/api/v2` (seeds 000 and 001): its handlers, one
//! file per resource, its wire types, its wording of the use cases'
//! refusals and its OpenAPI document. Its errors are RFC 9457 problem
//! details ([`crate::api::problem`]).

pub mod attachments;
pub mod messages;
pub mod openapi;
pub mod service_errors;
pub mod tickets;
pub mod uploads;
pub mod wire;
