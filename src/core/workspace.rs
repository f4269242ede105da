//! Workspaces, users and API keys: the provisioning model.

use crate::core::access::{Role, Scopes};
use crate::core::id::{KeyId, UserId, WorkspaceId};
use crate::core::text::{TextError, check_name};
use crate::core::time::Timestamp;
use crate::core::token::SecretHash;

/// A workspace's short code (`ACME`, `AGENCY123`): 2 to 32 characters of
/// `A-Z`, `0-9`, `-` and `_`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceCode(String);

impl WorkspaceCode {
    /// Validates a code as given.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let valid = (2..=32).contains(&bytes.len())
            && (bytes[0].is_ascii_uppercase() || bytes[0].is_ascii_digit())
            && bytes
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_');
        valid.then(|| Self(text.to_owned()))
    }

    /// A code derived from a workspace name: its letters and digits in upper
    /// case, at most 24 of them (`"Acme Hosting AB"` gives `ACMEHOSTINGAB`).
    pub fn derive_from(name: &str) -> Self {
        let code: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .take(24)
            .collect();
        if code.len() >= 2 {
            Self(code)
        } else {
            Self(format!("WS{code}"))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest contact address, in bytes.
pub const EMAIL_MAX_BYTES: usize = 320;

/// Whether `text` passes for a contact address: it holds an `@`, is at
/// most [`EMAIL_MAX_BYTES`] long and holds no NUL.
pub fn is_email(text: &str) -> bool {
    text.contains('@') && text.len() <= EMAIL_MAX_BYTES && !text.contains('\0')
}

/// A workspace's or user's display name, as provisioned: trimmed of
/// surrounding whitespace, then 1 to 200 characters without NUL (see
/// [`crate::core::text::check_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Trims `text` and validates what is left.
    ///
    /// # Errors
    /// Blank, too long, or holding a NUL character.
    pub fn parse(text: &str) -> Result<Self, TextError> {
        let name = text.trim();
        check_name(name)?;
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, as the records store it.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A contact address that passes [`is_email`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Validates `text` as given (it is not trimmed).
    pub fn parse(text: &str) -> Option<Self> {
        is_email(text).then(|| Self(text.to_owned()))
    }

    /// The address, as the records store it.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A workspace as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Its `ws_` id.
    pub id: WorkspaceId,
    /// Numeric id (1, 2, ...), for clients that address workspaces by number.
    pub numeric_id: i64,
    /// Display name.
    pub name: String,
    /// Unique short code.
    pub code: String,
    /// The plan it is on, as the operator named it (ticketd gives it no
    /// meaning).
    pub plan: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A workspace to create.
#[derive(Debug, Clone)]
pub struct NewWorkspace {
    /// The id to give it.
    pub id: WorkspaceId,
    /// Display name.
    pub name: String,
    /// Unique short code.
    pub code: WorkspaceCode,
    /// When it is created.
    pub created_at: Timestamp,
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its `usr_` id.
    pub id: UserId,
    /// The workspace the user belongs to.
    pub workspace_id: WorkspaceId,
    /// Role.
    pub role: Role,
    /// Display name.
    pub name: String,
    /// Contact address, if known.
    pub email: Option<String>,
    /// When the user was created.
    pub created_at: Timestamp,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The id to give them.
    pub id: UserId,
    /// The workspace they join.
    pub workspace_id: WorkspaceId,
    /// Role.
    pub role: Role,
    /// Display name.
    pub name: String,
    /// Contact address.
    pub email: Option<String>,
    /// When it is created.
    pub created_at: Timestamp,
}

/// An API key as stored (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public id.
    pub id: KeyId,
    /// The user the key acts as.
    pub user_id: UserId,
    /// That user's workspace.
    pub workspace_id: WorkspaceId,
    /// What the key may do.
    pub scopes: Scopes,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// An API key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The id embedded in its token.
    pub id: KeyId,
    /// The user it acts as.
    pub user_id: UserId,
    /// What it may do.
    pub scopes: Scopes,
    /// Digest of the token's secret.
    pub secret_hash: SecretHash,
    /// When it is created.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_checked() {
        assert_eq!(DisplayName::parse("  Acme  ").unwrap().as_str(), "Acme");
        assert_eq!(
            DisplayName::parse(&"x".repeat(200)).unwrap().as_str().len(),
            200
        );
        assert!(DisplayName::parse(&"x".repeat(201)).is_err());
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("").is_err());
        assert!(DisplayName::parse("a\0b").is_err());
    }

    #[test]
    fn emails_need_an_at_sign_and_no_nul_within_the_length() {
        assert_eq!(Email::parse("a@b").unwrap().into_string(), "a@b");
        assert!(Email::parse("ab").is_none());
        assert!(Email::parse("a@\0").is_none());
        let long = format!("a@{}", "b".repeat(EMAIL_MAX_BYTES - 2));
        assert!(Email::parse(&long).is_some());
        assert!(Email::parse(&format!("{long}b")).is_none());
    }

    #[test]
    fn codes_are_validated() {
        for good in ["AGENCY123", "ACME", "A1", "MY-SHOP_2"] {
            assert!(WorkspaceCode::parse(good).is_some(), "{good}");
        }
        for bad in ["", "A", "acme", "-ACME", "ÅÄÖ", &"A".repeat(33)] {
            assert!(WorkspaceCode::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn codes_derive_from_names() {
        assert_eq!(
            WorkspaceCode::derive_from("Acme Hosting AB").as_str(),
            "ACMEHOSTINGAB"
        );
        assert_eq!(WorkspaceCode::derive_from("å").as_str(), "WS");
        let derived = WorkspaceCode::derive_from("x");
        assert!(WorkspaceCode::parse(derived.as_str()).is_some());
    }
}
