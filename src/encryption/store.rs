//! [`EncryptedStore`]: a [`Store`] in front of another that seals the
//! bodies of messages marked `encrypted` before they reach it and opens
//! them when they are read back, so plaintext of an encrypted message is
//! never written to the database, and authorised readers get it back.

use std::sync::Arc;

use async_trait::async_trait;

use crate::core::access::Actor;
use crate::core::crypto::{self, CryptoError};
use crate::core::dump::{ExportCursor, Record, RecordKind};
use crate::core::id::{MessageId, TicketId};
use crate::core::lifecycle::TicketAction;
use crate::core::message::{Message, MessageFilter, NewMessage};
use crate::core::page::{MessageCursor, Page, PageRequest, TicketCursor};
use crate::core::text::MessageBody;
use crate::core::ticket::{NewTicket, Ticket, TicketFilter, TicketRef, TicketRowQuery, TicketRows};
use crate::core::time::Timestamp;
use crate::encryption::Encryption;
use crate::store::delegate::Delegating;
use crate::store::idempotency::{
    Claim, ClaimHolder, ClaimOutcome, ClaimRequest, Completion, Render, StoredResponse,
};
use crate::store::{
    Cause, Constraint, IdempotencyStore, Store, StoreError, TicketStore, TransferStore, Written,
};

/// How the stored response of an idempotent reply that is encrypted
/// begins: `tkdresp:v1:<ticket key>:<message key>:` and then the response
/// body sealed like a message body (bound to the same ticket and message),
/// so an idempotency record never holds an encrypted message's plaintext.
const SEALED_RESPONSE_PREFIX: &str = "tkdresp:v1:";

/// What an export writes for encrypted message bodies and sealed files
/// (its header says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportBodies {
    /// As stored: sealed (the default).
    Sealed,
    /// Opened: plaintext (`ticketd export --decrypt`).
    Decrypted,
}

/// The encryption layer over a store.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    encryption: Arc<Encryption>,
    exports: ExportBodies,
}

impl EncryptedStore {
    /// `inner` behind the encryption layer.
    pub fn wrap(
        inner: Arc<dyn Store>,
        encryption: Arc<Encryption>,
        exports: ExportBodies,
    ) -> Arc<dyn Store> {
        Arc::new(Self {
            inner,
            encryption,
            exports,
        })
    }

    /// `new` with its body sealed, if it is marked encrypted.
    fn seal(&self, ticket: TicketId, new: &NewMessage) -> Result<NewMessage, StoreError> {
        if !new.encrypted {
            return Ok(new.clone());
        }
        let keyring = self.encryption.keyring();
        let sealed = crypto::seal(keyring.current(), ticket, new.id, new.body.as_str()).map_err(
            |error| {
                StoreError::Other(Cause::with_source(
                    format!("cannot seal message {}: {error}", new.id),
                    error,
                ))
            },
        )?;
        Ok(NewMessage {
            body: MessageBody::sealed(sealed),
            ..new.clone()
        })
    }

    /// The id of the ticket `ticket` names: the id is sealed into a body,
    /// so a reference by number is resolved first (numbers never change).
    async fn ticket_id(&self, actor: &Actor, ticket: TicketRef) -> Result<TicketId, StoreError> {
        match ticket {
            TicketRef::Id(id) => Ok(id),
            TicketRef::Number(_) => Ok(self.inner.find_ticket(actor, ticket).await?.id),
        }
    }

