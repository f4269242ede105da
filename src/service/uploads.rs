//! [`Uploads`]: files users upload before attaching them, for every API.
//!
//! An upload is recorded pending, its bytes streamed through the checks of
//! [`crate::blob::inspect`] into the [`BlobStore`], and the record marked
//! stored with their size and sha256. A pre-signed URL lets a client send
//! one upload without its API key ([`Uploads::sign_url`],
//! [`Uploads::redeem_url`]). Unattached uploads past their expiry are
//! swept with their bytes ([`Uploads::sweep_expired`]).
//!
//! A file sent `encrypted` is stored sealed ([`crate::core::crypto::stream`])
//! under a content key of its own, which its record keeps sealed under a
//! data key ([`ContentKeys`]); its size and sha256 are those of the
//! plaintext, checked before sealing, and reads open it again.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;

use crate::blob::inspect::{self, UploadRefusal};
use crate::blob::{BlobError, BlobStore, ByteStream};
use crate::core::access::{Actor, Principal};
use crate::core::crypto::{ContentKey, stream};
use crate::core::id::{MessageId, UploadId};
use crate::core::time::Timestamp;
use crate::core::upload::media::{KnownType, MediaCheck};
use crate::core::upload::signed_url::{SignedUrlError, UploadGrant, UploadUrlKey};
use crate::core::upload::{Filename, NewUpload, Upload};
use crate::service::{Clock, IdSource, ServiceError};
use crate::store::idempotency::Completion;
use crate::store::{Constraint, Store, StoreError, Written};

/// How often expired uploads and used URLs are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Every how many sweeps the blob store's abandoned writes are removed
/// (hourly).
const ABANDONED_EVERY: u32 = 60;

/// Uploads (or URLs) taken per sweeping batch.
const SWEEP_BATCH: u32 = 100;

/// How much longer than its URL a used nonce is kept: a node whose clock
/// is behind by less still sees the URL as used, not as live.
const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Seals and opens the content keys of uploads stored sealed
/// ([`crate::encryption::ContentKeyring`] in a running server).
#[async_trait]
pub trait ContentKeys: Send + Sync {
    /// A new content key for `upload`, and its sealed form for the record.
    ///
    /// # Errors
    /// `Internal` if it cannot be made.
    fn generate(&self, upload: UploadId) -> Result<(ContentKey, String), ServiceError>;

    /// The content key `sealed` holds for `upload`.
    ///
    /// # Errors
    /// `Unavailable` if its data key is not at hand; `Internal` if it does
    /// not open (altered, or another upload's).
    async fn open(&self, upload: UploadId, sealed: &str) -> Result<ContentKey, ServiceError>;

    /// Re-reads the data keys, after the database refused the newest one
    /// (a rotation on another node retired it).
    async fn refresh(&self);
}

/// The limits and lifetimes of uploads.
#[derive(Debug, Clone)]
pub struct UploadPolicy {
    /// The largest file, in bytes.
    pub max_bytes: u64,
    /// The media types allowed.
    pub media: MediaCheck,
    /// How long an upload waits to be attached before it is swept.
    pub ttl: Duration,
    /// How long a pre-signed upload URL works.
    pub url_ttl: Duration,
}

/// What one upload's file must be: at most `max_bytes`, of a type `media`
/// allows. The server's settings give them ([`UploadPolicy::rules`]); an
/// API whose published contract is stricter narrows them
/// ([`UploadPolicy::narrowed`]).
#[derive(Debug, Clone)]
pub struct FileRules {
    /// The largest file, in bytes.
    pub max_bytes: u64,
    /// The media types allowed.
    pub media: MediaCheck,
}

impl UploadPolicy {
    /// The rules the server's settings give every upload.
    pub fn rules(&self) -> FileRules {
        FileRules {
            max_bytes: self.max_bytes,
            media: self.media.clone(),
        }
    }

    /// The server's rules, narrowed to files of at most `max_bytes` and of
    /// the `types` the server also allows.
    pub fn narrowed(&self, max_bytes: u64, types: &[KnownType]) -> FileRules {
        let allowed = self
            .media
            .allowed()
            .iter()
            .copied()
            .filter(|known| types.contains(known))
            .collect();
        FileRules {
            max_bytes: max_bytes.min(self.max_bytes),
            media: MediaCheck::new(allowed),
        }
    }
}

impl Default for UploadPolicy {
    fn default() -> Self {
        Self {
            max_bytes: 25 * 1024 * 1024,
            media: MediaCheck::default(),
            ttl: Duration::from_secs(24 * 60 * 60),
            url_ttl: Duration::from_secs(15 * 60),
        }
    }
}

