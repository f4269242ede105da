//! Who is calling and what they may do: roles, scopes and the acting user.

use crate::core::id::{KeyId, UserId, WorkspaceId};

/// A user's role in their workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Owns tickets; sees only their own.
    Customer,
    /// A person at the business; sees every ticket of the workspace.
    Staff,
    /// A bot or AI agent acting for the business; sees what staff see.
    Automation,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Customer, Role::Staff, Role::Automation];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Staff => "staff",
            Role::Automation => "automation",
        }
    }

    /// Parses a wire or storage name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// Whether this role acts for the business (sees the whole workspace).
    pub fn is_agent(self) -> bool {
        matches!(self, Role::Staff | Role::Automation)
    }
}

/// A permission an API key can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read tickets and messages (`read:support`).
    ReadSupport,
    /// Open tickets, reply, close and reopen (`write:support`).
    WriteSupport,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 2] = [Scope::ReadSupport, Scope::WriteSupport];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ReadSupport => "read:support",
            Scope::WriteSupport => "write:support",
        }
    }

    /// Parses a wire or storage name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    fn bit(self) -> u8 {
        match self {
            Scope::ReadSupport => 1,
            Scope::WriteSupport => 2,
        }
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// Both scopes: the default for a new key.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Whether the set holds `scope`.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |scope| self.contains(*scope))
    }

    /// The comma-separated form (`read:support,write:support`).
    pub fn to_list(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(",")
    }

    /// Parses a comma-separated list; `Err` names the first unknown scope.
    pub fn parse_list(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| Scope::parse(part).ok_or_else(|| part.to_owned()))
            .collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |bits, scope| bits | scope.bit()))
    }
}

/// Which tickets an actor sees and writes, beside the workspace it is
/// confined to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TicketScope {
    /// As its role allows: a customer its own, staff and automation all of
    /// the workspace's (the canonical API).
    #[default]
    ByRole,
    /// Only the tickets it owns as their customer, whatever its role (an
    /// API whose tickets are owner-scoped, as TeamBattles' are).
    Own,
}

/// The user a request acts as, resolved from its API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The workspace everything the actor does is confined to.
    pub workspace_id: WorkspaceId,
    /// The acting user.
    pub user_id: UserId,
    /// The user's role.
    pub role: Role,
    /// The user's display name now (stored with each message they send).
    pub name: String,
    /// Which of the workspace's tickets it sees and writes.
    pub scope: TicketScope,
}

impl Actor {
    /// The customer whose tickets alone the actor may see: the actor, if a
    /// customer or scoped to its own tickets; `None` for staff and
    /// automation, who see their whole workspace.
    pub fn visible_customer(&self) -> Option<UserId> {
        (!self.role.is_agent() || self.scope == TicketScope::Own).then_some(self.user_id)
    }

    /// The same user, seeing and writing only the tickets it owns.
    #[must_use]
    pub fn scoped_to_own_tickets(self) -> Self {
        Self {
            scope: TicketScope::Own,
            ..self
        }
    }
}

/// An actor of `actor`'s workspace that sees all of its tickets: for telling
/// "another user's ticket" from "no such ticket" when `actor`, scoped to its
/// own, was refused one. Never to act with.
pub fn workspace_reader(actor: &Actor) -> Actor {
    Actor {
        role: Role::Staff,
        scope: TicketScope::ByRole,
        ..actor.clone()
    }
}

/// Why the actor may not open a ticket for the customer it named (or did
/// not name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OnBehalfOfError {
    /// A customer named a customer: only staff and automation open tickets
    /// on a customer's behalf.
    #[error("only staff and automation users can open a ticket on a customer's behalf")]
    CustomerMayNotName,
    /// Staff or automation named nobody: their tickets belong to a customer.
    #[error("staff and automation must name the customer a ticket is for")]
    CustomerRequired,
}

/// Who a ticket opened by a user with `role` is for, given the customer the
/// request names:
///
/// | role                | names nobody        | names a customer      |
/// |---------------------|---------------------|-----------------------|
/// | customer            | themselves (`None`) | `CustomerMayNotName`  |
/// | staff or automation | `CustomerRequired`  | that customer         |
///
/// Whether the named user is a customer of the workspace is the store's
/// check, in the transaction that writes.
///
/// # Errors
/// As the table says.
pub fn on_behalf_of(role: Role, named: Option<UserId>) -> Result<Option<UserId>, OnBehalfOfError> {
    match (role.is_agent(), named) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(OnBehalfOfError::CustomerMayNotName),
        (true, Some(customer)) => Ok(Some(customer)),
        (true, None) => Err(OnBehalfOfError::CustomerRequired),
    }
}

/// An authenticated API key and the user behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key that authenticated the request.
    pub key_id: KeyId,
    /// What the key may do.
    pub scopes: Scopes,
    /// Who it acts as.
    pub actor: Actor,
    /// The workspace the key belongs to (the actor's).
    pub workspace: KeyWorkspace,
}

/// The workspace of an API key, as the APIs that name it show it
/// (Daakey's agency id and code) and as its agency signatures are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWorkspace {
    /// Its numeric id.
    pub numeric_id: i64,
    /// Its unique short code.
    pub code: String,
    /// The generation of its agency signatures, once one was minted
    /// ([`crate::core::agency_signature`]); only signatures of this
    /// generation are accepted.
    pub agency_signature_kid: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_a_ticket_is_for() {
        let named = UserId::generate();
        let cases = [
            (Role::Customer, None, Ok(None)),
            (
                Role::Customer,
                Some(named),
                Err(OnBehalfOfError::CustomerMayNotName),
            ),
            (Role::Staff, Some(named), Ok(Some(named))),
            (Role::Automation, Some(named), Ok(Some(named))),
            (Role::Staff, None, Err(OnBehalfOfError::CustomerRequired)),
            (
                Role::Automation,
                None,
                Err(OnBehalfOfError::CustomerRequired),
            ),
        ];
        for (role, requested, expected) in cases {
            assert_eq!(
                on_behalf_of(role, requested),
                expected,
                "{role:?} {requested:?}"
            );
        }
    }

    #[test]
    fn scopes_parse_and_print() {
        let scopes = Scopes::parse_list("write:support, read:support");
        assert_eq!(scopes, Ok(Scopes::all()));
        assert_eq!(Scopes::all().to_list(), "read:support,write:support");
        assert_eq!(
            Scopes::parse_list("read:support,admin"),
            Err("admin".to_owned())
        );
        let read_only = Scopes::parse_list("read:support").unwrap_or_default();
        assert!(read_only.contains(Scope::ReadSupport));
        assert!(!read_only.contains(Scope::WriteSupport));
    }

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
        assert!(Role::Staff.is_agent() && Role::Automation.is_agent());
        assert!(!Role::Customer.is_agent());
    }
}
