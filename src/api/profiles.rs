//! Compatibility profiles: other vendors' support APIs, served beside the
//! canonical `/api/v2` over the same core, each a thin translation of its
//! routes, wire types, error envelope and id forms. Each is mounted under
//! its own path prefix, where every refusal is written in its format
//! ([`crate::api::refusal::Renderers`]); authentication, rate limits,
//! idempotency keys, admission and the request log are the shared ones.

pub mod agency;
pub mod projects;
pub mod teambattles;

use std::fmt;

use crate::api::refusal::Renderers;
use crate::core::access::Actor;
use crate::core::message::Message;
use crate::core::page::{MessageCursor, PageRequest, PageSize};
use crate::core::ticket::{Ticket, TicketRef};
use crate::service::{ServiceError, Support};

/// A compatibility profile ticketd can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// TeamBattles' API v1 (seed 003), under `/api/v1`.
    Teambattles,
    /// Daakey's client API (seed 004), under `/api/v1/client`.
    Agency,
    /// AppHandoff's project ticket threads (seed 002), under
    /// `/api/projects`.
    Projects,
}

impl Profile {
    /// Every profile, served by default.
    pub const ALL: [Profile; 3] = [Profile::Teambattles, Profile::Agency, Profile::Projects];

    /// Its name in `profiles`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Teambattles => "teambattles",
            Profile::Agency => "agency",
            Profile::Projects => "projects",
        }
    }

    /// The profile `name` names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|profile| profile.name() == name)
    }

    /// Where it is mounted.
    pub fn prefix(self) -> &'static str {
        match self {
            Profile::Teambattles => teambattles::PREFIX,
            Profile::Agency => agency::PREFIX,
            Profile::Projects => projects::PREFIX,
        }
    }

    /// Its OpenAPI document.
    pub fn openapi_json(self) -> &'static str {
        match self {
            Profile::Teambattles => teambattles::openapi_json(),
            Profile::Agency => agency::openapi_json(),
            Profile::Projects => projects::openapi_json(),
        }
    }

    /// Where its OpenAPI document is served.
    pub fn openapi_path(self) -> String {
        format!("{}/openapi.json", self.prefix())
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The latest messages of a ticket the actor can see, oldest first: at
/// most `max_messages` of them, and of those the latest within `max_bytes`
/// of text, so that one request costs a bounded read however long the
/// thread.
///
/// # Errors
/// As [`Support::list_messages`].
pub async fn latest_messages(
    support: &Support,
    actor: &Actor,
    ticket: &Ticket,
    max_messages: i64,
    max_bytes: usize,
) -> Result<Vec<Message>, ServiceError> {
    let reference = TicketRef::Id(ticket.id);
    let mut after = Some(MessageCursor {
        seq: (ticket.message_count - max_messages).max(0),
    });
    let mut messages = Vec::new();
    let max_count = usize::try_from(max_messages).unwrap_or(0);
    while let Some(cursor) = after {
        let page = support
            .list_messages(
                actor,
                reference,
                PageRequest {
                    size: PageSize::new(PageSize::MAX).unwrap_or(PageSize::DEFAULT),
                    after: Some(cursor),
                },
            )
            .await?;
        messages.extend(page.items);
        // Replies that arrive meanwhile do not lengthen the read.
        after = page.next.filter(|_| messages.len() < max_count);
    }
    messages.truncate(max_count);
    // The latest replies that fit the budget.
    let mut bytes: usize = messages.iter().map(|message| message.body.len()).sum();
    let mut oldest_kept = 0;
    while bytes > max_bytes && oldest_kept < messages.len() {
        bytes -= messages[oldest_kept].body.len();
        oldest_kept += 1;
    }
    messages.drain(..oldest_kept);
    Ok(messages)
}

/// A profile's routes, to join the canonical ones under the shared layers,
/// and its OpenAPI document.
pub struct ProfileRoutes {
    /// Behind authentication and idempotency keys.
    pub authenticated: axum::Router<crate::api::AppState>,
    /// Upload URLs, authenticated by their signature.
    pub signed: axum::Router<crate::api::AppState>,
    /// Open (its OpenAPI document).
    pub open: axum::Router<crate::api::AppState>,
    /// The OpenAPI document.
    pub doc: utoipa::openapi::OpenApi,
}

impl Profile {
    /// Its routes.
    pub fn routes(self) -> ProfileRoutes {
        match self {
            Profile::Teambattles => teambattles::routes(),
            Profile::Agency => agency::routes(),
            Profile::Projects => projects::routes(),
        }
    }
}

/// `doc` as the JSON a profile serves.
pub fn document_json(doc: &utoipa::openapi::OpenApi) -> String {
    doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

/// The renderers of the canonical API and of `profiles`.
pub fn renderers(canonical: Renderers, profiles: &[Profile]) -> Renderers {
    profiles
        .iter()
        .fold(canonical, |renderers, profile| match profile {
            Profile::Teambattles => {
                renderers.mount(teambattles::PREFIX, teambattles::errors::TeambattlesErrors)
            }
            Profile::Agency => renderers.mount(agency::PREFIX, agency::errors::AgencyErrors),
            Profile::Projects => {
                renderers.mount(projects::PREFIX, projects::errors::ProjectsErrors)
            }
        })
}

/// Whether requests to `path` stream their bodies in a profile (its upload
/// URLs).
pub fn streams_body(path: &str) -> bool {
    teambattles::streams_body(path) || agency::streams_body(path)
}

/// Whether idempotency keys sent to `path` are scoped by the path as well
/// as by the API key (as TeamBattles scopes them), rather than by the API
/// key alone.
pub fn keys_scoped_by_path(path: &str) -> bool {
    teambattles::owns(path)
}

/// Responses that every operation of a profile may answer, for its
/// OpenAPI document: each `(status, description)` of `refusals`, with the
/// profile's `ErrorBody` schema as JSON. A profile names them once, as an
/// [`utoipa::IntoResponses`] type listed in each operation's responses.
pub fn shared_refusals(
    refusals: &[(&str, &str)],
) -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, ResponsesBuilder};
    refusals
        .iter()
        .fold(
            ResponsesBuilder::new(),
            |responses, (status, description)| {
                responses.response(
                    *status,
                    ResponseBuilder::new().description(*description).content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    ),
                )
            },
        )
        .build()
        .into()
}

/// The bearer-key security scheme of a profile's OpenAPI document.
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearerAuth",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}
