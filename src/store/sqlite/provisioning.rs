//! Workspaces, users and API keys.

use rusqlite::{Connection, OptionalExtension, params};

use async_trait::async_trait;

use crate::core::access::{Actor, KeyWorkspace, Principal, Role, Scopes, TicketScope};
use crate::core::id::{KeyId, UserId, WorkspaceId};
use crate::core::time::Timestamp;
use crate::core::token::SecretHash;
use crate::core::workspace::{ApiKey, NewApiKey, NewUser, NewWorkspace, User, Workspace};
use crate::store::ProvisioningStore;
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::map_error;
use crate::store::sqlite::rows::{optional_timestamp, parsed, timestamp};
use crate::store::{KeyCredentials, StoreError};

/// The plan every new workspace starts on.
const DEFAULT_PLAN: &str = "standard";

pub(super) fn create_workspace(
    conn: &Connection,
    new: &NewWorkspace,
) -> Result<Workspace, StoreError> {
    let numeric_id = conn
        .prepare_cached(
            "INSERT INTO workspace (id, name, code, plan, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING numeric_id",
        )
        .and_then(|mut insert| {
            insert.query_row(
                params![
                    new.id.key(),
                    new.name,
                    new.code.as_str(),
                    DEFAULT_PLAN,
                    new.created_at.millis()
                ],
                |row| row.get(0),
            )
        })
        .map_err(map_error)?;
    Ok(Workspace {
        id: new.id,
        numeric_id,
        name: new.name.clone(),
        code: new.code.as_str().to_owned(),
        plan: DEFAULT_PLAN.to_owned(),
        created_at: new.created_at,
    })
}

pub(super) fn create_user(conn: &Connection, new: &NewUser) -> Result<User, StoreError> {
    let workspace_exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM workspace WHERE id = ?1)",
            [new.workspace_id.key()],
            |row| row.get(0),
        )
        .map_err(map_error)?;
    if !workspace_exists {
        return Err(StoreError::NotFound);
    }
    conn.prepare_cached(
        "INSERT INTO principal (id, workspace_id, role, name, email, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            new.id.key(),
            new.workspace_id.key(),
            new.role.as_str(),
            new.name,
            new.email,
            new.created_at.millis()
        ])
    })
    .map_err(map_error)?;
    Ok(User {
        id: new.id,
        workspace_id: new.workspace_id,
        role: new.role,
        name: new.name.clone(),
        email: new.email.clone(),
        created_at: new.created_at,
    })
}

pub(super) fn create_api_key(conn: &Connection, new: &NewApiKey) -> Result<ApiKey, StoreError> {
    let workspace_id = conn
        .query_row(
            "SELECT workspace_id FROM principal WHERE id = ?1",
            [new.user_id.key()],
            |row| parsed(row, 0, WorkspaceId::from_key),
        )
        .map_err(map_error)?;
    conn.prepare_cached(
        "INSERT INTO api_key (id, principal_id, secret_hash, scopes, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            new.id.key(),
            new.user_id.key(),
            new.secret_hash.0.as_slice(),
            new.scopes.to_list(),
            new.created_at.millis()
        ])
    })
    .map_err(map_error)?;
    Ok(ApiKey {
        id: new.id,
        user_id: new.user_id,
        workspace_id,
        scopes: new.scopes,
        created_at: new.created_at,
        revoked_at: None,
    })
}

pub(super) fn revoke_api_key(
    conn: &Connection,
    id: KeyId,
    at: Timestamp,
) -> Result<ApiKey, StoreError> {
    conn.execute(
        "UPDATE api_key SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id.key(), at.millis()],
    )
    .map_err(map_error)?;
    conn.query_row(
        "SELECT k.id, k.principal_id, p.workspace_id, k.scopes, k.created_at, k.revoked_at
         FROM api_key k JOIN principal p ON p.id = k.principal_id
         WHERE k.id = ?1",
        [id.key()],
        api_key,
    )
    .map_err(map_error)
}

/// An API key from the columns `id, principal_id, workspace_id, scopes,
/// created_at, revoked_at`.
fn api_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: parsed(row, 0, KeyId::from_key)?,
        user_id: parsed(row, 1, UserId::from_key)?,
        workspace_id: parsed(row, 2, WorkspaceId::from_key)?,
        scopes: parsed(row, 3, |text| Scopes::parse_list(text).ok())?,
        created_at: timestamp(row, 4)?,
        revoked_at: optional_timestamp(row, 5)?,
    })
}

pub(super) fn list_workspaces(
    conn: &Connection,
    after: Option<i64>,
    limit: u32,
) -> Result<Vec<Workspace>, StoreError> {
    conn.prepare_cached(
        "SELECT id, numeric_id, name, code, plan, created_at FROM workspace
         WHERE numeric_id > ?1 ORDER BY numeric_id LIMIT ?2",
    )
    .and_then(|mut select| {
        select
            .query_map(params![after.unwrap_or(0), limit], |row| {
                Ok(Workspace {
                    id: parsed(row, 0, WorkspaceId::from_key)?,
                    numeric_id: row.get(1)?,
                    name: row.get(2)?,
                    code: row.get(3)?,
                    plan: row.get(4)?,
                    created_at: timestamp(row, 5)?,
                })
            })?
            .collect()
    })
    .map_err(map_error)
}

