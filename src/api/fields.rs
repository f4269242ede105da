//! Reading request members one by one, collecting every error.
//!
//! Bodies and query strings are validated by hand rather than by a derived
//! deserializer so that every problem is reported at once, each with a JSON
//! pointer and a stable field code, and so that unknown members are refused
//! by name (`mesage`, or a `sender` the server never takes from a client).

use serde_json::{Map, Value};

use crate::api::problem::{FieldCode, FieldError};
use crate::core::text::TextError;

/// Escapes a member name for use in a JSON pointer (RFC 6901).
fn pointer_to(name: &str) -> String {
    format!("/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// A field error with a pointer to `name`.
pub fn field_error(name: &str, code: FieldCode, detail: impl Into<String>) -> FieldError {
    FieldError {
        pointer: pointer_to(name),
        detail: detail.into(),
        code,
    }
}

/// The field error for text refused by the core's rules.
pub fn text_error(name: &str, error: &TextError) -> FieldError {
    let code = match error {
        TextError::TooShort { .. } => FieldCode::TooShort,
        TextError::TooLong { .. } => FieldCode::TooLong,
        TextError::ContainsNul => FieldCode::InvalidValue,
    };
    field_error(name, code, format!("`{name}` {error}."))
}

/// A member was present but invalid; the error is already recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected;

/// The member of `all` whose wire name is `text`.
pub fn choose<T: Copy>(text: &str, all: &[T], as_str: fn(T) -> &'static str) -> Option<T> {
    all.iter().copied().find(|value| as_str(*value) == text)
}

/// The error for a value that is none of `all`.
pub fn not_one_of<T: Copy>(name: &str, all: &[T], as_str: fn(T) -> &'static str) -> FieldError {
    let names: Vec<&str> = all.iter().map(|value| as_str(*value)).collect();
    field_error(
        name,
        FieldCode::InvalidValue,
        format!("`{name}` must be one of: {}.", names.join(", ")),
    )
}

/// The members of a JSON object, taken one at a time.
pub struct Fields {
    members: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    /// Reads `value` as an object with `read`, which takes each member it
    /// knows; members left over are reported as unknown. Returns what `read`
    /// built, or every error found.
    pub fn read<T>(
        value: Value,
        read: impl FnOnce(&mut Fields) -> Option<T>,
    ) -> Result<T, Vec<FieldError>> {
        let Value::Object(members) = value else {
            return Err(vec![FieldError {
                pointer: String::new(),
                detail: "The request body must be a JSON object.".into(),
                code: FieldCode::InvalidType,
            }]);
        };
        let mut fields = Fields {
            members,
            errors: Vec::new(),
        };
        let built = read(&mut fields);
        let mut unknown: Vec<_> = fields.members.keys().cloned().collect();
        unknown.sort();
        for name in unknown {
            fields.errors.push(field_error(
                &name,
                FieldCode::UnknownField,
                format!("`{name}` is not a field of this request."),
            ));
        }
        match built {
            Some(value) if fields.errors.is_empty() => Ok(value),
            _ if fields.errors.is_empty() => Err(vec![FieldError {
                pointer: String::new(),
                detail: "The request body failed validation.".into(),
                code: FieldCode::InvalidValue,
            }]),
            _ => Err(fields.errors),
        }
    }

    /// Records an error against a member.
    pub fn reject(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// Takes a member; explicit `null` counts as absent.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.members.remove(name).filter(|value| !value.is_null())
    }

    fn wrong_type(&mut self, name: &str, expected: &str) {
        self.reject(field_error(
            name,
            FieldCode::InvalidType,
            format!("`{name}` must be {expected}."),
        ));
    }

    /// A required string, parsed by `parse`.
    pub fn required_text<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(String) -> Result<T, TextError>,
    ) -> Option<T> {
        match self.take(name) {
            None => {
                self.reject(field_error(
                    name,
                    FieldCode::MissingRequired,
                    format!("`{name}` is required."),
                ));
                None
            }
            Some(Value::String(text)) => parse(text)
                .map_err(|error| self.reject(text_error(name, &error)))
                .ok(),
            Some(_) => {
                self.wrong_type(name, "a string");
                None
            }
        }
    }

    /// An optional boolean; `Ok(None)` when absent, `Err(Rejected)` when wrong.
    pub fn optional_bool(&mut self, name: &str) -> Result<Option<bool>, Rejected> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(flag)),
            Some(_) => {
                self.wrong_type(name, "a boolean");
                Err(Rejected)
            }
        }
    }

    /// An optional string naming one of `all`, whose wire names `as_str`
    /// gives.
    pub fn optional_choice<T: Copy>(
        &mut self,
        name: &str,
        all: &[T],
        as_str: fn(T) -> &'static str,
    ) -> Result<Option<T>, Rejected> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(text)) => match choose(&text, all, as_str) {
                Some(value) => Ok(Some(value)),
                None => {
                    self.reject(not_one_of(name, all, as_str));
                    Err(Rejected)
                }
            },
            Some(_) => {
                self.wrong_type(name, "a string");
                Err(Rejected)
            }
        }
    }

    /// An optional string, parsed by `parse`; `what` describes a valid value.
    pub fn optional_parsed<T>(
        &mut self,
        name: &str,
        what: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, Rejected> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(text)) => match parse(&text) {
                Some(value) => Ok(Some(value)),
                None => {
                    self.reject(field_error(
                        name,
                        FieldCode::InvalidValue,
                        format!("`{name}` must be {what}."),
                    ));
                    Err(Rejected)
                }
            },
            Some(_) => {
                self.wrong_type(name, "a string");
                Err(Rejected)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::text::MessageBody;

    fn reply(value: Value) -> Result<(MessageBody, Option<bool>), Vec<FieldError>> {
        Fields::read(value, |fields| {
            let message = fields.required_text("message", MessageBody::parse);
            let encrypted = fields.optional_bool("encrypted");
            Some((message?, encrypted.ok()?))
        })
    }

    fn codes(
        result: Result<(MessageBody, Option<bool>), Vec<FieldError>>,
    ) -> Vec<(String, FieldCode)> {
        result
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|error| (error.pointer, error.code))
            .collect()
    }

    #[test]
    fn accepts_a_valid_body() {
        let parsed = reply(json!({"message": "hi", "encrypted": true}));
        assert!(matches!(parsed, Ok((ref body, Some(true))) if body.as_str() == "hi"));
        assert!(matches!(
            reply(json!({"message": "hi", "encrypted": null})),
            Ok((_, None))
        ));
    }

    #[test]
    fn reports_every_error_at_once() {
        let result = reply(json!({"mesage": "hi", "encrypted": "yes", "a/b": 1}));
        assert_eq!(
            codes(result),
            vec![
                ("/message".to_owned(), FieldCode::MissingRequired),
                ("/encrypted".to_owned(), FieldCode::InvalidType),
                ("/a~1b".to_owned(), FieldCode::UnknownField),
                ("/mesage".to_owned(), FieldCode::UnknownField),
            ]
        );
    }

    #[test]
    fn reports_text_rules_and_non_objects() {
        assert_eq!(
            codes(reply(json!({"message": ""}))),
            vec![("/message".to_owned(), FieldCode::TooShort)]
        );
        assert_eq!(
            codes(reply(json!({"message": 5}))),
            vec![("/message".to_owned(), FieldCode::InvalidType)]
        );
        assert_eq!(
            codes(reply(json!(["message"]))),
            vec![(String::new(), FieldCode::InvalidType)]
        );
    }
}
