//! Storage: role traits by concern, with a backend per database.
//!
//! [`Store`] is everything ticketd keeps, as the supertrait of one trait per
//! concern: [`TicketStore`] (tickets and their messages),
//! [`ProvisioningStore`] (workspaces, users, API keys), [`TransferStore`]
//! (export and import), [`DataKeyStore`] (data keys, sealed bodies, the
//! server secret) and [`IdempotencyStore`] (idempotency records). Callers
//! hold `Arc<dyn Store>` and import the role traits they call ([`prelude`]
//! has them all); a wrapper such as
//! [`crate::encryption::EncryptedStore`] implements by hand only the
//! roles it changes and forwards the others.
//!
//! Each method is one intention and one transaction. Backends own their SQL
//! and migrations (and implement each role beside that role's SQL), map
//! their own constraint violations to [`StoreError::Conflict`] and lost
//! connections to [`StoreError::Unavailable`], and apply the core's
//! visibility rules and write plans ([`crate::core::plan`]) inside the
//! transaction that writes.

pub(crate) mod delegate;
pub mod idempotency;
pub mod postgres;
pub mod prelude;
pub mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::core::access::{Actor, KeyWorkspace, Principal};
use crate::core::crypto::DataKeyId;
use crate::core::dump::{ExportCursor, Record, RecordKind};
use crate::core::id::{KeyId, MessageId, TicketId, UploadId, UserId, WorkspaceId};
use crate::core::lifecycle::{LifecycleError, TicketAction};
use crate::core::message::{Message, MessageFilter, NewMessage};
use crate::core::page::{MessageCursor, Page, PageRequest, TicketCursor};
use crate::core::ticket::{NewTicket, Ticket, TicketFilter, TicketRef, TicketRowQuery, TicketRows};
use crate::core::time::Timestamp;
use crate::core::token::SecretHash;
use crate::core::upload::attach::AttachRefusal;
use crate::core::upload::{NewUpload, Upload};
use crate::core::workspace::{ApiKey, NewApiKey, NewUser, NewWorkspace, User, Workspace};
use crate::store::idempotency::{
    Claim, ClaimHolder, ClaimOutcome, ClaimRequest, Completion, StoredResponse,
};

/// Hands the attachments read for some messages, as `(message, file)`
/// pairs in each message's order, to their messages.
pub(crate) fn distribute_attachments(
    messages: &mut [Message],
    found: Vec<(MessageId, crate::core::upload::Attachment)>,
) {
    for (message_id, attachment) in found {
        if let Some(message) = messages.iter_mut().find(|message| message.id == message_id) {
            message.attachments.push(attachment);
        }
    }
}

/// Why a storage operation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The thing does not exist, or the actor may not see it.
    #[error("not found")]
    NotFound,
    /// A uniqueness or other constraint refused the write.
    #[error("conflict on {0}")]
    Conflict(Constraint),
    /// The lifecycle refused the change.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// A ticket was to be opened for a user who is not a customer of the
    /// actor's workspace.
    #[error("no such customer in this workspace")]
    CustomerNotFound,
    /// The uploads a message named cannot be attached to it
    /// ([`crate::core::upload::attach`]); nothing was written.
    #[error(transparent)]
    Attachments(#[from] AttachRefusal),
    /// The database cannot be reached or is shutting down; worth retrying.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// Anything else: a bug or a damaged database.
    #[error("storage failure: {0}")]
    Other(#[source] Cause),
    /// A write was to complete an idempotency record whose claim it no
    /// longer holds (the lease ran out and a retry took the key over);
    /// nothing was written.
    #[error("the idempotency claim is no longer held")]
    ClaimLost,
}

impl StoreError {
    /// `Unavailable`, described by `message` alone.
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable(Cause::message(message))
    }

    /// `Other`, described by `message` alone.
    pub fn other(message: impl Into<String>) -> Self {
        StoreError::Other(Cause::message(message))
    }
}