/// `NotFound` unless `table` has a row with the id `key`.
fn exists(conn: &Connection, table: &str, key: &str) -> Result<(), StoreError> {
    let found: bool = conn
        .query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?1)"),
            [key],
            |row| row.get(0),
        )
        .map_err(map_error)?;
    if found {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

pub(super) fn list_users(
    conn: &Connection,
    workspace: WorkspaceId,
    after: Option<UserId>,
    limit: u32,
) -> Result<Vec<User>, StoreError> {
    exists(conn, "workspace", &workspace.key())?;
    conn.prepare_cached(
        "SELECT id, role, name, email, created_at FROM principal
         WHERE workspace_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )
    .and_then(|mut select| {
        let after = after.map(|user| user.key()).unwrap_or_default();
        select
            .query_map(params![workspace.key(), after, limit], |row| {
                Ok(User {
                    id: parsed(row, 0, UserId::from_key)?,
                    workspace_id: workspace,
                    role: parsed(row, 1, Role::parse)?,
                    name: row.get(2)?,
                    email: row.get(3)?,
                    created_at: timestamp(row, 4)?,
                })
            })?
            .collect()
    })
    .map_err(map_error)
}

pub(super) fn list_api_keys(
    conn: &Connection,
    user: UserId,
    after: Option<KeyId>,
    limit: u32,
) -> Result<Vec<ApiKey>, StoreError> {
    exists(conn, "principal", &user.key())?;
    conn.prepare_cached(
        "SELECT k.id, k.principal_id, p.workspace_id, k.scopes, k.created_at, k.revoked_at
         FROM api_key k JOIN principal p ON p.id = k.principal_id
         WHERE k.principal_id = ?1 AND k.id > ?2 ORDER BY k.id LIMIT ?3",
    )
    .and_then(|mut select| {
        let after = after.map(|key| key.key()).unwrap_or_default();
        select
            .query_map(params![user.key(), after, limit], api_key)?
            .collect()
    })
    .map_err(map_error)
}

pub(super) fn find_key_credentials(
    conn: &Connection,
    id: KeyId,
) -> Result<Option<KeyCredentials>, StoreError> {
    conn.prepare_cached(
        "SELECT k.secret_hash, k.scopes, k.revoked_at IS NOT NULL, p.id, p.workspace_id, p.role, p.name,
                w.numeric_id, w.code, w.agency_signature_kid
         FROM api_key k JOIN principal p ON p.id = k.principal_id
              JOIN workspace w ON w.id = p.workspace_id
         WHERE k.id = ?1",
    )
    .and_then(|mut select| {
        select
            .query_row([id.key()], |row| {
                let hash: Vec<u8> = row.get(0)?;
                Ok(KeyCredentials {
                    secret_hash: SecretHash::from_slice(&hash).ok_or_else(|| {
                        rusqlite::Error::FromSqlConversionFailure(
                            0,
                            rusqlite::types::Type::Blob,
                            "a stored secret hash is not 32 bytes".into(),
                        )
                    })?,
                    revoked: row.get(2)?,
                    principal: Principal {
                        key_id: id,
                        scopes: parsed(row, 1, |text| Scopes::parse_list(text).ok())?,
                        actor: Actor {
                            user_id: parsed(row, 3, UserId::from_key)?,
                            workspace_id: parsed(row, 4, WorkspaceId::from_key)?,
                            role: parsed(row, 5, Role::parse)?,
                            name: row.get(6)?,
                            scope: TicketScope::ByRole,
                        },
                        workspace: KeyWorkspace {
                            numeric_id: row.get(7)?,
                            code: row.get(8)?,
                            agency_signature_kid: row.get(9)?,
                        },
                    },
                })
            })
            .optional()
    })
    .map_err(map_error)
}

#[async_trait]
impl ProvisioningStore for SqliteStore {
    async fn create_workspace(&self, new: NewWorkspace) -> Result<Workspace, StoreError> {
        self.writer
            .write(move |conn| create_workspace(conn, &new))
            .await
    }

    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        self.writer.write(move |conn| create_user(conn, &new)).await
    }

    async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError> {
        self.writer
            .write(move |conn| create_api_key(conn, &new))
            .await
    }

    async fn revoke_api_key(&self, id: KeyId, at: Timestamp) -> Result<ApiKey, StoreError> {
        self.writer
            .write(move |conn| revoke_api_key(conn, id, at))
            .await
    }

    async fn find_key_credentials(&self, id: KeyId) -> Result<Option<KeyCredentials>, StoreError> {
        self.readers.read(|conn| find_key_credentials(conn, id))
    }

    async fn list_workspaces(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Workspace>, StoreError> {
        self.readers
            .read(|conn| list_workspaces(conn, after, limit))
    }

    async fn list_users(
        &self,
        workspace: WorkspaceId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        self.readers
            .read(|conn| list_users(conn, workspace, after, limit))
    }

    async fn list_api_keys(
        &self,
        user: UserId,
        after: Option<KeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError> {
        self.readers
            .read(|conn| list_api_keys(conn, user, after, limit))
    }

    async fn agency_signature_generation(
        &self,
        workspace: WorkspaceId,
        generation: String,
        replace: bool,
    ) -> Result<KeyWorkspace, StoreError> {
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE workspace SET agency_signature_kid =
                         CASE WHEN ?3 OR agency_signature_kid IS NULL THEN ?2
                              ELSE agency_signature_kid END
                     WHERE id = ?1 RETURNING numeric_id, code, agency_signature_kid",
                )
                .and_then(|mut update| {
                    update.query_row(params![workspace.key(), generation, replace], |row| {
                        Ok(KeyWorkspace {
                            numeric_id: row.get(0)?,
                            code: row.get(1)?,
                            agency_signature_kid: row.get(2)?,
                        })
                    })
                })
                .map_err(map_error)
            })
            .await
    }
}