    /// Runs a write that seals with the current key; if the database
    /// refuses that key (a rotation retired it), re-reads the key file and
    /// tries once more.
    async fn write_sealed<T, F, Fut>(&self, write: F) -> Result<T, StoreError>
    where
        F: Fn() -> Result<Fut, StoreError>,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        match write()?.await {
            Err(StoreError::Conflict(Constraint::SealedKey)) => {
                self.encryption.reload(self.inner.as_ref()).await;
                match write()?.await {
                    Err(StoreError::Conflict(Constraint::SealedKey)) => {
                        Err(StoreError::unavailable(format!(
                            "the database refuses key {} for new encrypted messages (retired by \
                             a rotation): the encryption key file {} is out of date; copy it \
                             from where `ticketd encryption rotate` ran",
                            self.encryption.keyring().current().id(),
                            self.encryption.key_file().display()
                        )))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// An idempotent write's outcome, with the database's refusal of the
    /// current key (a rotation retired it) turned into `Unavailable` after
    /// the key file is re-read: such a write cannot be repeated here (its
    /// completion is spent), but the client's retry can.
    async fn refused_key_is_unavailable<T>(
        &self,
        written: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match written {
            Err(StoreError::Conflict(Constraint::SealedKey)) => {
                self.encryption.reload(self.inner.as_ref()).await;
                Err(StoreError::Unavailable(
                    "the encryption key changed during the write: retry it".into(),
                ))
            }
            other => other,
        }
    }

    /// The plaintext of a stored body of `message` in `ticket`.
    async fn open(
        &self,
        ticket: TicketId,
        message: MessageId,
        body: &str,
    ) -> Result<String, StoreError> {
        self.open_with(crypto::open, ticket, message, body).await
    }

    /// What `opener` ([`crypto::open`] or [`crypto::open_response`]) makes
    /// of a sealed text of `message` in `ticket`.
    async fn open_with(
        &self,
        opener: fn(&crypto::Keyring, TicketId, MessageId, &str) -> Result<String, CryptoError>,
        ticket: TicketId,
        message: MessageId,
        body: &str,
    ) -> Result<String, StoreError> {
        let keyring = self.encryption.keyring();
        let opened = match opener(&keyring, ticket, message, body) {
            Err(CryptoError::UnknownKey(_)) => {
                // Perhaps sealed by a node that has a newer key file.
                self.encryption.reload(self.inner.as_ref()).await;
                opener(&self.encryption.keyring(), ticket, message, body)
            }
            other => other,
        };
        opened.map_err(|error| match error {
            CryptoError::UnknownKey(key) => StoreError::unavailable(format!(
                "message {message} of {ticket} is sealed with key {key}, which the encryption \
                 key file {} lacks: copy this database's key file here",
                self.encryption.key_file().display()
            )),
            CryptoError::NotSealed => StoreError::other(format!(
                "encrypted message {message} of {ticket} is stored unsealed: the database was \
                 altered outside ticketd"
            )),
            other => StoreError::Other(Cause::with_source(
                format!("encrypted message {message} of {ticket} cannot be read: {other}"),
                other,
            )),
        })
    }

    async fn open_message(&self, mut message: Message) -> Result<Message, StoreError> {
        if message.encrypted {
            message.body = self
                .open(message.ticket_id, message.id, &message.body)
                .await?;
        }
        Ok(message)
    }

    /// Checks that an encrypted message record to import is sealed with
    /// a key of this database ([`crate::transfer::import`] seals the
    /// plaintext of a decrypted dump before it gets here).
    fn import_message(&self, record: &crate::core::dump::MessageRecord) -> Result<(), StoreError> {
        if !record.encrypted {
            return Ok(());
        }
        let keyring = self.encryption.keyring();
        match crypto::sealed_key_id(&record.body) {
            Some(key) if keyring.get(key).is_some() => Ok(()),
            Some(key) => Err(StoreError::other(format!(
                "message {} is sealed with key {key}, which the encryption key file {} \
                 lacks: import with the key file of the database the dump came from",
                record.id,
                self.encryption.key_file().display()
            ))),
            None => Err(StoreError::other(format!(
                "encrypted message {} is not sealed",
                record.id
            ))),
        }
    }
}

/// The sealed-response path: an encrypted reply's idempotency record holds
/// its response sealed (written through `sealing_completion`) and a replay opens
/// it (`open_response`).
impl EncryptedStore {
    /// `completion` for an encrypted reply whose body is `plaintext`: the
    /// record stores the response sealed, rendered from the plaintext as
    /// its client gets it. Also returns the render, for the client's own
    /// (unsealed) copy of the response.
    fn sealing_completion(
        &self,
        completion: Completion<Message>,
        plaintext: &str,
    ) -> (Completion<Message>, Arc<Render<Message>>) {
        let Completion {
            claim,
            expires_at,
            render,
        } = completion;
        let render = Arc::new(render);
        let encryption = Arc::clone(&self.encryption);
        let sealing = {
            let render = Arc::clone(&render);
            let plaintext = plaintext.to_owned();
            move |written: &Message| {
                let opened = Message {
                    body: plaintext.clone(),
                    ..written.clone()
                };
                Self::seal_response(&encryption, written, render(&opened)?)
            }
        };
        let completion = Completion {
            claim,
            expires_at,
            render: Box::new(sealing),
        };
        (completion, render)
    }

    /// The response of an encrypted reply, sealed for its idempotency
    /// record.
    fn seal_response(
        encryption: &Encryption,
        message: &Message,
        response: StoredResponse,
    ) -> Result<StoredResponse, Cause> {
        let body = std::str::from_utf8(&response.body)
            .map_err(|error| Cause::with_source("a response body that is not UTF-8", error))?;
        let sealed = crypto::seal_response(
            encryption.keyring().current(),
            message.ticket_id,
            message.id,
            body,
        )
        .map_err(|error| {
            Cause::with_source(
                format!("cannot seal the response of {}: {error}", message.id),
                error,
            )
        })?;
        let body = format!(
            "{SEALED_RESPONSE_PREFIX}{}:{}:{}",
            message.ticket_id.key(),
            message.id.key(),
            sealed.as_str()
        );
        Ok(StoredResponse {
            body: body.into_bytes(),
            ..response
        })
    }

    /// A stored response as its client gets it: opened, if it was sealed.
    async fn open_response(&self, response: StoredResponse) -> Result<StoredResponse, StoreError> {
        let Some(rest) = response
            .body
            .strip_prefix(SEALED_RESPONSE_PREFIX.as_bytes())
        else {
            return Ok(response);
        };
        let malformed = || StoreError::Other("a malformed sealed idempotency response".into());
        let rest = std::str::from_utf8(rest).map_err(|_| malformed())?;
        let mut parts = rest.splitn(3, ':');
        let (Some(ticket), Some(message), Some(sealed)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let ticket = TicketId::from_key(ticket).ok_or_else(malformed)?;
        let message = MessageId::from_key(message).ok_or_else(malformed)?;
        let body = self
            .open_with(crypto::open_response, ticket, message, sealed)
            .await?;
        Ok(StoredResponse {
            body: body.into_bytes(),
            ..response
        })
    }
}

impl Delegating for EncryptedStore {
    fn inner(&self) -> &dyn Store {
        self.inner.as_ref()
    }
}

#[async_trait]
impl Store for EncryptedStore {
    async fn check_ready(&self) -> Result<(), StoreError> {
        self.inner.check_ready().await
    }
}

#[async_trait]
impl TicketStore for EncryptedStore {
    async fn create_ticket(
        &self,
        actor: &Actor,
        new: NewTicket,
        completion: Option<Completion<Ticket>>,
    ) -> Result<Written<Ticket>, StoreError> {
        if !new.first_message.encrypted {
            return self.inner.create_ticket(actor, new, completion).await;
        }
        let Some(completion) = completion else {
            return self
                .write_sealed(|| {
                    let first_message = self.seal(new.id, &new.first_message)?;
                    let sealed = NewTicket {
                        first_message,
                        ..new.clone()
                    };
                    Ok(self.inner.create_ticket(actor, sealed, None))
                })
                .await;
        };
        // A ticket's response holds no message body: only the first message
        // is sealed. A completion cannot be retried, so a refused key is a
        // 503 after the key file is re-read (the client's retry succeeds).
        let first_message = self.seal(new.id, &new.first_message)?;
        let sealed = NewTicket {
            first_message,
            ..new
        };
        let written = self
            .inner
            .create_ticket(actor, sealed, Some(completion))
            .await;
        self.refused_key_is_unavailable(written).await
    }

    async fn find_ticket(&self, actor: &Actor, ticket: TicketRef) -> Result<Ticket, StoreError> {
        self.inner.find_ticket(actor, ticket).await
    }

    async fn list_tickets(
        &self,
        actor: &Actor,
        filter: TicketFilter,
        page: PageRequest<TicketCursor>,
    ) -> Result<Page<Ticket, TicketCursor>, StoreError> {
        self.inner.list_tickets(actor, filter, page).await
    }

    async fn list_ticket_rows(
        &self,
        actor: &Actor,
        query: &TicketRowQuery,
    ) -> Result<TicketRows, StoreError> {
        // A sealed latest message is previewed as sealed, never opened.
        self.inner.list_ticket_rows(actor, query).await
    }

    async fn mark_read(&self, actor: &Actor, ticket: TicketId, seq: i64) -> Result<(), StoreError> {
        self.inner.mark_read(actor, ticket, seq).await
    }

    async fn append_message(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        new: NewMessage,
        completion: Option<Completion<Message>>,
    ) -> Result<Written<Message>, StoreError> {
        if !new.encrypted {
            return self
                .inner
                .append_message(actor, ticket, new, completion)
                .await;
        }
        let ticket_id = self.ticket_id(actor, ticket).await?;
        let Some(completion) = completion else {
            let mut written = self
                .write_sealed(|| {
                    let sealed = self.seal(ticket_id, &new)?;
                    Ok(self
                        .inner
                        .append_message(actor, TicketRef::Id(ticket_id), sealed, None))
                })
                .await?;
            written.value.body = new.body.into_string();
            return Ok(written);
        };
        let sealed = self.seal(ticket_id, &new)?;
        let plaintext = new.body.into_string();
        let (completion, render) = self.sealing_completion(completion, &plaintext);
        let written = self
            .inner
            .append_message(actor, TicketRef::Id(ticket_id), sealed, Some(completion))
            .await;
        let mut written = self.refused_key_is_unavailable(written).await?;
        written.value.body = plaintext;
        written.response = Some(render(&written.value).map_err(StoreError::Other)?);
        Ok(written)
    }

    async fn list_messages_where(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        filter: MessageFilter,
        page: PageRequest<MessageCursor>,
    ) -> Result<Page<Message, MessageCursor>, StoreError> {
        let page = self
            .inner
            .list_messages_where(actor, ticket, filter, page)
            .await?;
        let mut items = Vec::with_capacity(page.items.len());
        for message in page.items {
            items.push(self.open_message(message).await?);
        }
        Ok(Page {
            items,
            next: page.next,
        })
    }

    async fn find_message(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        message: MessageId,
    ) -> Result<Message, StoreError> {
        let message = self.inner.find_message(actor, ticket, message).await?;
        self.open_message(message).await
    }

    async fn apply_action(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        action: TicketAction,
        at: Timestamp,
        completion: Option<Completion<Ticket>>,
    ) -> Result<Written<Ticket>, StoreError> {
        self.inner
            .apply_action(actor, ticket, action, at, completion)
            .await
    }
}

#[async_trait]
impl TransferStore for EncryptedStore {
    async fn is_empty(&self) -> Result<bool, StoreError> {
        self.inner.is_empty().await
    }

    async fn export_page(
        &self,
        kind: RecordKind,
        after: Option<ExportCursor>,
        limit: u32,
    ) -> Result<Vec<Record>, StoreError> {
        let mut records = self.inner.export_page(kind, after, limit).await?;
        if self.exports == ExportBodies::Decrypted {
            for record in &mut records {
                if let Record::Message(message) = record
                    && message.encrypted
                {
                    message.body = self
                        .open(message.ticket_id, message.id, &message.body)
                        .await?;
                }
            }
        }
        Ok(records)
    }

    async fn import_records(&self, records: Vec<Record>) -> Result<(), StoreError> {
        for record in &records {
            if let Record::Message(message) = record {
                self.import_message(message)?;
            }
        }
        self.inner.import_records(records).await
    }
}

#[async_trait]
impl IdempotencyStore for EncryptedStore {
    async fn claim_idempotency_key(
        &self,
        request: ClaimRequest,
    ) -> Result<ClaimOutcome, StoreError> {
        match self.inner.claim_idempotency_key(request).await? {
            ClaimOutcome::Replay(response) => {
                Ok(ClaimOutcome::Replay(self.open_response(response).await?))
            }
            other => Ok(other),
        }
    }

    async fn release_idempotency_key(&self, claim: &Claim) -> Result<(), StoreError> {
        self.inner.release_idempotency_key(claim).await
    }

    async fn renew_idempotency_claim(
        &self,
        claim: &Claim,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.renew_idempotency_claim(claim, until).await
    }

    async fn release_abandoned_claims(&self, holder: &ClaimHolder) -> Result<u64, StoreError> {
        self.inner.release_abandoned_claims(holder).await
    }

    async fn sweep_idempotency_keys(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.inner.sweep_idempotency_keys(now, limit).await
    }
}
