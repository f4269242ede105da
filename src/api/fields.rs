//! Reading request members one by one, collecting every error.
//!
//! Bodies and query strings are validated by hand rather than by a derived
//! deserializer so that every problem is reported at once, each with a JSON
//! pointer and a stable field code, and so that unknown members are refused
//! by name (`mesage`, or a `sender` the server never takes from a client).
//!
//! A body can hold any number of members nobody takes, and names of any
//! length: errors are collected in a [`FieldErrors`], which lists only the
//! first ones, and only those are built; names are quoted cut short.

use std::collections::BinaryHeap;

use serde_json::{Map, Value};

use crate::api::refusal::{
    BoundedText, FieldCode, FieldError, FieldErrors, MAX_POINTER_BYTES, quoted,
};
use crate::core::text::TextError;

/// The JSON pointer (RFC 6901) to the member `name` of the body, built at
/// most [`MAX_POINTER_BYTES`] long.
pub fn pointer_to(name: &str) -> String {
    let mut pointer = BoundedText::new(MAX_POINTER_BYTES);
    pointer.push_str("/");
    push_segment(&mut pointer, name);
    pointer.into_string()
}

/// Appends a pointer's segment, escaped (`~0`, `~1`), until `pointer` is
/// full.
pub fn push_segment(pointer: &mut BoundedText, segment: &str) {
    let mut rest = segment;
    while !rest.is_empty() && !pointer.is_full() {
        let Some(at) = rest.find(['~', '/']) else {
            pointer.push_str(rest);
            return;
        };
        pointer.push_str(&rest[..at]);
        pointer.push_str(if rest.as_bytes()[at] == b'~' {
            "~0"
        } else {
            "~1"
        });
        rest = &rest[at + 1..];
    }
}

/// The first `count` of `names` in sorted order, without sorting them all:
/// what there is room to list of thousands of unknown names.
pub fn first_sorted<'a>(names: impl IntoIterator<Item = &'a str>, count: usize) -> Vec<&'a str> {
    if count == 0 {
        return Vec::new();
    }
    // A max-heap of the smallest names seen so far.
    let mut smallest = BinaryHeap::with_capacity(count + 1);
    for name in names {
        smallest.push(name);
        if smallest.len() > count {
            smallest.pop();
        }
    }
    smallest.into_sorted_vec()
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
        TextError::TooShort { .. } | TextError::TooFew { .. } => FieldCode::TooShort,
        TextError::TooLong { .. } => FieldCode::TooLong,
        TextError::ContainsNul => FieldCode::InvalidValue,
    };
    field_error(name, code, format!("`{}` {error}.", quoted(name)))
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
        format!("`{}` must be one of: {}.", quoted(name), names.join(", ")),
    )
}

/// Adds an `unknown_field` error for each of `members`, in sorted order:
/// as many as `errors` has room for are built, the rest only counted.
pub fn unknown_members(members: &Map<String, Value>, errors: &mut FieldErrors) {
    let listed = first_sorted(members.keys().map(String::as_str), errors.room());
    for name in &listed {
        errors.push_with(|| {
            field_error(
                name,
                FieldCode::UnknownField,
                format!("`{}` is not a field of this request.", quoted(name)),
            )
        });
    }
    errors.omit(members.len() - listed.len());
}

/// The members of a JSON object, taken one at a time.
pub struct Fields {
    members: Map<String, Value>,
    errors: FieldErrors,
}

impl Fields {
    /// Reads `value` as an object with `read`, which takes each member it
    /// knows; members left over are reported as unknown, in sorted order.
    /// Returns what `read` built, or the errors found.
    pub fn read<T>(
        value: Value,
        read: impl FnOnce(&mut Fields) -> Option<T>,
    ) -> Result<T, FieldErrors> {
        let Value::Object(members) = value else {
            return Err(FieldError {
                pointer: String::new(),
                detail: "The request body must be a JSON object.".into(),
                code: FieldCode::InvalidType,
            }
            .into());
        };
        let mut fields = Fields {
            members,
            errors: FieldErrors::new(),
        };
        let built = read(&mut fields);
        unknown_members(&fields.members, &mut fields.errors);
        match built {
            Some(value) if fields.errors.is_empty() => Ok(value),
            _ if fields.errors.is_empty() => Err(FieldError {
                pointer: String::new(),
                detail: "The request body failed validation.".into(),
                code: FieldCode::InvalidValue,
            }
            .into()),
            _ => Err(fields.errors),
        }
    }

