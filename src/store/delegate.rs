//! Forwarding for wrappers: a type that wraps another [`Store`] and
//! implements [`Delegating`] gets every role it leaves alone
//! ([`ProvisioningStore`], [`DataKeyStore`], [`UploadStore`]) passed straight through to the
//! store it wraps, instead of a hand-written method per call.
//!
//! A wrapper implements the roles it changes by hand (and [`Store`]
//! itself); the blanket impls here cover the rest. Coherence holds because
//! [`Delegating`] is local: no backend implements it.

use async_trait::async_trait;

use crate::core::access::{Actor, KeyWorkspace};
use crate::core::crypto::DataKeyId;
use crate::core::id::{KeyId, MessageId, TicketId, UploadId, UserId, WorkspaceId};
use crate::core::time::Timestamp;
use crate::core::upload::{NewUpload, Upload};
use crate::core::workspace::{ApiKey, NewApiKey, NewUser, NewWorkspace, User, Workspace};
use crate::store::idempotency::Completion;
use crate::store::{
    DataKeyStore, KeyCredentials, ProvisioningStore, RegisteredKey, Reseal, SealedUploadKey, Store,
    StoreError, StoredBody, UploadKeyReseal, UploadStore, Written,
};

/// A store in front of another, which it forwards the roles it does not
/// change to.
pub(crate) trait Delegating: Send + Sync {
    /// The store this one wraps.
    fn inner(&self) -> &dyn Store;
}

#[async_trait]
impl<T: Delegating> ProvisioningStore for T {
    async fn create_workspace(&self, new: NewWorkspace) -> Result<Workspace, StoreError> {
        self.inner().create_workspace(new).await
    }

    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        self.inner().create_user(new).await
    }

    async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError> {
        self.inner().create_api_key(new).await
    }

    async fn revoke_api_key(&self, id: KeyId, at: Timestamp) -> Result<ApiKey, StoreError> {
        self.inner().revoke_api_key(id, at).await
    }

    async fn find_key_credentials(&self, id: KeyId) -> Result<Option<KeyCredentials>, StoreError> {
        self.inner().find_key_credentials(id).await
    }

    async fn list_workspaces(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Workspace>, StoreError> {
        self.inner().list_workspaces(after, limit).await
    }

    async fn list_users(
        &self,
        workspace: WorkspaceId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        self.inner().list_users(workspace, after, limit).await
    }

    async fn list_api_keys(
        &self,
        user: UserId,
        after: Option<KeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError> {
        self.inner().list_api_keys(user, after, limit).await
    }

    async fn agency_signature_generation(
        &self,
        workspace: WorkspaceId,
        generation: String,
        replace: bool,
    ) -> Result<KeyWorkspace, StoreError> {
        self.inner()
            .agency_signature_generation(workspace, generation, replace)
            .await
    }
}

#[async_trait]
impl<T: Delegating> DataKeyStore for T {
    async fn encryption_keys(&self) -> Result<Vec<RegisteredKey>, StoreError> {
        self.inner().encryption_keys().await
    }

    async fn register_encryption_keys(
        &self,
        keys: Vec<RegisteredKey>,
        at: Timestamp,
    ) -> Result<Vec<RegisteredKey>, StoreError> {
        self.inner().register_encryption_keys(keys, at).await
    }

    async fn retire_encryption_keys_except(&self, current: DataKeyId) -> Result<(), StoreError> {
        self.inner().retire_encryption_keys_except(current).await
    }

    async fn delete_encryption_key(&self, id: DataKeyId) -> Result<bool, StoreError> {
        self.inner().delete_encryption_key(id).await
    }

    async fn encrypted_messages(
        &self,
        except: Option<DataKeyId>,
        after: Option<(TicketId, i64)>,
        limit: u32,
    ) -> Result<Vec<StoredBody>, StoreError> {
        self.inner().encrypted_messages(except, after, limit).await
    }

    async fn reseal_messages(&self, reseals: Vec<Reseal>) -> Result<u64, StoreError> {
        self.inner().reseal_messages(reseals).await
    }

    async fn sealed_upload_keys(
        &self,
        except: Option<DataKeyId>,
        after: Option<UploadId>,
        limit: u32,
    ) -> Result<Vec<SealedUploadKey>, StoreError> {
        self.inner().sealed_upload_keys(except, after, limit).await
    }

    async fn reseal_upload_keys(&self, reseals: Vec<UploadKeyReseal>) -> Result<u64, StoreError> {
        self.inner().reseal_upload_keys(reseals).await
    }

    async fn server_secret_check(&self) -> Result<Option<String>, StoreError> {
        self.inner().server_secret_check().await
    }

    async fn register_server_secret(
        &self,
        check_value: String,
        at: Timestamp,
    ) -> Result<String, StoreError> {
        self.inner().register_server_secret(check_value, at).await
    }
}

#[async_trait]
impl<T: Delegating> UploadStore for T {
    async fn create_upload(&self, actor: &Actor, new: NewUpload) -> Result<Upload, StoreError> {
        self.inner().create_upload(actor, new).await
    }

    async fn store_upload(
        &self,
        id: UploadId,
        size: u64,
        sha256: String,
        expires_at: Timestamp,
        completion: Option<Completion<Upload>>,
    ) -> Result<Written<Upload>, StoreError> {
        self.inner()
            .store_upload(id, size, sha256, expires_at, completion)
            .await
    }

    async fn find_upload(&self, actor: &Actor, id: UploadId) -> Result<Upload, StoreError> {
        self.inner().find_upload(actor, id).await
    }

    async fn attached_upload(
        &self,
        message: MessageId,
        id: UploadId,
    ) -> Result<Upload, StoreError> {
        self.inner().attached_upload(message, id).await
    }

    async fn uploads_to_sweep(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<UploadId>, StoreError> {
        self.inner().uploads_to_sweep(now, limit).await
    }

    async fn start_deleting_upload(
        &self,
        id: UploadId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner().start_deleting_upload(id, now).await
    }

    async fn abandon_upload(&self, id: UploadId) -> Result<bool, StoreError> {
        self.inner().abandon_upload(id).await
    }

    async fn delete_upload(&self, id: UploadId) -> Result<(), StoreError> {
        self.inner().delete_upload(id).await
    }

    async fn use_upload_url(&self, nonce: u128, expires_at: Timestamp) -> Result<bool, StoreError> {
        self.inner().use_upload_url(nonce, expires_at).await
    }

    async fn sweep_upload_urls(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.inner().sweep_upload_urls(now, limit).await
    }
}
