//! The error a command fails with: the one line printed on stderr, and the
//! error it came from, if any.

use std::error::Error;
use std::fmt;

use crate::encryption::describe;
use crate::store::StoreError;

/// Why a command failed. It displays as its message alone (the line
/// `ticketd: ...` on stderr), which already words the cause; the cause
/// itself stays reachable through [`Error::source`].
#[derive(Debug)]
pub struct CliError {
    message: String,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl CliError {
    /// A failure with no underlying error, such as a refused argument.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A failure worded as `message`, caused by `source`.
    pub fn caused_by(
        message: impl Into<String>,
        source: impl Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A storage failure, worded as everywhere else (see [`describe`]).
    pub(crate) fn store(error: StoreError) -> Self {
        Self::caused_by(describe(error.clone()), error)
    }

    /// A failure worded as its cause's own message.
    pub(crate) fn from_error(source: impl Error + Send + Sync + 'static) -> Self {
        Self::caused_by(source.to_string(), source)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for CliError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}

/// Messages of the lower layers that still speak in strings.
impl From<String> for CliError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_prints_its_message_and_keeps_its_cause() {
        let cause = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let error = CliError::caused_by(format!("cannot open dump.jsonl: {cause}"), cause);
        assert_eq!(error.to_string(), "cannot open dump.jsonl: gone");
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("gone")
        );
        assert!(
            CliError::from("--scopes must name at least one scope")
                .source()
                .is_none()
        );
        let store = CliError::store(StoreError::NotFound);
        assert_eq!(store.to_string(), "not found");
        assert!(store.source().is_some());
    }
}
