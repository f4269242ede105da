//! Extractors that fail with problem documents instead of axum's plain-text
//! rejections. Bodies must be UTF-8, and query strings and path parameters
//! valid percent-encoded UTF-8: nothing is decoded lossily.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde_json::Value;

use crate::api::fields::{choose, field_error, not_one_of, unknown_members};
use crate::api::percent::{self, Plus};
use crate::api::refusal::{ErrorCode, FieldCode, FieldError, FieldErrors, Refusal, quoted};
use crate::api::utf8;
use crate::core::page::{Cursor, PageSize};
use crate::core::ticket::TicketRef;

/// A JSON request body, checked for media type, size and syntax.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Refusal;

    async fn from_request(request: Request, state: &S) -> Result<Self, Refusal> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(is_json_media_type);
        if !is_json {
            return Err(Refusal::new(ErrorCode::UnsupportedMediaType));
        }
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The body of an action endpoint: nothing, or an empty JSON object.
pub struct EmptyBody;

impl<S: Send + Sync> FromRequest<S> for EmptyBody {
    type Rejection = Refusal;

    async fn from_request(request: Request, state: &S) -> Result<Self, Refusal> {
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(EmptyBody);
        }
        match parse_json(&bytes)? {
            Value::Object(members) if members.is_empty() => Ok(EmptyBody),
            Value::Object(members) => {
                let mut errors = FieldErrors::new();
                unknown_members(&members, &mut errors);
                Err(Refusal::invalid(errors))
            }
            _ => Err(Refusal::invalid(FieldError {
                pointer: String::new(),
                detail: "This endpoint takes no body, or an empty JSON object.".into(),
                code: FieldCode::InvalidType,
            })),
        }
    }
}

fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The detail of a body that could not be read whole. The HTTP library's
/// own message names its internals, not what the client did wrong.
pub(crate) const UNREADABLE_BODY: &str = "The request body could not be read: the connection ended \
     early or the body's framing (Content-Length or chunked encoding) is broken.";

/// Reads a whole body within the configured limit: 413 beyond it, and
/// `malformed_json` if it cannot be read whole.
pub(crate) async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, Refusal> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(failure) if is_length_limit(&failure) => {
                Refusal::new(ErrorCode::PayloadTooLarge)
            }
            other => {
                tracing::debug!(error = %other, "a request body could not be read");
                Refusal::new(ErrorCode::MalformedJson).with_detail(UNREADABLE_BODY)
            }
        })
}

fn is_length_limit(failure: &axum::extract::rejection::FailedToBufferBody) -> bool {
    matches!(
        failure,
        axum::extract::rejection::FailedToBufferBody::LengthLimitError(_)
    )
}

fn parse_json(bytes: &[u8]) -> Result<Value, Refusal> {
    let text = utf8::check(bytes).map_err(|invalid| {
        let detail = format!("The request body is not valid UTF-8: {invalid}.");
        Refusal::new(ErrorCode::MalformedJson)
            .with_detail(detail.clone())
            .with_errors(vec![FieldError {
                pointer: invalid.pointer,
                detail,
                code: FieldCode::InvalidEncoding,
            }])
    })?;
    serde_json::from_str(text).map_err(|error| {
        let detail = if error.is_eof() && bytes.is_empty() {
            "The request body is empty; send a JSON object.".to_owned()
        } else {
            format!("The request body is not valid JSON: {error}.")
        };
        Refusal::new(ErrorCode::MalformedJson).with_detail(detail)
    })
}

/// The matched route's path parameters, percent-decoded strictly from the
/// request's own path. One that is not valid percent-encoded UTF-8 is a 400
/// naming it (where axum's own extractors would decode `%zz` as itself).
pub struct PathParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Refusal> {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .ok_or_else(|| Refusal::new(ErrorCode::NotFound))?;
        // Every parameter of this API's routes is one whole segment, so the
        // route's segments and the path's line up one for one.
        let mut params = Vec::new();
        let mut errors = FieldErrors::new();
        for (pattern, encoded) in route.as_str().split('/').zip(parts.uri.path().split('/')) {
            let Some(name) = pattern
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
            else {
                continue;
            };
            match percent::decode(encoded, Plus::Literal) {
                Ok(value) => params.push((name.to_owned(), value)),
                Err(error) => errors.push(field_error(
                    name,
                    FieldCode::InvalidEncoding,
                    format!(
                        "The path parameter `{name}` is not valid percent-encoded UTF-8: {error}."
                    ),
                )),
            }
        }
        if errors.is_empty() {
            Ok(Self(params))
        } else {
            Err(url_encoding_error(errors))
        }
    }
}

impl PathParams {
    /// The parameter called `name` ("" if the route has none).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }
}

/// The 400 for parts of the URL that are not valid percent-encoded UTF-8.
fn url_encoding_error(errors: FieldErrors) -> Refusal {
    Refusal::invalid(errors).with_detail("The request URL is not valid percent-encoded UTF-8.")
}

/// The `{id}` path segment naming a ticket. Anything that decodes but cannot
/// name a ticket is a 404, exactly as for a ticket that does not exist (one
/// that does not decode is the 400 of [`PathParams`]).
pub struct TicketPath(pub TicketRef);

impl<S: Send + Sync> FromRequestParts<S> for TicketPath {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
        let params = PathParams::from_request_parts(parts, state).await?;
        TicketRef::parse(params.get("id"))
            .map(TicketPath)
            .ok_or_else(|| Refusal::new(ErrorCode::NotFound))
    }
}

