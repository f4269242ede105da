//! `ticketd workspace|user|key create ...`: provisioning, printed as one
//! JSON line each (their `list` commands are [`super::listing`]'s).

use clap::Subcommand;
use serde::Serialize;

use super::listing::{self, Columns, OutputFormat};
use super::{CliError, print_json};
use crate::config::Config;
use crate::core::access::{Role, Scopes};
use crate::core::agency_signature;
use crate::core::id::{KeyId, UserId, WorkspaceId};
use crate::core::time::Timestamp;
use crate::core::token::ApiToken;
use crate::core::workspace::{
    ApiKey, DisplayName, Email, NewApiKey, NewUser, NewWorkspace, User, Workspace, WorkspaceCode,
};
use crate::encryption::{self, MissingKeyFile};
use crate::store::{self, Constraint, DatabaseUrl, StoreError};

/// `workspace` subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Unique short code (A-Z, 0-9, - and _). Default: derived from the name.
        #[arg(long)]
        code: Option<String>,
    },
    /// List every workspace.
    List {
        /// json (one object per line) or table.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Print the workspace's agency signature: the `X-Agency-Signature`
    /// its apps send with every request of the agency profile. Starts the
    /// workspace's first signature generation if it has none.
    AgencySignature {
        /// The workspace (`ws_...`).
        #[arg(value_name = "WS_ID")]
        workspace: String,
    },
    /// Start a new generation of the workspace's agency signatures and
    /// print one: every earlier signature of the workspace stops working
    /// (on running servers once their cached API keys are read again,
    /// within `api_key_cache_secs`).
    RotateSignature {
        /// The workspace (`ws_...`).
        #[arg(value_name = "WS_ID")]
        workspace: String,
    },
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user in a workspace.
    Create {
        /// The workspace (`ws_...`).
        #[arg(long, value_name = "WS_ID")]
        workspace: String,
        /// customer, staff or automation.
        #[arg(long)]
        role: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Contact address.
        #[arg(long)]
        email: Option<String>,
    },
    /// List a workspace's users.
    List {
        /// The workspace (`ws_...`).
        #[arg(long, value_name = "WS_ID")]
        workspace: String,
        /// json (one object per line) or table.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
}

/// `key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a user; prints its token once.
    Create {
        /// The user the key acts as (`usr_...`).
        #[arg(long, value_name = "USR_ID")]
        user: String,
        /// Comma-separated scopes.
        #[arg(long, default_value = "read:support,write:support")]
        scopes: String,
    },
    /// Revoke an API key.
    Revoke {
        /// The key (`key_...`).
        #[arg(value_name = "KEY_ID")]
        key: String,
    },
    /// List a user's API keys, revoked ones too (never their secrets).
    List {
        /// The user (`usr_...`).
        #[arg(long, value_name = "USR_ID")]
        user: String,
        /// json (one object per line) or table.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
}

/// A workspace as printed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WorkspaceOutput {
    id: String,
    numeric_id: i64,
    name: String,
    code: String,
    plan: String,
    created_at: String,
}

impl Columns for WorkspaceOutput {
    const COLUMNS: &'static [&'static str] =
        &["id", "numericId", "name", "code", "plan", "createdAt"];
}

impl From<Workspace> for WorkspaceOutput {
    fn from(workspace: Workspace) -> Self {
        Self {
            id: workspace.id.to_string(),
            numeric_id: workspace.numeric_id,
            name: workspace.name,
            code: workspace.code,
            plan: workspace.plan,
            created_at: workspace.created_at.to_string(),
        }
    }
}

/// An agency signature as printed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignatureOutput {
    workspace: String,
    agency_id: i64,
    agency_code: String,
    signature: String,
}

pub(super) async fn workspace(config: &Config, command: WorkspaceCommand) -> Result<(), CliError> {
    let (workspace, replace) = match command {
        WorkspaceCommand::Create { name, code } => {
            return create_workspace(&config.database, name, code).await;
        }
        WorkspaceCommand::List { format } => {
            return listing::workspaces(&config.database, format).await;
        }
        WorkspaceCommand::AgencySignature { workspace } => (workspace, false),
        WorkspaceCommand::RotateSignature { workspace } => (workspace, true),
    };
    let id = WorkspaceId::parse(&workspace).ok_or("WS_ID must be a workspace id (ws_...)")?;
    let store = store::open(&config.database)
        .await
        .map_err(CliError::store)?;
    let encryption = encryption::setup(
        store.as_ref(),
        &config.encryption_key_file,
        MissingKeyFile::CreateForNewDatabase,
    )
    .await?;
    let generation = agency_signature::new_generation().map_err(CliError::from_error)?;
    let agency = store
        .agency_signature_generation(id, generation, replace)
        .await
        .map_err(|error| match error {
            StoreError::NotFound => CliError::new(format!("no workspace {workspace}")),
            other => CliError::store(other),
        })?;
    let signature = encryption
        .agency_signature_key()
        .mint(&agency, Timestamp::now())
        .ok_or("the workspace has no signature generation")?;
    print_json(&SignatureOutput {
        workspace,
        agency_id: agency.numeric_id,
        agency_code: agency.code,
        signature,
    })
}