/// What an [`StoreError::Unavailable`] or [`StoreError::Other`] came of:
/// its text (what the error displays, and the log shows) and the
/// underlying error, if there is one, which
/// [`std::error::Error::source`] exposes (the cause acts as that error:
/// its own `source` is the underlying error's).
///
/// Cheap to clone (the error is shared). Causes compare equal when their
/// texts are, so [`StoreError`] keeps its equality by variant and message.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    /// `error` itself as the cause: its text is the error's.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(Arc::new(error))
    }

    /// A cause with `message` for its text and no underlying error.
    pub fn message(message: impl Into<String>) -> Self {
        Cause(Arc::new(Described {
            message: message.into(),
            source: None,
        }))
    }

    /// A cause with `message` for its text (which usually quotes `error`),
    /// caused by `error`.
    pub fn with_source(
        message: impl Into<String>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Cause(Arc::new(Described {
            message: message.into(),
            source: Some(Box::new(error)),
        }))
    }

    /// The error this cause wraps (for downcasting).
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.0.as_ref()
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.to_string(), f)
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Cause {}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Cause::message(message)
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        Cause::message(message)
    }
}

/// A cause described in words, perhaps with the error it came of.
#[derive(Debug)]
struct Described {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl std::fmt::Display for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Described {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// A constraint of the schema that refused a write, by the name the
/// migrations declare (both backends report the same names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// `workspace_code_key`: the workspace code is taken.
    WorkspaceCode,
    /// `message_sealed_key_check`: a body is sealed with a data key the
    /// database does not accept (not registered, or retiring).
    SealedKey,
    /// `upload_sealed_key_check`: an upload's content key is sealed with a
    /// data key the database does not accept (not registered, or retiring).
    UploadSealedKey,
    /// A foreign key: the row a record belongs to does not exist.
    ForeignKey,
    /// Any other constraint, by its declared name.
    Named(String),
}

impl Constraint {
    /// The constraint a backend reports by `name`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "workspace_code_key" => Constraint::WorkspaceCode,
            "message_sealed_key_check" => Constraint::SealedKey,
            "upload_sealed_key_check" => Constraint::UploadSealedKey,
            "foreign_key" => Constraint::ForeignKey,
            other => Constraint::Named(other.to_owned()),
        }
    }

    /// The declared name (`foreign_key` for any foreign key).
    pub fn name(&self) -> &str {
        match self {
            Constraint::WorkspaceCode => "workspace_code_key",
            Constraint::SealedKey => "message_sealed_key_check",
            Constraint::UploadSealedKey => "upload_sealed_key_check",
            Constraint::ForeignKey => "foreign_key",
            Constraint::Named(name) => name,
        }
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a write returns: what it wrote and, for a write that completed an
/// idempotency record ([`idempotency::Completion`]), the response stored
/// in that record, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<T> {
    /// What was written, as stored.
    pub value: T,
    /// The response the completed record holds, as its client gets it;
    /// `None` for a write without a completion.
    pub response: Option<StoredResponse>,
}

impl<T> Written<T> {
    /// What was written.
    pub fn into_value(self) -> T {
        self.value
    }
}

/// An API key's credentials and the user it acts as, for authentication.
#[derive(Debug, Clone)]
pub struct KeyCredentials {
    /// The digest of the key's secret.
    pub secret_hash: SecretHash,
    /// Whether the key was revoked.
    pub revoked: bool,
    /// The key, its scopes and its user.
    pub principal: Principal,
}

/// A data key sealed message bodies may use, as the database knows it: its
/// id and check value (the key itself is only ever in the key file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredKey {
    /// The key's id.
    pub id: DataKeyId,
    /// A constant sealed under the key ([`crate::core::crypto::check_value`]).
    pub check_value: String,
    /// Whether the key is being replaced: bodies it sealed are still read,
    /// but nothing new may be sealed with it.
    pub retiring: bool,
}

/// An encrypted message's body as stored, and where it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBody {
    /// The ticket it belongs to.
    pub ticket_id: TicketId,
    /// Its position in the thread.
    pub seq: i64,
    /// The message.
    pub id: MessageId,
    /// The stored text (sealed, or plaintext from before encryption).
    pub body: String,
}

/// A stored body to replace with a newly sealed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reseal {
    /// The ticket of the message.
    pub ticket_id: TicketId,
    /// The message's position in the thread.
    pub seq: i64,
    /// The body as read: the message is rewritten only if it still holds it.
    pub old: String,
    /// The new body.
    pub new: String,
}

