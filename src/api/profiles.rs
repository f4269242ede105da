//! Compatibility profiles: other vendors' support APIs, served beside the
//! canonical `/api/v2` over the same core, each a thin translation of its
//! routes, wire types, error envelope and id forms. Each is mounted under
//! its own path prefix, where every refusal is written in its format
//! ([`crate::api::refusal::Renderers`]); authentication, rate limits,
//! idempotency keys, admission and the request log are the shared ones.

pub mod teambattles;

use std::fmt;

use crate::api::refusal::Renderers;

/// A compatibility profile ticketd can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// TeamBattles' API v1 (seed 003), under `/api/v1`.
    Teambattles,
}

impl Profile {
    /// Every profile, served by default.
    pub const ALL: [Profile; 1] = [Profile::Teambattles];

    /// Its name in `profiles`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Teambattles => "teambattles",
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
        }
    }

    /// Its OpenAPI document.
    pub fn openapi_json(self) -> &'static str {
        match self {
            Profile::Teambattles => teambattles::openapi_json(),
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

/// The renderers of the canonical API and of `profiles`.
pub fn renderers(canonical: Renderers, profiles: &[Profile]) -> Renderers {
    profiles
        .iter()
        .fold(canonical, |renderers, profile| match profile {
            Profile::Teambattles => {
                renderers.mount(teambattles::PREFIX, teambattles::errors::TeambattlesErrors)
            }
        })
}

/// Whether requests to `path` stream their bodies in a profile (its upload
/// URLs).
pub fn streams_body(path: &str) -> bool {
    teambattles::streams_body(path)
}

/// Whether idempotency keys sent to `path` are scoped by the path as well
/// as by the API key (as TeamBattles scopes them), rather than by the API
/// key alone.
pub fn keys_scoped_by_path(path: &str) -> bool {
    teambattles::owns(path)
}