async fn create_workspace(
    database: &DatabaseUrl,
    name: String,
    code: Option<String>,
) -> Result<(), CliError> {
    let name = DisplayName::parse(&name)
        .map_err(|_| "--name must be 1 to 200 characters")?
        .into_string();
    let code = match code {
        Some(code) => WorkspaceCode::parse(&code)
            .ok_or("--code must be 2 to 32 characters of A-Z, 0-9, - and _, starting with a letter or digit")?,
        None => WorkspaceCode::derive_from(&name),
    };
    let store = store::open(database).await.map_err(CliError::store)?;
    let new = NewWorkspace {
        id: WorkspaceId::generate(),
        name,
        code: code.clone(),
        created_at: Timestamp::now(),
    };
    let workspace = store
        .create_workspace(new)
        .await
        .map_err(|error| match error {
            error @ StoreError::Conflict(Constraint::WorkspaceCode) => CliError::caused_by(
                format!(
                    "the workspace code {} is taken; choose another with --code",
                    code.as_str()
                ),
                error,
            ),
            other => CliError::store(other),
        })?;
    print_json(&WorkspaceOutput::from(workspace))
}

/// A user as printed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserOutput {
    id: String,
    workspace_id: String,
    role: &'static str,
    name: String,
    email: Option<String>,
    created_at: String,
}

impl Columns for UserOutput {
    const COLUMNS: &'static [&'static str] =
        &["id", "workspaceId", "role", "name", "email", "createdAt"];
}

impl From<User> for UserOutput {
    fn from(user: User) -> Self {
        Self {
            id: user.id.to_string(),
            workspace_id: user.workspace_id.to_string(),
            role: user.role.as_str(),
            name: user.name,
            email: user.email,
            created_at: user.created_at.to_string(),
        }
    }
}

pub(super) async fn user(database: &DatabaseUrl, command: UserCommand) -> Result<(), CliError> {
    let (workspace, role, name, email) = match command {
        UserCommand::Create {
            workspace,
            role,
            name,
            email,
        } => (workspace, role, name, email),
        UserCommand::List { workspace, format } => {
            return listing::users(database, &workspace, format).await;
        }
    };
    let workspace_id = WorkspaceId::parse(&workspace).ok_or("--workspace must be a ws_ id")?;
    let role = Role::parse(&role).ok_or("--role must be customer, staff or automation")?;
    let name = DisplayName::parse(&name)
        .map_err(|_| "--name must be 1 to 200 characters")?
        .into_string();
    let email = email
        .map(|email| Email::parse(&email).ok_or("--email must be an email address"))
        .transpose()?
        .map(Email::into_string);
    let store = store::open(database).await.map_err(CliError::store)?;
    let new = NewUser {
        id: UserId::generate(),
        workspace_id,
        role,
        name,
        email,
        created_at: Timestamp::now(),
    };
    let user = store.create_user(new).await.map_err(|error| match error {
        error @ StoreError::NotFound => {
            CliError::caused_by(format!("no workspace {workspace_id}"), error)
        }
        other => CliError::store(other),
    })?;
    print_json(&UserOutput::from(user))
}

/// An API key as printed; `token` only when it was just created.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyOutput {
    id: String,
    user_id: String,
    workspace_id: String,
    scopes: Vec<&'static str>,
    created_at: String,
    revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl Columns for KeyOutput {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "userId",
        "workspaceId",
        "scopes",
        "createdAt",
        "revokedAt",
    ];
}

impl KeyOutput {
    pub(super) fn new(key: ApiKey, token: Option<String>) -> Self {
        Self {
            id: key.id.to_string(),
            user_id: key.user_id.to_string(),
            workspace_id: key.workspace_id.to_string(),
            scopes: key.scopes.iter().map(|scope| scope.as_str()).collect(),
            created_at: key.created_at.to_string(),
            revoked_at: key.revoked_at.map(|at| at.to_string()),
            token,
        }
    }
}

pub(super) async fn key(database: &DatabaseUrl, command: KeyCommand) -> Result<(), CliError> {
    match command {
        KeyCommand::Create { user, scopes } => {
            let user_id = UserId::parse(&user).ok_or("--user must be a usr_ id")?;
            let scopes = Scopes::parse_list(&scopes).map_err(|unknown| {
                format!("unknown scope {unknown:?}: use read:support and/or write:support")
            })?;
            if scopes.is_empty() {
                return Err("--scopes must name at least one scope".into());
            }
            let token = ApiToken::generate(KeyId::generate()).map_err(|error| {
                CliError::caused_by(
                    format!("no randomness for the key's secret: {error}"),
                    error,
                )
            })?;
            let store = store::open(database).await.map_err(CliError::store)?;
            let new = NewApiKey {
                id: token.key_id,
                user_id,
                scopes,
                secret_hash: token.secret_hash(),
                created_at: Timestamp::now(),
            };
            let key = store
                .create_api_key(new)
                .await
                .map_err(|error| match error {
                    error @ StoreError::NotFound => {
                        CliError::caused_by(format!("no user {user_id}"), error)
                    }
                    other => CliError::store(other),
                })?;
            print_json(&KeyOutput::new(key, Some(token.expose())))
        }
        KeyCommand::List { user, format } => listing::keys(database, &user, format).await,
        KeyCommand::Revoke { key } => {
            let key_id = KeyId::parse(&key).ok_or("KEY_ID must be a key_ id")?;
            let store = store::open(database).await.map_err(CliError::store)?;
            let key = store
                .revoke_api_key(key_id, Timestamp::now())
                .await
                .map_err(|error| match error {
                    error @ StoreError::NotFound => {
                        CliError::caused_by(format!("no key {key_id}"), error)
                    }
                    other => CliError::store(other),
                })?;
            print_json(&KeyOutput::new(key, None))
        }
    }
}
