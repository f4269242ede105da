//! Workspaces, users and API keys.

use deadpool_postgres::Object;
use tokio_postgres::Row;

use async_trait::async_trait;

use crate::core::access::{Actor, KeyWorkspace, Principal, Role, Scopes, TicketScope};
use crate::core::id::{KeyId, UserId, WorkspaceId};
use crate::core::time::Timestamp;
use crate::core::token::SecretHash;
use crate::core::workspace::{ApiKey, NewApiKey, NewUser, NewWorkspace, User, Workspace};
use crate::store::ProvisioningStore;
use crate::store::postgres::PostgresStore;
use crate::store::postgres::rows::{get, optional_timestamp, parsed, timestamp, to_sql_time};
use crate::store::postgres::{execute, map_error, query, query_opt};
use crate::store::{KeyCredentials, StoreError};

/// The plan every new workspace starts on.
const DEFAULT_PLAN: &str = "standard";

pub(super) async fn create_workspace(
    client: &mut Object,
    new: &NewWorkspace,
) -> Result<Workspace, StoreError> {
    let tx = client.transaction().await.map_err(map_error)?;
    // Numeric ids are dense, one more than the highest, as on SQLite; the
    // lock (which lets reads through) makes concurrent creations take turns.
    tx.batch_execute("LOCK TABLE workspace IN SHARE ROW EXCLUSIVE MODE")
        .await
        .map_err(map_error)?;
    let row = query_opt(
        &tx,
        "INSERT INTO workspace (numeric_id, id, name, code, plan, created_at)
         SELECT coalesce(max(numeric_id), 0) + 1, $1, $2, $3, $4, $5 FROM workspace
         RETURNING numeric_id",
        &[
            &new.id.key(),
            &new.name,
            &new.code.as_str(),
            &DEFAULT_PLAN,
            &to_sql_time(new.created_at),
        ],
    )
    .await?
    .ok_or_else(|| StoreError::Other("the insert returned no row".into()))?;
    let numeric_id: i64 = get(&row, 0)?;
    tx.commit().await.map_err(map_error)?;
    Ok(Workspace {
        id: new.id,
        numeric_id,
        name: new.name.clone(),
        code: new.code.as_str().to_owned(),
        plan: DEFAULT_PLAN.to_owned(),
        created_at: new.created_at,
    })
}

pub(super) async fn create_user(client: &Object, new: &NewUser) -> Result<User, StoreError> {
    let workspace = query_opt(
        client,
        "SELECT 1 FROM workspace WHERE id = $1",
        &[&new.workspace_id.key()],
    )
    .await?;
    if workspace.is_none() {
        return Err(StoreError::NotFound);
    }
    execute(
        client,
        "INSERT INTO principal (id, workspace_id, role, name, email, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &new.id.key(),
            &new.workspace_id.key(),
            &new.role.as_str(),
            &new.name,
            &new.email,
            &to_sql_time(new.created_at),
        ],
    )
    .await?;
    Ok(User {
        id: new.id,
        workspace_id: new.workspace_id,
        role: new.role,
        name: new.name.clone(),
        email: new.email.clone(),
        created_at: new.created_at,
    })
}

pub(super) async fn create_api_key(client: &Object, new: &NewApiKey) -> Result<ApiKey, StoreError> {
    let row = query_opt(
        client,
        "SELECT workspace_id FROM principal WHERE id = $1",
        &[&new.user_id.key()],
    )
    .await?
    .ok_or(StoreError::NotFound)?;
    let workspace_id = parsed(&row, 0, WorkspaceId::from_key)?;
    execute(
        client,
        "INSERT INTO api_key (id, principal_id, secret_hash, scopes, created_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &new.id.key(),
            &new.user_id.key(),
            &new.secret_hash.0.as_slice(),
            &new.scopes.to_list(),
            &to_sql_time(new.created_at),
        ],
    )
    .await?;
    Ok(ApiKey {
        id: new.id,
        user_id: new.user_id,
        workspace_id,
        scopes: new.scopes,
        created_at: new.created_at,
        revoked_at: None,
    })
}

pub(super) async fn revoke_api_key(
    client: &Object,
    id: KeyId,
    at: Timestamp,
) -> Result<ApiKey, StoreError> {
    execute(
        client,
        "UPDATE api_key SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        &[&id.key(), &to_sql_time(at)],
    )
    .await?;
    let row = query_opt(
        client,
        "SELECT k.id, k.principal_id, p.workspace_id, k.scopes, k.created_at, k.revoked_at
         FROM api_key k JOIN principal p ON p.id = k.principal_id
         WHERE k.id = $1",
        &[&id.key()],
    )
    .await?
    .ok_or(StoreError::NotFound)?;
    api_key(&row)
}

/// An API key from the columns `id, principal_id, workspace_id, scopes,
/// created_at, revoked_at`.
fn api_key(row: &Row) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: parsed(row, 0, KeyId::from_key)?,
        user_id: parsed(row, 1, UserId::from_key)?,
        workspace_id: parsed(row, 2, WorkspaceId::from_key)?,
        scopes: parsed(row, 3, |text| Scopes::parse_list(text).ok())?,
        created_at: timestamp(row, 4)?,
        revoked_at: optional_timestamp(row, 5)?,
    })
}

/// `NotFound` unless `table` has a row with the id `key`.
async fn exists(client: &Object, table: &str, key: &str) -> Result<(), StoreError> {
    let sql = format!("SELECT 1 FROM {table} WHERE id = $1");
    match query_opt(client, &sql, &[&key]).await? {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound),
    }
}

