//! Extractors that fail with problem documents instead of axum's plain-text
//! rejections.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde_json::Value;

use crate::api::fields::{choose, field_error, not_one_of};
use crate::api::problem::{ApiError, ErrorCode, FieldCode, FieldError};
use crate::core::page::{Cursor, PageSize};
use crate::core::ticket::TicketRef;

/// A JSON request body, checked for media type, size and syntax.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(is_json_media_type);
        if !is_json {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType));
        }
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The body of an action endpoint: nothing, or an empty JSON object.
pub struct EmptyBody;

impl<S: Send + Sync> FromRequest<S> for EmptyBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(EmptyBody);
        }
        match parse_json(&bytes)? {
            Value::Object(members) if members.is_empty() => Ok(EmptyBody),
            Value::Object(members) => Err(ApiError::invalid(
                members
                    .keys()
                    .map(|name| {
                        field_error(
                            name,
                            FieldCode::UnknownField,
                            format!("`{name}` is not a field of this request."),
                        )
                    })
                    .collect(),
            )),
            _ => Err(ApiError::invalid(vec![FieldError {
                pointer: String::new(),
                detail: "This endpoint takes no body, or an empty JSON object.".into(),
                code: FieldCode::InvalidType,
            }])),
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

/// Reads a whole body within the configured limit: 413 beyond it.
pub(crate) async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(failure) if is_length_limit(&failure) => {
                ApiError::new(ErrorCode::PayloadTooLarge)
            }
            other => ApiError::new(ErrorCode::MalformedJson)
                .with_detail(format!("The request body could not be read: {other}")),
        })
}

fn is_length_limit(failure: &axum::extract::rejection::FailedToBufferBody) -> bool {
    matches!(
        failure,
        axum::extract::rejection::FailedToBufferBody::LengthLimitError(_)
    )
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let detail = if error.is_eof() && bytes.is_empty() {
            "The request body is empty; send a JSON object.".to_owned()
        } else {
            format!("The request body is not valid JSON: {error}.")
        };
        ApiError::new(ErrorCode::MalformedJson).with_detail(detail)
    })
}

/// The `{id}` path segment naming a ticket. Anything that cannot name a
/// ticket is a 404, exactly as for a ticket that does not exist.
pub struct TicketPath(pub TicketRef);

impl<S: Send + Sync> FromRequestParts<S> for TicketPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::new(ErrorCode::NotFound))?;
        TicketRef::parse(&raw)
            .map(TicketPath)
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound))
    }
}

/// A query string's parameters, read one at a time like body members.
pub struct QueryParams {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|_| {
            ApiError::invalid(vec![FieldError {
                pointer: String::new(),
                detail: "The query string is not valid.".into(),
                code: FieldCode::InvalidValue,
            }])
        })?;
        Ok(Self {
            pairs,
            errors: Vec::new(),
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
                format!("`{name}` must be given at most once."),
            ));
        }
        found
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

    /// Fails with every error found, including parameters nobody took.
    pub fn finish(mut self) -> Result<(), ApiError> {
        let mut unknown: Vec<String> = self.pairs.drain(..).map(|(key, _)| key).collect();
        unknown.sort();
        unknown.dedup();
        for name in unknown {
            self.errors.push(field_error(
                &name,
                FieldCode::UnknownField,
                format!("`{name}` is not a parameter of this endpoint."),
            ));
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self.errors))
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