/// The sealed content key of an upload stored sealed, as rotation reads
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedUploadKey {
    /// The upload.
    pub id: UploadId,
    /// Its content key, sealed under a data key.
    pub content_key: String,
}

/// A sealed content key to replace with one sealed under another data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadKeyReseal {
    /// The upload.
    pub id: UploadId,
    /// The content key as read: it is replaced only if the upload still
    /// holds it.
    pub old: String,
    /// The content key, sealed anew.
    pub new: String,
}

/// Everything ticketd keeps: every role, and readiness. Implemented once
/// per database (and by wrappers such as
/// [`crate::encryption::EncryptedStore`]); callers hold
/// `Arc<dyn Store>` and import the role traits whose methods they call
/// (or [`prelude`]).
#[async_trait]
pub trait Store:
    TicketStore
    + ProvisioningStore
    + TransferStore
    + DataKeyStore
    + IdempotencyStore
    + UploadStore
    + Send
    + Sync
    + 'static
{
    /// Succeeds when the database answers a trivial query.
    async fn check_ready(&self) -> Result<(), StoreError>;
}

/// Tickets and their message threads, read and written as an actor sees them.
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Opens a ticket with its first message, numbering it within the
    /// workspace. `CustomerNotFound` if `on_behalf_of` names no customer of
    /// the actor's workspace.
    async fn create_ticket(
        &self,
        actor: &Actor,
        new: NewTicket,
        completion: Option<Completion<Ticket>>,
    ) -> Result<Written<Ticket>, StoreError>;

    /// One ticket the actor can see; `NotFound` otherwise.
    async fn find_ticket(&self, actor: &Actor, ticket: TicketRef) -> Result<Ticket, StoreError>;

    /// The tickets the actor can see, most recent activity first.
    async fn list_tickets(
        &self,
        actor: &Actor,
        filter: TicketFilter,
        page: PageRequest<TicketCursor>,
    ) -> Result<Page<Ticket, TicketCursor>, StoreError>;

    /// A slice of the tickets the actor can see, by offset, most recent
    /// activity first, each with the actor's unread count and a preview of
    /// its latest message; with how many match in all.
    async fn list_ticket_rows(
        &self,
        actor: &Actor,
        query: &TicketRowQuery,
    ) -> Result<TicketRows, StoreError>;

    /// Moves the actor's read marker on a ticket they found up to `seq`
    /// (never back).
    async fn mark_read(&self, actor: &Actor, ticket: TicketId, seq: i64) -> Result<(), StoreError>;

    /// Appends the actor's message to a ticket they can see and moves the
    /// ticket's status. `NotFound` if they cannot see it;
    /// `Lifecycle(TicketClosed)` if it is closed.
    async fn append_message(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        new: NewMessage,
        completion: Option<Completion<Message>>,
    ) -> Result<Written<Message>, StoreError>;

    /// The messages of a ticket the actor can see, oldest first.
    async fn list_messages(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        page: PageRequest<MessageCursor>,
    ) -> Result<Page<Message, MessageCursor>, StoreError> {
        self.list_messages_where(actor, ticket, MessageFilter::default(), page)
            .await
    }

    /// The messages of a ticket the actor can see that `filter` keeps,
    /// oldest first.
    async fn list_messages_where(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        filter: MessageFilter,
        page: PageRequest<MessageCursor>,
    ) -> Result<Page<Message, MessageCursor>, StoreError>;

    /// One message of a ticket the actor can see; `NotFound` otherwise.
    async fn find_message(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        message: MessageId,
    ) -> Result<Message, StoreError>;

    /// Applies a lifecycle action to a ticket the actor can see and returns
    /// the ticket as it now is. Whether the actor's role may take the action
    /// at all is the caller's check ([`TicketAction::permitted_for`]).
    async fn apply_action(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        action: TicketAction,
        at: Timestamp,
        completion: Option<Completion<Ticket>>,
    ) -> Result<Written<Ticket>, StoreError>;
}