pub(super) async fn find_key_credentials(
    client: &Object,
    id: KeyId,
) -> Result<Option<KeyCredentials>, StoreError> {
    let Some(row) = query_opt(
        client,
        "SELECT k.secret_hash, k.scopes, k.revoked_at IS NOT NULL, p.id, p.workspace_id, p.role, p.name,
                w.numeric_id, w.code, w.agency_signature_kid
         FROM api_key k JOIN principal p ON p.id = k.principal_id
              JOIN workspace w ON w.id = p.workspace_id
         WHERE k.id = $1",
        &[&id.key()],
    )
    .await?
    else {
        return Ok(None);
    };
    let hash: &[u8] = get(&row, 0)?;
    Ok(Some(KeyCredentials {
        secret_hash: SecretHash::from_slice(hash)
            .ok_or_else(|| StoreError::Other("a stored secret hash is not 32 bytes".into()))?,
        revoked: get(&row, 2)?,
        principal: Principal {
            key_id: id,
            scopes: parsed(&row, 1, |text| Scopes::parse_list(text).ok())?,
            actor: Actor {
                user_id: parsed(&row, 3, UserId::from_key)?,
                workspace_id: parsed(&row, 4, WorkspaceId::from_key)?,
                role: parsed(&row, 5, Role::parse)?,
                name: get(&row, 6)?,
                scope: TicketScope::ByRole,
            },
            workspace: KeyWorkspace {
                numeric_id: get(&row, 7)?,
                code: get(&row, 8)?,
                agency_signature_kid: get(&row, 9)?,
            },
        },
    }))
}

#[async_trait]
impl ProvisioningStore for PostgresStore {
    async fn create_workspace(&self, new: NewWorkspace) -> Result<Workspace, StoreError> {
        let mut client = self.client().await?;
        create_workspace(&mut client, &new).await
    }

    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let client = self.client().await?;
        create_user(&client, &new).await
    }

    async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError> {
        let client = self.client().await?;
        create_api_key(&client, &new).await
    }

    async fn revoke_api_key(&self, id: KeyId, at: Timestamp) -> Result<ApiKey, StoreError> {
        let client = self.client().await?;
        revoke_api_key(&client, id, at).await
    }

    async fn agency_signature_generation(
        &self,
        workspace: WorkspaceId,
        generation: String,
        replace: bool,
    ) -> Result<KeyWorkspace, StoreError> {
        let client = self.client().await?;
        let row = query_opt(
            &*client,
            "UPDATE workspace SET agency_signature_kid =
                 CASE WHEN $3 OR agency_signature_kid IS NULL THEN $2
                      ELSE agency_signature_kid END
             WHERE id = $1 RETURNING numeric_id, code, agency_signature_kid",
            &[&workspace.key(), &generation, &replace],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(KeyWorkspace {
            numeric_id: get(&row, 0)?,
            code: get(&row, 1)?,
            agency_signature_kid: get(&row, 2)?,
        })
    }

    async fn find_key_credentials(&self, id: KeyId) -> Result<Option<KeyCredentials>, StoreError> {
        let client = self.client().await?;
        find_key_credentials(&client, id).await
    }

    async fn list_workspaces(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Workspace>, StoreError> {
        let client = self.client().await?;
        let rows = query(
            &*client,
            "SELECT id, numeric_id, name, code, plan, created_at FROM workspace
             WHERE numeric_id > $1 ORDER BY numeric_id LIMIT $2",
            &[&after.unwrap_or(0), &i64::from(limit)],
        )
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Workspace {
                    id: parsed(row, 0, WorkspaceId::from_key)?,
                    numeric_id: get(row, 1)?,
                    name: get(row, 2)?,
                    code: get(row, 3)?,
                    plan: get(row, 4)?,
                    created_at: timestamp(row, 5)?,
                })
            })
            .collect()
    }

    async fn list_users(
        &self,
        workspace: WorkspaceId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let client = self.client().await?;
        exists(&client, "workspace", &workspace.key()).await?;
        let after = after.map(|user| user.key()).unwrap_or_default();
        let rows = query(
            &*client,
            "SELECT id, role, name, email, created_at FROM principal
             WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            &[&workspace.key(), &after, &i64::from(limit)],
        )
        .await?;
        rows.iter()
            .map(|row| {
                Ok(User {
                    id: parsed(row, 0, UserId::from_key)?,
                    workspace_id: workspace,
                    role: parsed(row, 1, Role::parse)?,
                    name: get(row, 2)?,
                    email: get(row, 3)?,
                    created_at: timestamp(row, 4)?,
                })
            })
            .collect()
    }

    async fn list_api_keys(
        &self,
        user: UserId,
        after: Option<KeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let client = self.client().await?;
        exists(&client, "principal", &user.key()).await?;
        let after = after.map(|key| key.key()).unwrap_or_default();
        let rows = query(
            &*client,
            "SELECT k.id, k.principal_id, p.workspace_id, k.scopes, k.created_at, k.revoked_at
             FROM api_key k JOIN principal p ON p.id = k.principal_id
             WHERE k.principal_id = $1 AND k.id > $2 ORDER BY k.id LIMIT $3",
            &[&user.key(), &after, &i64::from(limit)],
        )
        .await?;
        rows.iter().map(api_key).collect()
    }
}