/// A file as a request sends it: its name and declared media type (the
/// bytes come as a stream beside it).
#[derive(Debug, Clone)]
pub struct IncomingFile {
    /// The file's name.
    pub filename: Filename,
    /// Its declared media type (a `Content-Type` value).
    pub content_type: String,
    /// Whether to store it sealed, for an encrypted message.
    pub encrypted: bool,
}

/// Why an upload use case was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UploadError {
    /// The file was refused: too large, or not of an allowed media type.
    #[error(transparent)]
    Refused(#[from] UploadRefusal),
    /// The pre-signed URL is not one ticketd issued, was altered, or expired.
    #[error(transparent)]
    Url(#[from] SignedUrlError),
    /// The pre-signed URL was used already.
    #[error("the upload URL was used already")]
    UrlUsed,
    /// The client stopped sending the file before its end.
    #[error("the file did not arrive whole")]
    Incomplete,
    /// The body arrived whole but is not one file as the API takes it (a
    /// multipart body with a second part, say): its stream failed with a
    /// [`MalformedFile`].
    #[error("{0}")]
    Malformed(String),
    /// The file arrived too slowly, or stopped arriving.
    #[error("the file arrived too slowly")]
    TooSlow,
    /// The service failed (storage, ...).
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// What an API's stream of a file fails with when the request's body is
/// not one file as that API takes it: the upload is refused as
/// [`UploadError::Malformed`], not as incomplete.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct MalformedFile(pub String);

fn blob_failure(error: BlobError) -> UploadError {
    let malformed = match &error {
        BlobError::Source(source) => source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<MalformedFile>()),
        _ => None,
    };
    if let Some(MalformedFile(reason)) = malformed {
        return UploadError::Malformed(reason.clone());
    }
    match inspect::refusal_of(&error) {
        Some(refusal) => UploadError::Refused(refusal.clone()),
        None => match error {
            BlobError::Source(source) if source.kind() == std::io::ErrorKind::TimedOut => {
                UploadError::TooSlow
            }
            BlobError::Source(_) => UploadError::Incomplete,
            other => UploadError::Service(ServiceError::Unavailable(other.to_string())),
        },
    }
}

/// The upload use cases, over a store for the records and a blob store for
/// the bytes.
#[derive(Clone)]
pub struct Uploads {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    keys: Arc<dyn ContentKeys>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    url_key: UploadUrlKey,
    policy: UploadPolicy,
}

impl Uploads {
    /// The use cases over `store` and `blobs`, sealing with `keys` and
    /// signing URLs with `url_key`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        keys: Arc<dyn ContentKeys>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        url_key: UploadUrlKey,
        policy: UploadPolicy,
    ) -> Self {
        Self {
            store,
            blobs,
            keys,
            clock,
            ids,
            url_key,
            policy,
        }
    }

    /// The limits in force.
    pub fn policy(&self) -> &UploadPolicy {
        &self.policy
    }

    /// Stores `bytes` as a new upload of the actor's; completes
    /// `completion` in the write that marks it stored. Nothing is kept of a
    /// file that is refused or does not arrive whole (a pending record is
    /// left for the sweep only if the store fails).
    ///
    /// # Errors
    /// `Refused` (too large, media type), `Incomplete`, storage failures.
    pub async fn upload(
        &self,
        actor: &Actor,
        file: IncomingFile,
        bytes: ByteStream,
        completion: Option<Completion<Upload>>,
    ) -> Result<Written<Upload>, UploadError> {
        self.upload_within(actor, file, bytes, completion, &self.policy.rules())
            .await
    }

    /// [`Uploads::upload`], with the file held to `rules` (narrower than
    /// the server's, for an API that publishes stricter ones).
    ///
    /// # Errors
    /// As [`Uploads::upload`].
    pub async fn upload_within(
        &self,
        actor: &Actor,
        file: IncomingFile,
        bytes: ByteStream,
        completion: Option<Completion<Upload>>,
        rules: &FileRules,
    ) -> Result<Written<Upload>, UploadError> {
        // The declared type is checked before anything is recorded.
        let content_type = rules
            .media
            .allowed_type(&file.content_type)
            .map_err(UploadRefusal::from)?;
        let now = self.clock.now();
        let mut new = NewUpload {
            id: self.ids.upload_id(),
            filename: file.filename,
            content_type,
            content_key: None,
            created_at: now,
            expires_at: now.plus(self.policy.ttl),
        };
        let id = new.id;
        let (checked, outcome) =
            inspect::inspect(bytes, &file.content_type, &rules.media, rules.max_bytes);
        let content_key = if file.encrypted {
            Some(self.create_sealed(actor, &mut new).await?)
        } else {
            self.store
                .create_upload(actor, new)
                .await
                .map_err(ServiceError::from)?;
            None
        };
        // Checked as plaintext, then sealed on the way into the blob store.
        let stored = match &content_key {
            Some(key) => Box::pin(stream::seal(key, id, checked)),
            None => checked,
        };
        let written = match self.blobs.put(id, stored).await {
            Ok(written) => written,
            Err(error) => {
                self.discard(id).await;
                return Err(blob_failure(error));
            }
        };
        let Some(inspected) = outcome.take() else {
            self.discard(id).await;
            return Err(UploadError::Incomplete);
        };
        let expected = if content_key.is_some() {
            stream::sealed_len(inspected.size)
        } else {
            inspected.size
        };
        if written != expected {
            self.discard(id).await;
            return Err(ServiceError::Internal(format!(
                "the blob store wrote {written} bytes of upload {id}, not {expected}"
            ))
            .into());
        }
        // The time to attach it counts from when its bytes arrived.
        let expires_at = self.clock.now().plus(self.policy.ttl);
        super::commit_window::note_write();
        match self
            .store
            .store_upload(id, inspected.size, inspected.sha256, expires_at, completion)
            .await
        {
            Ok(upload) => {
                crate::metrics::count(crate::metrics::UPLOADS, None, 1);
                crate::metrics::count(crate::metrics::UPLOAD_BYTES, None, written);
                Ok(upload)
            }
            Err(error) => {
                // Whether or not the record says stored, it is given up:
                // marked deleting first, so no record outlives its bytes.
                self.discard(id).await;
                Err(ServiceError::from(error).into())
            }
        }
    }

    /// Records `new` pending with a new content key, sealed under the
    /// newest data key (re-read once if the database refuses it: a
    /// rotation elsewhere retired it); returns the content key.
    async fn create_sealed(
        &self,
        actor: &Actor,
        new: &mut NewUpload,
    ) -> Result<ContentKey, UploadError> {
        for _ in 0..2 {
            let (key, sealed) = self.keys.generate(new.id)?;
            new.content_key = Some(sealed);
            match self.store.create_upload(actor, new.clone()).await {
                Ok(_) => return Ok(key),
                Err(StoreError::Conflict(Constraint::UploadSealedKey)) => {
                    self.keys.refresh().await;
                }
                Err(error) => return Err(ServiceError::from(error).into()),
            }
        }
        Err(ServiceError::Unavailable(
            "the database refuses the newest encryption key (retired by a rotation): the key \
             file is out of date"
                .into(),
        )
        .into())
    }

    /// Gives up an upload that will not be kept: marks its record deleting,
    /// then deletes what bytes there are, then the record. Best effort: the
    /// sweep finishes whatever fails here.
    async fn discard(&self, id: UploadId) {
        if matches!(self.store.abandon_upload(id).await, Ok(true))
            && self.blobs.delete(id).await.is_ok()
        {
            let _ = self.store.delete_upload(id).await;
        }
    }

    /// The upload `message` carries as its file `id`. Whoever may read the
    /// message may read its files, so the caller checks that first.
    ///
    /// # Errors
    /// `NotFound` if the message carries no such file; storage failures.
    pub async fn attached(&self, message: MessageId, id: UploadId) -> Result<Upload, UploadError> {
        Ok(self
            .store
            .attached_upload(message, id)
            .await
            .map_err(ServiceError::from)?)
    }

    /// The bytes of a stored upload, or only those in `range` (first and
    /// last inclusive, within its size).
    ///
    /// # Errors
    /// Storage failures, and bytes missing from the blob store.
    pub async fn read(
        &self,
        upload: &Upload,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ByteStream, UploadError> {
        let missing = |error| {
            UploadError::Service(match error {
                BlobError::NotFound => {
                    ServiceError::Internal(format!("the bytes of upload {} are missing", upload.id))
                }
                other => ServiceError::Unavailable(other.to_string()),
            })
        };
        let Some(sealed) = &upload.content_key else {
            return self.blobs.get(upload.id, range).await.map_err(missing);
        };
        let key = self.keys.open(upload.id, sealed).await?;
        let plan = stream::plan(upload.size, range).map_err(|error| {
            ServiceError::Internal(format!("cannot read upload {}: {error}", upload.id))
        })?;
        let stored = self
            .blobs
            .get(upload.id, plan.stored.clone())
            .await
            .map_err(missing)?;
        let id = upload.id;
        let opened = stream::open(&key, id, &plan, stored).inspect_err(move |error| {
            // The response is cut short; the log says why.
            tracing::error!(upload = %id, %error, "the sealed bytes of an upload did not open");
        });
        Ok(Box::pin(opened))
    }

    /// A pre-signed URL's token for one upload as `principal`'s user, and
    /// when it expires.
    pub fn sign_url(&self, principal: &Principal) -> (String, Timestamp) {
        let expires_at = self.clock.now().plus(self.policy.url_ttl);
        let grant = UploadGrant {
            key_id: principal.key_id,
            user_id: principal.actor.user_id,
            expires_at,
            nonce: self.ids.url_nonce(),
        };
        (grant.sign(&self.url_key), expires_at)
    }

    /// The grant a pre-signed URL's token carries, if it is genuine and
    /// live; nothing is recorded (see [`Uploads::redeem_url`]).
    ///
    /// # Errors
    /// `Url` (malformed, forged, expired).
    pub fn grant_of(&self, token: &str) -> Result<UploadGrant, UploadError> {
        Ok(UploadGrant::verify(&self.url_key, token, self.clock.now())?)
    }

    /// The grant a pre-signed URL's token carries, if it is genuine, live
    /// and used for the first time (this use is recorded).
    ///
    /// # Errors
    /// `Url` (malformed, forged, expired), `UrlUsed`, storage failures.
    pub async fn redeem_url(&self, token: &str) -> Result<UploadGrant, UploadError> {
        let grant = self.grant_of(token)?;
        let first = self
            .store
            .use_upload_url(grant.nonce, grant.expires_at.plus(CLOCK_SKEW_MARGIN))
            .await
            .map_err(ServiceError::from)?;
        if !first {
            return Err(UploadError::UrlUsed);
        }
        Ok(grant)
    }

    /// One sweeping pass: deletes unattached uploads past their expiry with
    /// their bytes, and forgets used URLs that expired. An upload that
    /// cannot be deleted is logged and left for the next pass, without
    /// holding up the others. Returns how many uploads it deleted.
    ///
    /// # Errors
    /// Storage failures listing what to sweep; what was deleted before one
    /// stays deleted.
    pub async fn sweep_once(&self) -> Result<u64, UploadError> {
        let now = self.clock.now();
        let mut deleted = 0;
        loop {
            let batch = self
                .store
                .uploads_to_sweep(now, SWEEP_BATCH)
                .await
                .map_err(ServiceError::from)?;
            let mut progress = false;
            for id in &batch {
                match self.sweep_upload(*id, now).await {
                    Ok(true) => {
                        deleted += 1;
                        progress = true;
                    }
                    Ok(false) => progress = true,
                    Err(error) => {
                        tracing::warn!(upload = %id, %error, "sweeping an upload failed; retried next round");
                    }
                }
            }
            // A full batch of failures would only come round again.
            if batch.len() < SWEEP_BATCH as usize || !progress {
                break;
            }
        }
        while self
            .store
            .sweep_upload_urls(now, SWEEP_BATCH)
            .await
            .map_err(ServiceError::from)?
            >= u64::from(SWEEP_BATCH)
        {}
        Ok(deleted)
    }

    /// Deletes one upload the sweep found: `false` if a message attached
    /// it meanwhile.
    async fn sweep_upload(&self, id: UploadId, now: Timestamp) -> Result<bool, String> {
        // Marked first: a message attaching it meanwhile wins, and nothing
        // attaches it once marked.
        if !self
            .store
            .start_deleting_upload(id, now)
            .await
            .map_err(|error| error.to_string())?
        {
            return Ok(false);
        }
        self.blobs
            .delete(id)
            .await
            .map_err(|error| error.to_string())?;
        self.store
            .delete_upload(id)
            .await
            .map_err(|error| error.to_string())?;
        Ok(true)
    }

    /// Sweeps now and then every [`SWEEP_INTERVAL`], on every node (the
    /// steps are safe to race), and every [`ABANDONED_EVERY`] rounds has
    /// the blob store remove what interrupted writes left; runs until
    /// dropped. Failures are logged and retried at the next round.
    pub async fn sweep_expired(self) {
        let mut rounds = tokio::time::interval(SWEEP_INTERVAL);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for round in 0u32.. {
            rounds.tick().await;
            if let Err(error) = self.sweep_once().await {
                tracing::warn!(%error, "sweeping expired uploads failed");
            }
            if round % ABANDONED_EVERY == 0 {
                match self.blobs.remove_abandoned().await {
                    Ok(0) => {}
                    Ok(removed) => {
                        tracing::info!(removed, "removed the pieces of uploads a crash cut short");
                    }
                    Err(error) => {
                        tracing::warn!(%error, "removing the pieces of interrupted uploads failed");
                    }
                }
            }
        }
    }
}