    /// Records an error against a member.
    pub fn reject(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// Drops the members not taken yet, for an API that ignores members
    /// it does not know rather than refusing them.
    pub fn ignore_others(&mut self) {
        self.members.clear();
    }

    /// An optional positive integer (a JSON number, or a string of
    /// decimal digits as form-minded clients send); `Ok(None)` when absent.
    pub fn optional_positive_integer(&mut self, name: &str) -> Result<Option<i64>, Rejected> {
        let value = match self.take(name) {
            None => return Ok(None),
            Some(Value::Number(number)) => number.as_i64(),
            Some(Value::String(text)) if text.len() <= 19 => text.parse::<i64>().ok(),
            Some(_) => None,
        };
        match value.filter(|number| *number >= 1) {
            Some(number) => Ok(Some(number)),
            None => {
                self.reject(field_error(
                    name,
                    FieldCode::InvalidValue,
                    format!("`{}` must be a positive integer.", quoted(name)),
                ));
                Err(Rejected)
            }
        }
    }

    /// Takes a member; explicit `null` counts as absent.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.members.remove(name).filter(|value| !value.is_null())
    }

    /// Whether the member `name` is given, and not `null`.
    fn has(&self, name: &str) -> bool {
        self.members.get(name).is_some_and(|value| !value.is_null())
    }

    fn wrong_type(&mut self, name: &str, expected: &str) {
        self.reject(field_error(
            name,
            FieldCode::InvalidType,
            format!("`{}` must be {expected}.", quoted(name)),
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
                    format!("`{}` is required.", quoted(name)),
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

    /// A required string naming one of `all`, whose wire names `as_str`
    /// gives.
    pub fn required_choice<T: Copy>(
        &mut self,
        name: &str,
        all: &[T],
        as_str: fn(T) -> &'static str,
    ) -> Option<T> {
        if !self.has(name) {
            self.reject(field_error(
                name,
                FieldCode::MissingRequired,
                format!("`{}` is required.", quoted(name)),
            ));
            return None;
        }
        self.optional_choice(name, all, as_str).ok().flatten()
    }

    /// An optional array of strings, each parsed by `parse` (`what`
    /// describes a valid element); errors point at the elements. An empty
    /// array is as good as none.
    pub fn optional_list<T>(
        &mut self,
        name: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, Rejected> {
        let items = match self.take(name) {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.wrong_type(name, "an array of strings");
                return Err(Rejected);
            }
        };
        let mut parsed = Vec::with_capacity(items.len());
        let mut rejected = false;
        for (index, item) in items.iter().enumerate() {
            let element = |code: FieldCode, detail: String| FieldError {
                pointer: format!("{}/{index}", pointer_to(name)),
                detail,
                code,
            };
            match item {
                Value::String(text) => match parse(text) {
                    Some(value) => parsed.push(value),
                    None => {
                        rejected = true;
                        // Built only while the list has room for it.
                        self.errors.push_with(|| {
                            element(
                                FieldCode::InvalidValue,
                                format!("Each entry of `{}` must be {what}.", quoted(name)),
                            )
                        });
                    }
                },
                _ => {
                    rejected = true;
                    self.errors.push_with(|| {
                        element(
                            FieldCode::InvalidType,
                            format!("Each entry of `{}` must be a string.", quoted(name)),
                        )
                    });
                }
            }
        }
        if rejected { Err(Rejected) } else { Ok(parsed) }
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
                        format!("`{}` must be {what}.", quoted(name)),
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

    fn reply(value: Value) -> Result<(MessageBody, Option<bool>), FieldErrors> {
        Fields::read(value, |fields| {
            let message = fields.required_text("message", MessageBody::parse);
            let encrypted = fields.optional_bool("encrypted");
            Some((message?, encrypted.ok()?))
        })
    }

    fn codes(result: Result<(MessageBody, Option<bool>), FieldErrors>) -> Vec<(String, FieldCode)> {
        result
            .err()
            .unwrap_or_default()
            .into_vec()
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

    #[test]
    fn pointers_escape_and_stop_at_their_limit() {
        assert_eq!(pointer_to("a/b~c"), "/a~1b~0c");
        let long = pointer_to(&"/".repeat(10_000));
        // Each `/` is sent as `~1`: 126 of them and the marker make 256.
        assert_eq!(long, format!("/{}…", "~1".repeat(126)));
        assert!(long.len() <= crate::api::problem::MAX_POINTER_BYTES);
    }

    #[test]
    fn first_sorted_keeps_the_smallest_names_in_order() {
        let names = ["m", "c", "x", "a", "q", "b"];
        assert_eq!(first_sorted(names, 3), ["a", "b", "c"]);
        assert_eq!(first_sorted(names, 10), ["a", "b", "c", "m", "q", "x"]);
        assert!(first_sorted(names, 0).is_empty());
    }

    #[test]
    fn thousands_of_unknown_members_list_a_hundred() {
        let members: Map<String, Value> = (0..87_000)
            .map(|n| (format!("u{n:05}"), Value::Null))
            .collect();
        let listed = reply(Value::Object(members))
            .err()
            .unwrap_or_default()
            .into_vec();
        assert_eq!(listed.len(), 100);
        // `message` is missing, then the unknown names in order.
        assert_eq!(listed[0].pointer, "/message");
        assert_eq!(listed[1].pointer, "/u00000");
        assert_eq!(listed[98].pointer, "/u00097");
        assert_eq!(listed[99].code, FieldCode::TooManyErrors);
        assert!(
            listed[99]
                .detail
                .starts_with("86902 more errors were found")
        );
    }
}