/// Workspaces, users and API keys: what provisioning creates and authentication reads.
#[async_trait]
pub trait ProvisioningStore: Send + Sync {
    /// Creates a workspace. `Conflict(WorkspaceCode)` if its code is taken.
    async fn create_workspace(&self, new: NewWorkspace) -> Result<Workspace, StoreError>;

    /// Creates a user. `NotFound` if the workspace does not exist.
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError>;

    /// Creates an API key. `NotFound` if the user does not exist.
    async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError>;

    /// Revokes a key (a no-op for one already revoked). `NotFound` if unknown.
    async fn revoke_api_key(&self, id: KeyId, at: Timestamp) -> Result<ApiKey, StoreError>;

    /// Looks up a key for authentication; `None` if there is no such key.
    async fn find_key_credentials(&self, id: KeyId) -> Result<Option<KeyCredentials>, StoreError>;

    /// Workspaces in `numeric_id` order: at most `limit` of those after the
    /// numeric id `after`.
    async fn list_workspaces(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Workspace>, StoreError>;

    /// A workspace's users in id order: at most `limit` of those after
    /// `after`. `NotFound` if there is no such workspace.
    async fn list_users(
        &self,
        workspace: WorkspaceId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError>;

    /// A user's API keys, revoked ones too, in id order: at most `limit` of
    /// those after `after`. `NotFound` if there is no such user.
    async fn list_api_keys(
        &self,
        user: UserId,
        after: Option<KeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError>;

    /// The workspace as its agency signatures name it, with its signature
    /// generation: `generation` becomes it if `replace` is set or the
    /// workspace has none yet ([`crate::core::agency_signature`]).
    /// `NotFound` if there is no such workspace.
    async fn agency_signature_generation(
        &self,
        workspace: WorkspaceId,
        generation: String,
        replace: bool,
    ) -> Result<KeyWorkspace, StoreError>;
}

/// Whole-database export and import ([`crate::transfer`]), row for row.
#[async_trait]
pub trait TransferStore: Send + Sync {
    /// Whether the database holds no workspaces, users, API keys, tickets or
    /// messages (a database that may be the target of an import).
    async fn is_empty(&self) -> Result<bool, StoreError>;

    /// Up to `limit` records of `kind`, every column of their rows, in dump
    /// order, starting after `after` (from [`Record::cursor`] of the last
    /// record of the previous page) or at the first. Fewer than `limit`
    /// records means the kind is done.
    ///
    /// Keyset paging: workspaces by `numeric_id`; users, keys and tickets by
    /// `id`; messages by `(ticket_id, seq)`. Ids compare bytewise as their
    /// lowercase text (on PostgreSQL: `COLLATE "C"`), so every backend lists
    /// the same data in the same order. Each page is its own read; a
    /// consistent dump needs a database nobody writes to meanwhile.
    /// `Other` if `after` is a cursor of another kind.
    async fn export_page(
        &self,
        kind: RecordKind,
        after: Option<ExportCursor>,
        limit: u32,
    ) -> Result<Vec<Record>, StoreError>;

    /// Inserts `records` (in dump order, so parents come first) exactly as
    /// given, in one transaction: ids, numbers, times and key digests are
    /// kept, nothing is derived or checked beyond the schema's constraints
    /// (records come from [`crate::transfer::import`], which checks them
    /// first with [`crate::core::dump::DumpCheck`]). Afterwards new workspaces, tickets and messages are numbered after
    /// the imported ones (both backends number from the stored maximum or
    /// counter, so nothing needs advancing).
    /// `Conflict` on a duplicate key or a missing parent, and then nothing
    /// of the batch is kept.
    async fn import_records(&self, records: Vec<Record>) -> Result<(), StoreError>;
}

/// The data keys sealed message bodies use, the sealed bodies themselves
/// (for rotation), and the server secret's check value.
#[async_trait]
pub trait DataKeyStore: Send + Sync {
    /// Every registered data key, oldest first.
    async fn encryption_keys(&self) -> Result<Vec<RegisteredKey>, StoreError>;

    /// Registers the keys of `keys` not registered yet (as not retiring),
    /// unless keys are registered already and none of them is in `keys`
    /// (a key file that belongs to another database): then nothing is
    /// registered. Serialised against concurrent registrations. Returns the
    /// keys registered afterwards, oldest first.
    async fn register_encryption_keys(
        &self,
        keys: Vec<RegisteredKey>,
        at: Timestamp,
    ) -> Result<Vec<RegisteredKey>, StoreError>;

    /// Marks every registered key but `current` retiring, and `current` not.
    /// From then on, bodies may be sealed only with `current`.
    /// `NotFound` if `current` is not registered.
    async fn retire_encryption_keys_except(&self, current: DataKeyId) -> Result<(), StoreError>;

    /// Deletes a retiring key if no message body and no upload's content
    /// key is sealed with it; `false` (and nothing changes) if one is, or
    /// if the key is not retiring.
    /// Atomic with respect to writes: none can seal with the key afterwards.
    async fn delete_encryption_key(&self, id: DataKeyId) -> Result<bool, StoreError>;

    /// Up to `limit` encrypted messages in `(ticket_id, seq)` order after
    /// `after`, skipping those whose body is sealed with `except` (keyset
    /// paged: a page costs a walk of the primary key, however large the
    /// table).
    async fn encrypted_messages(
        &self,
        except: Option<DataKeyId>,
        after: Option<(TicketId, i64)>,
        limit: u32,
    ) -> Result<Vec<StoredBody>, StoreError>;

    /// Replaces message bodies in one transaction, each only if it still
    /// holds the body it was read with; returns how many were replaced.
    /// `Conflict(SealedKey)` if a new body is sealed with
    /// a key that is not registered or is retiring.
    async fn reseal_messages(&self, reseals: Vec<Reseal>) -> Result<u64, StoreError>;

    /// Up to `limit` uploads stored sealed, in id order after `after`,
    /// skipping those whose content key is sealed with `except`.
    async fn sealed_upload_keys(
        &self,
        except: Option<DataKeyId>,
        after: Option<UploadId>,
        limit: u32,
    ) -> Result<Vec<SealedUploadKey>, StoreError>;

    /// Replaces content keys in one transaction, each only if the upload
    /// still holds the one it was read with; returns how many were
    /// replaced. `Conflict(UploadSealedKey)` if a new one is sealed with a
    /// key that is not registered or is retiring.
    async fn reseal_upload_keys(&self, reseals: Vec<UploadKeyReseal>) -> Result<u64, StoreError>;

    /// The check value of the server secret (see
    /// [`crate::core::server_secret`]), if one is registered.
    async fn server_secret_check(&self) -> Result<Option<String>, StoreError>;

    /// Registers `check_value` as the server secret's check value, unless
    /// one is registered already (by another node, say): then nothing
    /// changes. Returns the check value registered afterwards, this one or
    /// the earlier one.
    async fn register_server_secret(
        &self,
        check_value: String,
        at: Timestamp,
    ) -> Result<String, StoreError>;
}

/// Idempotency keys ([`idempotency`]): a claim, then the write it
/// protects completing it in the write's own transaction (the writes of
/// [`TicketStore`], given a [`Completion`]).
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims an idempotency key for one request, in a transaction of its
    /// own ([`idempotency::Decision`] is the rule). Concurrent claims of one
    /// key, from any node, are granted to one request at most.
    async fn claim_idempotency_key(
        &self,
        request: ClaimRequest,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Gives a claim up (its request failed and wrote nothing), so that a
    /// retry starts afresh. A no-op unless the record is still in progress
    /// under this claim's token.
    async fn release_idempotency_key(&self, claim: &Claim) -> Result<(), StoreError>;

    /// Moves the lease of a claim still in progress under its token to
    /// `until`, while its request runs; `false` if the claim is no longer
    /// held (completed, released, or taken over).
    async fn renew_idempotency_claim(
        &self,
        claim: &Claim,
        until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Releases, as `holder` starts serving, the claims in progress that
    /// earlier processes left behind without a release: on SQLite (which
    /// one server serves) every claim in progress; on PostgreSQL those of
    /// `holder`'s node held by another instance of it (claims of other
    /// nodes lapse with their leases). Returns how many it released.
    async fn release_abandoned_claims(&self, holder: &ClaimHolder) -> Result<u64, StoreError>;

    /// Deletes up to `limit` idempotency records that expired by `now`
    /// (claims already ignore them); returns how many it deleted.
    async fn sweep_idempotency_keys(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError>;
}

/// The records of uploads ([`crate::core::upload`]); their bytes are in a
/// [`crate::blob::BlobStore`]. An upload is recorded pending before its
/// bytes are stored and marked stored after; the sweep takes unattached
/// uploads past their expiry in three steps (mark deleting, delete the
/// bytes, delete the record), so that a crash between them leaves a record
/// the next sweep finishes and never bytes that nothing references.
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Records a pending upload of the actor's.
    async fn create_upload(&self, actor: &Actor, new: NewUpload) -> Result<Upload, StoreError>;

    /// Marks a pending upload stored, with the size and sha256 of its
    /// bytes, once they are durable; it is swept at `expires_at` unless
    /// attached by then (counted from when its bytes arrived). `NotFound`
    /// if it is not pending (the sweep took it meanwhile).
    /// Completes `completion`'s record, if there is one, in the same
    /// transaction.
    async fn store_upload(
        &self,
        id: UploadId,
        size: u64,
        sha256: String,
        expires_at: Timestamp,
        completion: Option<Completion<Upload>>,
    ) -> Result<Written<Upload>, StoreError>;

    /// One of the actor's own uploads; `NotFound` for anyone else's, in any
    /// workspace.
    async fn find_upload(&self, actor: &Actor, id: UploadId) -> Result<Upload, StoreError>;

    /// The upload `message` carries as its file `id`; `NotFound` if it
    /// carries no such file. Whoever may read the message may read it, so
    /// the caller checks that first.
    async fn attached_upload(&self, message: MessageId, id: UploadId)
    -> Result<Upload, StoreError>;

    /// Up to `limit` uploads the sweep should take at `now`: unattached
    /// ones past their expiry, and those it marked deleting before.
    async fn uploads_to_sweep(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<UploadId>, StoreError>;

    /// Marks an upload deleting if it is still unattached and past its
    /// expiry at `now` (or marked already); from then on nothing attaches
    /// it. `false` if a message attached it meanwhile, or it is gone.
    async fn start_deleting_upload(&self, id: UploadId, now: Timestamp)
    -> Result<bool, StoreError>;

    /// Marks an unattached upload deleting, whatever its state and expiry:
    /// it will not be kept (its file was refused, did not arrive whole, or
    /// could not be recorded as stored). `false` if it is attached or gone.
    async fn abandon_upload(&self, id: UploadId) -> Result<bool, StoreError>;

    /// Deletes the record of an upload marked deleting (a no-op for any
    /// other).
    async fn delete_upload(&self, id: UploadId) -> Result<(), StoreError>;

    /// Records that the pre-signed upload URL with `nonce` was used; `false`
    /// if it was used before. Kept until `expires_at`, the URL's own expiry.
    async fn use_upload_url(&self, nonce: u128, expires_at: Timestamp) -> Result<bool, StoreError>;

    /// Forgets up to `limit` used URLs that expired by `now`; returns how
    /// many.
    async fn sweep_upload_urls(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError>;
}

/// Where the data lives, parsed from `--database`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH` (relative) or `sqlite:///abs/PATH`: a file path,
    /// taken literally, never a SQLite URI.
    Sqlite(PathBuf),
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTIONS]` (or
    /// `postgresql://`), as libpq takes it.
    Postgres(String),
}

impl DatabaseUrl {
    /// The default: a SQLite file in `./ticketd-data/`.
    pub fn default_sqlite() -> Self {
        DatabaseUrl::Sqlite(PathBuf::from("ticketd-data/ticketd.db"))
    }

    /// Parses a database URL.
    ///
    /// # Errors
    /// A message naming what is wrong with the URL (never echoing credentials).
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(
                    "a sqlite:// URL needs a file path, e.g. sqlite://ticketd-data/ticketd.db"
                        .into(),
                );
            }
            // What follows `sqlite://` is a file path, taken literally (no
            // query parameters). SQLite would read these two differently
            // from the path the rest of ticketd (its -wal file, the key
            // file beside it) takes them for.
            if path.starts_with("file:") {
                return Err(format!(
                    "sqlite://{path} is a SQLite URI; ticketd takes a file path only \
                     (sqlite://PATH) and sets SQLite's options itself. A file whose name \
                     starts with `file:` is sqlite://./{path}"
                ));
            }
            if path == ":memory:" {
                return Err(
                    "sqlite://:memory: names no file; ticketd keeps its data in a database file"
                        .into(),
                );
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        let scheme = text.split_once("://").map_or("", |(scheme, _)| scheme);
        if scheme == "postgres" || scheme == "postgresql" {
            // The TLS settings first: tokio-postgres reads the rest.
            let (rest, _) = postgres::tls::split_url(text)?;
            return match rest.parse::<tokio_postgres::Config>() {
                Ok(_) => Ok(DatabaseUrl::Postgres(text.to_owned())),
                // The parser's message can quote the URL; name the problem only.
                Err(_) => Err(
                    "invalid postgres:// URL: expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
                        .into(),
                ),
            };
        }
        if scheme.is_empty() {
            return Err(
                "a database URL starts with its scheme: sqlite://PATH (a file, created if \
                 missing) or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
                    .into(),
            );
        }
        Err(format!(
            "unsupported database URL scheme {scheme:?}: use sqlite://PATH or postgres://USER@HOST/DATABASE"
        ))
    }

    /// The URL as it was given (with its password, if any): what
    /// [`DatabaseUrl::parse`] makes this again.
    pub fn as_given(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => url.clone(),
        }
    }

    /// A form safe to log.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => redact_password(url),
        }
    }
}