/// A query string's parameters, read one at a time like body members.
pub struct QueryParams {
    pairs: Vec<(String, String)>,
    errors: FieldErrors,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Refusal> {
        let query = parts.uri.query().unwrap_or_default();
        let mut pairs = Vec::new();
        let mut errors = FieldErrors::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = match percent::decode(name, Plus::Space) {
                Ok(name) => name,
                Err(error) => {
                    errors.push_with(|| FieldError {
                        pointer: String::new(),
                        detail: format!(
                            "A query parameter's name is not valid percent-encoded UTF-8: {error}."
                        ),
                        code: FieldCode::InvalidEncoding,
                    });
                    continue;
                }
            };
            match percent::decode(value, Plus::Space) {
                Ok(value) => pairs.push((name, value)),
                Err(error) => errors.push_with(|| {
                    field_error(
                        &name,
                        FieldCode::InvalidEncoding,
                        format!(
                            "`{}` is not valid percent-encoded UTF-8: {error}.",
                            quoted(&name)
                        ),
                    )
                }),
            }
        }
        if !errors.is_empty() {
            return Err(url_encoding_error(errors));
        }
        Ok(Self {
            pairs,
            errors: FieldErrors::new(),
        })
    }
}

impl QueryParams {
    fn take(&mut self, name: &str) -> Option<String> {
        let mut found = None;
        let mut repeated = false;
        self.pairs.retain(|(key, value)| {
            if key != name {
                return true;
            }
            repeated |= found.is_some();
            found.get_or_insert_with(|| value.clone());
            false
        });
        if repeated {
            self.errors.push(field_error(
                name,
                FieldCode::InvalidValue,
                format!("`{}` must be given at most once.", quoted(name)),
            ));
        }
        found
    }

    /// The parameter `name` as text, if given (once).
    pub fn text(&mut self, name: &str) -> Option<String> {
        self.take(name)
    }

    /// The boolean parameter `name` (`true` or `false`), if given.
    pub fn flag(&mut self, name: &str) -> Option<bool> {
        let text = self.take(name)?;
        match text.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.errors.push(field_error(
                    name,
                    FieldCode::InvalidValue,
                    format!("`{}` must be `true` or `false`.", quoted(name)),
                ));
                None
            }
        }
    }

    /// Records an error against the parameter `name`.
    pub fn reject(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// The `limit` parameter: 1 to 100, 25 when absent.
    pub fn page_size(&mut self) -> PageSize {
        let Some(text) = self.take("limit") else {
            return PageSize::DEFAULT;
        };
        match text.parse::<i64>() {
            Ok(number) => match u32::try_from(number).ok().and_then(PageSize::new) {
                Some(size) => size,
                None => {
                    self.errors.push(field_error(
                        "limit",
                        FieldCode::InvalidValue,
                        format!("`limit` must be between 1 and {}.", PageSize::MAX),
                    ));
                    PageSize::DEFAULT
                }
            },
            Err(_) => {
                self.errors.push(field_error(
                    "limit",
                    FieldCode::InvalidType,
                    "`limit` must be an integer.",
                ));
                PageSize::DEFAULT
            }
        }
    }

    /// The `cursor` parameter, decoded as a cursor of kind `C`.
    pub fn cursor<C: Cursor>(&mut self) -> Option<C> {
        let text = self.take("cursor")?;
        let cursor = C::decode(&text);
        if cursor.is_none() {
            self.errors.push(field_error(
                "cursor",
                FieldCode::InvalidValue,
                "`cursor` must be a `nextCursor` value this endpoint returned.",
            ));
        }
        cursor
    }

    /// An optional parameter naming one of `all`, whose wire names `as_str`
    /// gives.
    pub fn choice<T: Copy>(
        &mut self,
        name: &str,
        all: &[T],
        as_str: fn(T) -> &'static str,
    ) -> Option<T> {
        let text = self.take(name)?;
        let value = choose(&text, all, as_str);
        if value.is_none() {
            self.errors.push(not_one_of(name, all, as_str));
        }
        value
    }

    /// An integer parameter between `min` and `max`, `default` when
    /// absent; anything else is recorded as an error (and `default`
    /// returned, for the request is refused).
    pub fn integer_in(&mut self, name: &str, default: u64, (min, max): (u64, u64)) -> u64 {
        let Some(text) = self.take(name) else {
            return default;
        };
        match text.parse::<u64>() {
            Ok(number) if (min..=max).contains(&number) => number,
            _ => {
                self.errors.push(field_error(
                    name,
                    FieldCode::InvalidValue,
                    format!(
                        "`{}` must be an integer between {min} and {max}.",
                        quoted(name)
                    ),
                ));
                default
            }
        }
    }

    /// Drops the parameters not taken yet, for an API that ignores
    /// parameters it does not know rather than refusing them.
    pub fn ignore_others(&mut self) {
        self.pairs.clear();
    }

    /// Fails with the errors found, including parameters nobody took (in
    /// sorted order, each once).
    pub fn finish(mut self) -> Result<(), Refusal> {
        // The names are the query string's, already in memory; sorting them
        // costs what reading them did. Only the errors listed are built.
        let mut unknown: Vec<String> = self.pairs.drain(..).map(|(key, _)| key).collect();
        unknown.sort_unstable();
        unknown.dedup();
        let listed = unknown.len().min(self.errors.room());
        for name in &unknown[..listed] {
            self.errors.push_with(|| {
                field_error(
                    name,
                    FieldCode::UnknownField,
                    format!("`{}` is not a parameter of this endpoint.", quoted(name)),
                )
            });
        }
        self.errors.omit(unknown.len() - listed);
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Refusal::invalid(self.errors)
                .with_detail("The query parameters failed validation."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(is_json_media_type("application/merge-patch+json"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type("application/x-www-form-urlencoded"));
        assert!(!is_json_media_type("multipart/form-data; boundary=x"));
    }
}