/// `url` with its password, if any, replaced by `***`: in the user part
/// (which, as libpq reads it, runs to the first `@`, so a password may hold
/// `/` or `?`) and in a `password=` query parameter.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let rest = match rest.split_once('@') {
        Some((user_info, after)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{user}:***@{after}")
        }
        _ => rest.to_owned(),
    };
    let Some((before_query, query)) = rest.split_once('?') else {
        return format!("{scheme}://{rest}");
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("password", _)) => "password=***".to_owned(),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{scheme}://{before_query}?{}", query.join("&"))
}

/// Whether `url` names a database ticketd has created, found without
/// creating or changing anything (for commands that only read, like
/// `export`).
///
/// # Errors
/// `Unavailable` if a PostgreSQL server cannot be reached.
pub async fn exists(url: &DatabaseUrl) -> Result<bool, StoreError> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(path.exists()),
        DatabaseUrl::Postgres(url) => postgres::PostgresStore::has_schema(url).await,
    }
}

/// Opens the database at `url`, creating it and running migrations if needed.
///
/// # Errors
/// `Unavailable` if the database cannot be opened, `Other` if migrating fails.
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>, StoreError> {
    open_with(url, postgres::PoolOptions::default()).await
}

/// [`open`], with the connection pool's options for a PostgreSQL database.
///
/// # Errors
/// As [`open`].
pub async fn open_with(
    url: &DatabaseUrl,
    pool: postgres::PoolOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let store = sqlite::SqliteStore::open(path.clone()).await?;
            Ok(Arc::new(store))
        }
        DatabaseUrl::Postgres(url) => {
            let store = postgres::PostgresStore::open(url, pool).await?;
            Ok(Arc::new(store))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/t.db"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("data/t.db")))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/ticketd/t.db"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("/var/lib/ticketd/t.db")))
        );
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        // A path with `?` is still a path: SQLite never sees a URI.
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/t.db?mode=ro"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("data/t.db?mode=ro")))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://./file:x.db?nolock=1"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("./file:x.db?nolock=1")))
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://ticketd@db.internal:5432/ticketd"),
            Ok(DatabaseUrl::Postgres(
                "postgres://ticketd@db.internal:5432/ticketd".into()
            ))
        );
        assert!(DatabaseUrl::parse("postgresql://ticketd@db/ticketd").is_ok());
        assert!(DatabaseUrl::parse("postgres://db:notaport/ticketd").is_err());
        assert!(DatabaseUrl::parse("mysql://root@localhost/t").is_err());
    }

    #[test]
    fn sqlite_uris_and_special_names_are_refused() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://file:x.db?nolock=1"),
            Err(
                "sqlite://file:x.db?nolock=1 is a SQLite URI; ticketd takes a file path only \
                 (sqlite://PATH) and sets SQLite's options itself. A file whose name starts \
                 with `file:` is sqlite://./file:x.db?nolock=1"
                    .into()
            )
        );
        assert!(DatabaseUrl::parse("sqlite:file:/tmp/x.db").is_err());
        assert_eq!(
            DatabaseUrl::parse("sqlite://:memory:"),
            Err(
                "sqlite://:memory: names no file; ticketd keeps its data in a database file".into()
            )
        );
    }

    #[test]
    fn unsupported_urls_do_not_echo_credentials() {
        let error = DatabaseUrl::parse("mysql://root:hunter2@localhost/t").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
        let error = DatabaseUrl::parse("postgres://root:hunter2@db:notaport/t").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_url_without_a_scheme_is_told_what_one_looks_like() {
        for text in ["nonsense", "ticketd.db", "/var/lib/ticketd.db"] {
            let error = DatabaseUrl::parse(text).unwrap_err();
            assert!(
                error.starts_with("a database URL starts with its scheme: sqlite://PATH"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn postgres_urls_are_logged_without_their_password() {
        let url = DatabaseUrl::parse("postgres://ticketd:hunter2@db:5432/ticketd?sslmode=disable")
            .unwrap();
        assert_eq!(
            url.redacted(),
            "postgres://ticketd:***@db:5432/ticketd?sslmode=disable"
        );
        let url = DatabaseUrl::parse("postgres://ticketd@db/ticketd").unwrap();
        assert_eq!(url.redacted(), "postgres://ticketd@db/ticketd");
        // libpq reads the user part up to the first `@`.
        let url = DatabaseUrl::parse("postgres://ticketd:ab/c?d@db/ticketd").unwrap();
        assert_eq!(url.redacted(), "postgres://ticketd:***@db/ticketd");
        let url =
            DatabaseUrl::parse("postgres://ticketd@db/ticketd?sslmode=disable&password=hunter2")
                .unwrap();
        assert_eq!(
            url.redacted(),
            "postgres://ticketd@db/ticketd?sslmode=disable&password=***"
        );
    }

    #[test]
    fn causes_keep_their_text_and_expose_their_source() {
        use std::error::Error as _;

        let io = || std::io::Error::other("disk on fire");
        let error = StoreError::Other(Cause::with_source(format!("cannot open x: {}", io()), io()));
        assert_eq!(
            error.to_string(),
            "storage failure: cannot open x: disk on fire"
        );
        let cause = error.source().expect("a cause");
        assert_eq!(cause.to_string(), "cannot open x: disk on fire");
        let underlying = cause.source().expect("an underlying error");
        assert!(underlying.is::<std::io::Error>());
        assert_eq!(underlying.to_string(), "disk on fire");

        let error = StoreError::Unavailable(Cause::new(io()));
        assert_eq!(error.to_string(), "storage unavailable: disk on fire");
        let StoreError::Unavailable(cause) = &error else {
            unreachable!("built as unavailable")
        };
        assert!(cause.error().is::<std::io::Error>());

        // Equality is by variant and text, whatever the underlying error.
        assert_eq!(error, StoreError::unavailable("disk on fire"));
        assert_ne!(error, StoreError::other("disk on fire"));
        assert_eq!(error.clone(), error);
        assert_eq!(format!("{error:?}"), r#"Unavailable("disk on fire")"#);
        assert!(
            StoreError::other("x")
                .source()
                .expect("a cause")
                .source()
                .is_none()
        );
    }

    #[test]
    fn both_backends_have_the_same_migrations() {
        let names = |migrations: &[(&str, &str)]| -> Vec<String> {
            migrations
                .iter()
                .map(|(name, _)| (*name).to_owned())
                .collect()
        };
        assert_eq!(
            names(sqlite::MIGRATIONS),
            names(postgres::MIGRATIONS),
            "every schema change needs a file of the same name for each backend"
        );
    }
}
