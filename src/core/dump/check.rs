//! What a dump's records must hold beyond their form, so that an import
//! never writes what the API would refuse or could not have written:
//!
//! - **References** point to a record earlier in the dump and stay inside
//!   one workspace: a user's and a ticket's workspace exist; an API key's
//!   user exists; a ticket's customer is a customer of the ticket's
//!   workspace; a message's ticket exists, and its sender is a user of the
//!   ticket's workspace, of the role the message says, and, if a customer,
//!   the ticket's own customer (customers write only in their own tickets).
//! - **Text** follows the API's rules ([`crate::core::text`], at the
//!   published limits: a dump holds what any ticketd may have accepted):
//!   subjects and message bodies are not blank, within 255 and 25,000
//!   characters, and hold no NUL. The body of an encrypted message is
//!   sealed or plaintext as the header says ([`EncryptedBodies`]); the
//!   plaintext of a sealed body is opened
//!   with the target's keys and checked the same way, so a body that does
//!   not open (another key file, or altered) is refused here too. Names
//!   (of workspaces, plans, users and senders) follow a subject's rules,
//!   workspace codes and email addresses the provisioning commands' rules.
//! - **Numbers** a database goes on from are consistent (and integer ids
//!   are at least 1; their uniqueness is the database's to check): workspace ids and
//!   codes are unique; a ticket's number is unique in its workspace and at
//!   most the workspace's `last_ticket_number`; a ticket's messages are
//!   numbered 1, 2, 3, ... and there are `message_count` of them.
//! - **Files**: an upload's owner is a user of its workspace, its name and
//!   media type follow the upload rules, and the bytes after it are as many
//!   as it says; plaintext bytes match its `sha256`, and a sealed file's
//!   content key opens with the target's keys. Which message attaches it
//!   is checked by the database (the message's rows are not kept here).
//!
//! [`DumpCheck`] sees records one at a time in dump order (checked first by
//! [`super::DumpOrder`]). It keeps what later records refer to: each
//! workspace, and each user and ticket in a vector sorted by id (the dump's
//! order), about 50 bytes a user and 100 a ticket; messages are checked
//! against their ticket as they stream past.

use std::collections::{HashMap, HashSet};

use crate::core::access::Role;
use crate::core::crypto::{self, CryptoError, Keyring};
use sha2::{Digest, Sha256};

use crate::core::dump::{
    ApiKeyRecord, DumpError, EncryptedBodies, MessageRecord, ReadMarkerRecord, Record,
    TicketRecord, UploadRecord, UserRecord, WorkspaceRecord,
};
use crate::core::id::{TicketId, UserId, WorkspaceId};
use crate::core::text::{self, TextLimits};
use crate::core::upload::Filename;
use crate::core::workspace::{EMAIL_MAX_BYTES, WorkspaceCode, is_email};

/// A record refused, with the line at fault: the record's own, or for a
/// ticket whose messages do not add up, the ticket's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The line at fault, from 1.
    pub line: u64,
    /// Why ([`DumpError::Invalid`]).
    pub error: DumpError,
}

struct WorkspaceEntry {
    id: WorkspaceId,
    last_ticket_number: i64,
}

struct UserEntry {
    id: UserId,
    workspace: u32,
    role: Role,
}

struct TicketEntry {
    id: TicketId,
    workspace: u32,
    /// Index into the users.
    customer: u32,
    message_count: i64,
    line: u64,
}

/// The ticket whose messages are streaming past.
struct Thread {
    /// Index into the tickets.
    ticket: usize,
    /// The `seq` of its latest message so far.
    seq: i64,
}

/// The upload whose bytes are streaming past.
struct OpenUpload {
    name: String,
    line: u64,
    sha256: String,
    /// Bytes the record says follow it.
    expected: u64,
    received: u64,
    /// The digest so far, of bytes that follow as plaintext.
    digest: Option<Sha256>,
}

/// Checks the records of one dump, in dump order; see the module.
pub struct DumpCheck<'k> {
    keyring: &'k Keyring,
    bodies: EncryptedBodies,
    limits: TextLimits,
    workspaces: Vec<WorkspaceEntry>,
    workspace_index: HashMap<WorkspaceId, u32>,
    codes: HashSet<String>,
    users: Vec<UserEntry>,
    tickets: Vec<TicketEntry>,
    numbers: HashSet<(u32, i64)>,
    /// Tickets before this index have had their messages counted.
    next_ticket: usize,
    thread: Option<Thread>,
    upload: Option<OpenUpload>,
}

impl<'k> DumpCheck<'k> {
    /// A check of a new dump whose encrypted bodies follow as `bodies`
    /// says, opening sealed ones with `keyring` (the keys of the database
    /// the dump goes into).
    pub fn new(keyring: &'k Keyring, bodies: EncryptedBodies) -> Self {
        Self {
            keyring,
            bodies,
            limits: TextLimits::STORED,
            workspaces: Vec::new(),
            workspace_index: HashMap::new(),
            codes: HashSet::new(),
            users: Vec::new(),
            tickets: Vec::new(),
            numbers: HashSet::new(),
            next_ticket: 0,
            thread: None,
            upload: None,
        }
    }

    /// Checks the next record, read from `line`. Records must come in dump
    /// order ([`super::DumpOrder`] checks that first).
    ///
    /// # Errors
    /// A [`Refusal`] naming the record, the member at fault and why.
    pub fn accept(&mut self, record: &Record, line: u64) -> Result<(), Refusal> {
        let refused = |name: String, reason: String| Refusal {
            line,
            error: DumpError::Invalid {
                record: name,
                reason,
            },
        };
        self.end_upload()?;
        match record {
            Record::Workspace(workspace) => self
                .workspace(workspace)
                .map_err(|reason| refused(format!("workspace {}", workspace.id), reason)),
            Record::User(user) => self
                .user(user)
                .map_err(|reason| refused(format!("user {}", user.id), reason)),
            Record::ApiKey(key) => self
                .api_key(key)
                .map_err(|reason| refused(format!("api_key {}", key.id), reason)),
            Record::Ticket(ticket) => self
                .ticket(ticket, line)
                .map_err(|reason| refused(format!("ticket {}", ticket.id), reason)),
            Record::Message(message) => self.message(message).map_err(|error| match error {
                Failure::Here(reason) => refused(message_name(message), reason),
                Failure::Earlier(refusal) => refusal,
            }),
            Record::ReadMarker(marker) => self.read_marker(marker).map_err(|error| match error {
                Failure::Here(reason) => refused(
                    format!("read_marker of {} on {}", marker.user_id, marker.ticket_id),
                    reason,
                ),
                Failure::Earlier(refusal) => refusal,
            }),
            Record::Upload(upload) => self
                .upload(upload, line)
                .map_err(|reason| refused(format!("upload {}", upload.id), reason)),
        }
    }

    /// Checks the bytes of an `upload_data` line, read from `line`.
    ///
    /// # Errors
    /// A [`Refusal`] if no upload record comes before it, or if it holds
    /// more bytes than the upload says.
    pub fn data(&mut self, data: &[u8], line: u64) -> Result<(), Refusal> {
        let Some(upload) = &mut self.upload else {
            return Err(Refusal {
                line,
                error: DumpError::Malformed(
                    "an upload_data line must follow an upload record or its data".into(),
                ),
            });
        };
        upload.received = upload.received.saturating_add(data.len() as u64);
        if upload.received > upload.expected {
            return Err(Refusal {
                line,
                error: DumpError::Invalid {
                    record: upload.name.clone(),
                    reason: format!("more than its {} bytes follow it", upload.expected),
                },
            });
        }
        if let Some(digest) = &mut upload.digest {
            digest.update(data);
        }
        Ok(())
    }

    /// Closes the upload whose bytes were streaming past: they must be
    /// whole and, as plaintext, match its digest.
    fn end_upload(&mut self) -> Result<(), Refusal> {
        let Some(upload) = self.upload.take() else {
            return Ok(());
        };
        let refused = |reason: String| Refusal {
            line: upload.line,
            error: DumpError::Invalid {
                record: upload.name.clone(),
                reason,
            },
        };
        if upload.received != upload.expected {
            return Err(refused(format!(
                "{} bytes follow it, not the {} it needs",
                upload.received, upload.expected
            )));
        }
        if let Some(digest) = upload.digest {
            let found: String = digest
                .finalize()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            if found != upload.sha256 {
                return Err(refused(format!(
                    "sha256: its bytes have the digest {found}"
                )));
            }
        }
        Ok(())
    }

    fn upload(&mut self, record: &UploadRecord, line: u64) -> Result<(), String> {
        if record.numeric_id < 1 {
            return Err("numeric_id: must be at least 1".into());
        }
        let workspace = self.workspace_of("workspace_id", record.workspace_id)?;
        let owner = self.user_of("owner_id", record.owner_id)?;
        if self.users[owner as usize].workspace != workspace {
            return Err(format!(
                "owner_id: user {} is not of workspace {}",
                record.owner_id, record.workspace_id
            ));
        }
        Filename::parse(&record.filename).map_err(|error| format!("filename: {error}"))?;
        if record.content_type.is_empty()
            || record.content_type.len() > 255
            || record.content_type.chars().any(char::is_control)
        {
            return Err(
                "content_type: must be a media type of 1 to 255 bytes without control characters"
                    .into(),
            );
        }
        if record.sha256.len() != 64
            || !record
                .sha256
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err("sha256: must be 64 lowercase hex digits".into());
        }
        match (record.message_id, record.position) {
            (None, None) => {}
            (Some(_), Some(position)) if position >= 0 => {}
            (Some(_), Some(_)) => return Err("position: must not be negative".into()),
            _ => return Err("position: must be null exactly when message_id is".into()),
        }
        if let Some(sealed) = &record.content_key {
            if !record.encrypted {
                return Err("content_key: a plain upload has none".into());
            }
            crypto::open_content_key(self.keyring, record.id, sealed).map_err(
                |error| match error {
                    CryptoError::UnknownKey(key) => format!(
                        "content_key: sealed with key {key}, which the key file of the database \
                     to import into lacks"
                    ),
                    other => format!("content_key: does not open ({other})"),
                },
            )?;
        }
        self.upload = Some(OpenUpload {
            name: format!("upload {}", record.id),
            line,
            sha256: record.sha256.clone(),
            expected: record.data_len(),
            received: 0,
            digest: record.content_key.is_none().then(Sha256::new),
        });
        Ok(())
    }

    /// Checks what only the end of the dump shows: that the last tickets
    /// hold as many messages as they say, and the last upload its bytes.
    ///
    /// # Errors
    /// A [`Refusal`] at the line of the first ticket that does not.
    pub fn finish(&mut self) -> Result<(), Refusal> {
        self.end_upload()?;
        self.end_thread()?;
        self.skip_tickets_to(self.tickets.len())
    }

    fn workspace(&mut self, record: &WorkspaceRecord) -> Result<(), String> {
        if record.numeric_id < 1 {
            return Err("numeric_id: must be at least 1".into());
        }
        text::check_name(&record.name).map_err(|error| format!("name: {error}"))?;
        let generation_ok = |kid: &String| {
            (1..=64).contains(&kid.len())
                && kid
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        };
        if record
            .agency_signature_kid
            .as_ref()
            .is_some_and(|kid| !generation_ok(kid))
        {
            return Err(
                "agency_signature_kid: must be 1 to 64 characters of A-Z, a-z, 0-9, - and _".into(),
            );
        }
        if WorkspaceCode::parse(&record.code).is_none() {
            return Err("code: must be 2 to 32 characters of A-Z, 0-9, - and _, \
                        starting with a letter or digit"
                .into());
        }
        text::check_name(&record.plan).map_err(|error| format!("plan: {error}"))?;
        if record.last_ticket_number < 0 {
            return Err("last_ticket_number: must not be negative".into());
        }
        if self.workspace_index.contains_key(&record.id) {
            return Err("id: an earlier workspace has this id".into());
        }
        if !self.codes.insert(record.code.clone()) {
            return Err(format!(
                "code: {} is the code of an earlier workspace",
                record.code
            ));
        }
        let index = index_of(self.workspaces.len())?;
        self.workspace_index.insert(record.id, index);
        self.workspaces.push(WorkspaceEntry {
            id: record.id,
            last_ticket_number: record.last_ticket_number,
        });
        Ok(())
    }

    fn workspace_of(&self, member: &str, id: WorkspaceId) -> Result<u32, String> {
        self.workspace_index
            .get(&id)
            .copied()
            .ok_or_else(|| format!("{member}: no workspace {id} comes before it in the dump"))
    }

    fn user(&mut self, record: &UserRecord) -> Result<(), String> {
        let workspace = self.workspace_of("workspace_id", record.workspace_id)?;
        text::check_name(&record.name).map_err(|error| format!("name: {error}"))?;
        if let Some(email) = &record.email
            && !is_email(email)
        {
            return Err(format!(
                "email: must be an email address (with an @, at most {EMAIL_MAX_BYTES} bytes, \
                 no NUL)"
            ));
        }
        self.users.push(UserEntry {
            id: record.id,
            workspace,
            role: record.role,
        });
        Ok(())
    }

    /// The index of user `id`, a reference from `member`.
    fn user_of(&self, member: &str, id: UserId) -> Result<u32, String> {
        let index = self
            .users
            .binary_search_by(|user| user.id.cmp(&id))
            .map_err(|_| format!("{member}: no user {id} comes before it in the dump"))?;
        index_of(index)
    }

    fn api_key(&self, record: &ApiKeyRecord) -> Result<(), String> {
        self.user_of("user_id", record.user_id).map(drop)
    }

    fn ticket(&mut self, record: &TicketRecord, line: u64) -> Result<(), String> {
        let workspace = self.workspace_of("workspace_id", record.workspace_id)?;
        let customer = self.user_of("customer_id", record.customer_id)?;
        let user = &self.users[customer as usize];
        if user.workspace != workspace {
            return Err(format!(
                "customer_id: {} is a user of workspace {}, not of the ticket's workspace {}",
                record.customer_id,
                self.workspaces[user.workspace as usize].id,
                record.workspace_id
            ));
        }
        if user.role != Role::Customer {
            return Err(format!(
                "customer_id: {} is {}, not a customer",
                record.customer_id,
                user.role.as_str()
            ));
        }
        self.limits
            .check_subject(&record.subject)
            .map_err(|error| format!("subject: {error}"))?;
        let last = self.workspaces[workspace as usize].last_ticket_number;
        if record.number < 1 || record.number > last {
            return Err(format!(
                "number: must be from 1 to the workspace's last_ticket_number ({last})"
            ));
        }
        if !self.numbers.insert((workspace, record.number)) {
            return Err(format!(
                "number: an earlier ticket of workspace {} has number {}",
                record.workspace_id, record.number
            ));
        }
        if record.message_count < 0 {
            return Err("message_count: must not be negative".into());
        }
        self.tickets.push(TicketEntry {
            id: record.id,
            workspace,
            customer,
            message_count: record.message_count,
            line,
        });
        Ok(())
    }

    fn message(&mut self, record: &MessageRecord) -> Result<(), Failure> {
        if record.numeric_id.is_some_and(|id| id < 1) {
            return Err("numeric_id: must be at least 1".to_owned().into());
        }
        let ticket = self.enter_thread(record.ticket_id)?;
        let entry = &self.tickets[ticket];
        let expected = self.thread.as_ref().map_or(1, |thread| thread.seq + 1);
        if record.seq != expected {
            return Err(Failure::Here(format!(
                "seq: expected {expected}: a ticket's messages are numbered 1, 2, 3, ... \
                 without gaps"
            )));
        }
        if record.seq > entry.message_count {
            return Err(Failure::Here(format!(
                "seq: past the ticket's message_count ({}, line {})",
                entry.message_count, entry.line
            )));
        }
        let sender = self.user_of("sender_id", record.sender_id)?;
        let user = &self.users[sender as usize];
        if user.workspace != entry.workspace {
            return Err(Failure::Here(format!(
                "sender_id: {} is a user of workspace {}, not of the ticket's workspace {}",
                record.sender_id,
                self.workspaces[user.workspace as usize].id,
                self.workspaces[entry.workspace as usize].id
            )));
        }
        if user.role != record.sender_role {
            return Err(Failure::Here(format!(
                "sender_role: the sender is {}, not {}",
                user.role.as_str(),
                record.sender_role.as_str()
            )));
        }
        if user.role == Role::Customer && sender != entry.customer {
            return Err(Failure::Here(format!(
                "sender_id: {} is another customer than the ticket's: customers write only in \
                 their own tickets",
                record.sender_id
            )));
        }
        text::check_name(&record.sender_name)
            .map_err(|error| Failure::Here(format!("sender_name: {error}")))?;
        self.check_body(record).map_err(Failure::Here)?;
        if let Some(thread) = &mut self.thread {
            thread.seq = record.seq;
        }
        Ok(())
    }

    /// A read marker: of a ticket and a user of its workspace (a customer
    /// only on their own ticket), no further than the ticket's messages.
    /// The first one ends the messages.
    fn read_marker(&mut self, record: &ReadMarkerRecord) -> Result<(), Failure> {
        self.end_thread().map_err(Failure::Earlier)?;
        self.skip_tickets_to(self.tickets.len())
            .map_err(Failure::Earlier)?;
        let ticket = self
            .tickets
            .binary_search_by(|entry| entry.id.cmp(&record.ticket_id))
            .map_err(|_| {
                format!(
                    "ticket_id: no ticket {} comes before it in the dump",
                    record.ticket_id
                )
            })?;
        let entry = &self.tickets[ticket];
        let reader = self.user_of("user_id", record.user_id)?;
        let user = &self.users[reader as usize];
        if user.workspace != entry.workspace {
            return Err(Failure::Here(format!(
                "user_id: {} is a user of another workspace than the ticket's",
                record.user_id
            )));
        }
        if user.role == Role::Customer && reader != entry.customer {
            return Err(Failure::Here(format!(
                "user_id: {} is another customer than the ticket's",
                record.user_id
            )));
        }
        if !(0..=entry.message_count).contains(&record.last_read_seq) {
            return Err(Failure::Here(format!(
                "last_read_seq: must be between 0 and the ticket's message_count ({})",
                entry.message_count
            )));
        }
        Ok(())
    }

    /// Makes `ticket` the thread being read, ending the one before; returns
    /// its index.
    fn enter_thread(&mut self, ticket: TicketId) -> Result<usize, Failure> {
        if let Some(thread) = &self.thread
            && self.tickets[thread.ticket].id == ticket
        {
            return Ok(thread.ticket);
        }
        self.end_thread().map_err(Failure::Earlier)?;
        let index = self
            .tickets
            .binary_search_by(|entry| entry.id.cmp(&ticket))
            .ok()
            .filter(|index| *index >= self.next_ticket)
            .ok_or_else(|| {
                Failure::Here(format!(
                    "ticket_id: no ticket {ticket} comes before it in the dump"
                ))
            })?;
        self.skip_tickets_to(index).map_err(Failure::Earlier)?;
        self.next_ticket = index + 1;
        self.thread = Some(Thread {
            ticket: index,
            seq: 0,
        });
        Ok(index)
    }

    /// Ends the thread being read: its ticket must hold no more messages.
    fn end_thread(&mut self) -> Result<(), Refusal> {
        match self.thread.take() {
            Some(thread) => self.complete(thread.ticket, thread.seq),
            None => Ok(()),
        }
    }

    /// Passes over the tickets up to `index`, which have no messages.
    fn skip_tickets_to(&mut self, index: usize) -> Result<(), Refusal> {
        for skipped in self.next_ticket..index {
            self.complete(skipped, 0)?;
        }
        self.next_ticket = self.next_ticket.max(index);
        Ok(())
    }

    /// Checks that ticket `index` holds `found` messages.
    fn complete(&self, index: usize, found: i64) -> Result<(), Refusal> {
        let ticket = &self.tickets[index];
        if found == ticket.message_count {
            return Ok(());
        }
        Err(Refusal {
            line: ticket.line,
            error: DumpError::Invalid {
                record: format!("ticket {}", ticket.id),
                reason: format!(
                    "message_count: {} but the dump holds {found} messages of it",
                    ticket.message_count
                ),
            },
        })
    }

    /// A body must be a valid message body; a sealed one once opened.
    fn check_body(&self, record: &MessageRecord) -> Result<(), String> {
        if !self.bodies.is_sealed(record) {
            return self
                .limits
                .check_message(&record.body)
                .map_err(|error| format!("body: {error}"));
        }
        let plaintext = crypto::open(self.keyring, record.ticket_id, record.id, &record.body)
            .map_err(|error| match error {
                CryptoError::UnknownKey(key) => format!(
                    "body: sealed with key {key}, which the encryption key file lacks: import \
                     with the key file of the database the dump came from"
                ),
                CryptoError::Forged => "body: the sealed body does not open: it was altered, \
                                        or sealed for another message"
                    .into(),
                _ => "body: not a valid sealed body".into(),
            })?;
        self.limits
            .check_message(&plaintext)
            .map_err(|error| format!("body, once opened: {error}"))
    }
}

/// Why a message was refused: for itself, or because the ticket before it
/// turned out incomplete.
enum Failure {
    Here(String),
    Earlier(Refusal),
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure::Here(reason)
    }
}

fn message_name(message: &MessageRecord) -> String {
    format!(
        "message {} ({} of {})",
        message.id, message.seq, message.ticket_id
    )
}

/// A vector index as the `u32` the entries keep.
fn index_of(index: usize) -> Result<u32, String> {
    u32::try_from(index).map_err(|_| "more records of this kind than an import can check".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::access::Scopes;
    use crate::core::crypto::DataKey;
    use crate::core::id::{KeyId, MessageId};
    use crate::core::message::BodyFormat;
    use crate::core::ticket::{Priority, TicketStatus};
    use crate::core::time::Timestamp;
    use crate::core::token::SecretHash;

    /// Two workspaces: Alpha with a customer, a staff member and a ticket
    /// of two messages (the second sealed), Bravo with a customer.
    struct Fixture {
        keyring: Keyring,
        alpha: WorkspaceRecord,
        bravo: WorkspaceRecord,
        alice: UserRecord,
        sam: UserRecord,
        bea: UserRecord,
        key: ApiKeyRecord,
        ticket: TicketRecord,
        first: MessageRecord,
        second: MessageRecord,
    }

    fn fixture() -> Fixture {
        let keyring = Keyring::new(vec![DataKey::generate().expect("a key")]).expect("keys");
        let at = Timestamp::from_millis(1_700_000_000_000);
        let alpha = WorkspaceRecord {
            id: WorkspaceId::generate(),
            numeric_id: 1,
            name: "Alpha".into(),
            code: "ALPHA".into(),
            plan: "standard".into(),
            last_ticket_number: 1,
            created_at: at,
            agency_signature_kid: None,
        };
        let bravo = WorkspaceRecord {
            id: WorkspaceId::generate(),
            numeric_id: 2,
            name: "Bravo".into(),
            code: "BRAVO".into(),
            last_ticket_number: 0,
            ..alpha.clone()
        };
        let user = |workspace: &WorkspaceRecord, role, name: &str| UserRecord {
            id: UserId::generate(),
            workspace_id: workspace.id,
            role,
            name: name.into(),
            email: Some(format!("{}@example.com", name.to_lowercase())),
            created_at: at,
        };
        let alice = user(&alpha, Role::Customer, "Alice");
        let sam = user(&alpha, Role::Staff, "Sam");
        let bea = user(&bravo, Role::Customer, "Bea");
        let key = ApiKeyRecord {
            id: KeyId::generate(),
            user_id: alice.id,
            secret_hash: SecretHash([7; 32]),
            scopes: Scopes::all(),
            created_at: at,
            revoked_at: None,
        };
        let ticket = TicketRecord {
            id: TicketId::generate(),
            workspace_id: alpha.id,
            number: 1,
            customer_id: alice.id,
            subject: "Cannot log in".into(),
            status: TicketStatus::Open,
            priority: Priority::Normal,
            created_at: at,
            updated_at: at,
            last_message_at: at,
            message_count: 2,
            resolved_at: None,
            closed_at: None,
            category: None,
            booking_id: None,
        };
        let first = MessageRecord {
            ticket_id: ticket.id,
            seq: 1,
            id: MessageId::generate(),
            sender_id: alice.id,
            sender_role: Role::Customer,
            sender_name: "Alice".into(),
            body: "It says no.".into(),
            body_format: BodyFormat::Plain,
            encrypted: false,
            sent_at: at,
            numeric_id: None,
            task_id: None,
        };
        let second_id = MessageId::generate();
        let sealed = crypto::seal(keyring.current(), ticket.id, second_id, "Try 1234.")
            .expect("sealed")
            .into_string();
        let second = MessageRecord {
            seq: 2,
            id: second_id,
            sender_id: sam.id,
            sender_role: Role::Staff,
            sender_name: "Sam".into(),
            body: sealed,
            encrypted: true,
            ..first.clone()
        };
        Fixture {
            keyring,
            alpha,
            bravo,
            alice,
            sam,
            bea,
            key,
            ticket,
            first,
            second,
        }
    }

    impl Fixture {
        /// The records in dump order.
        fn records(&self) -> Vec<Record> {
            let mut users = vec![self.alice.clone(), self.sam.clone(), self.bea.clone()];
            users.sort_by_key(|user| user.id);
            let mut records = vec![
                Record::Workspace(self.alpha.clone()),
                Record::Workspace(self.bravo.clone()),
            ];
            records.extend(users.into_iter().map(Record::User));
            records.push(Record::ApiKey(self.key.clone()));
            records.push(Record::Ticket(self.ticket.clone()));
            records.push(Record::Message(self.first.clone()));
            records.push(Record::Message(self.second.clone()));
            records
        }

        /// Checks the fixture's records as lines 2, 3, ... of a dump.
        fn check(&self) -> Result<(), (u64, String)> {
            check(&self.records(), &self.keyring)
        }

        /// The line of the first record `find` picks.
        fn line_of(&self, find: impl Fn(&Record) -> bool) -> u64 {
            let index = self.records().iter().position(find).expect("a record");
            index as u64 + 2
        }

        fn ticket_line(&self) -> u64 {
            self.line_of(|record| matches!(record, Record::Ticket(_)))
        }

        fn message_line(&self, seq: i64) -> u64 {
            self.line_of(|record| matches!(record, Record::Message(m) if m.seq == seq))
        }

        fn user_line(&self, id: UserId) -> u64 {
            self.line_of(|record| matches!(record, Record::User(user) if user.id == id))
        }

        fn ticket_name(&self) -> String {
            format!("ticket {}", self.ticket.id)
        }

        fn message_name(&self, message: &MessageRecord) -> String {
            message_name(message)
        }
    }

    fn check(records: &[Record], keyring: &Keyring) -> Result<(), (u64, String)> {
        check_as(records, keyring, EncryptedBodies::Unmarked)
    }

    fn check_as(
        records: &[Record],
        keyring: &Keyring,
        bodies: EncryptedBodies,
    ) -> Result<(), (u64, String)> {
        let mut check = DumpCheck::new(keyring, bodies);
        for (index, record) in records.iter().enumerate() {
            check
                .accept(record, index as u64 + 2)
                .map_err(|refusal| (refusal.line, refusal.error.to_string()))?;
        }
        check
            .finish()
            .map_err(|refusal| (refusal.line, refusal.error.to_string()))
    }

    #[test]
    fn read_markers_name_a_reader_of_the_ticket_within_its_thread() {
        let fixture = fixture();
        let marker = |user: &UserRecord, seq: i64| {
            Record::ReadMarker(ReadMarkerRecord {
                ticket_id: fixture.ticket.id,
                user_id: user.id,
                last_read_seq: seq,
            })
        };
        let with = |markers: Vec<Record>| {
            let mut records = fixture.records();
            records.extend(markers);
            check(&records, &fixture.keyring)
        };
        let mut both = vec![marker(&fixture.alice, 2), marker(&fixture.sam, 0)];
        both.sort_by_key(Record::cursor);
        assert_eq!(with(both), Ok(()));
        let line = fixture.records().len() as u64 + 2;
        let refused = |markers, reason: &str| {
            let Err((at, error)) = with(markers) else {
                panic!("{reason}: accepted");
            };
            assert_eq!(at, line, "{error}");
            assert!(error.contains(reason), "{error}");
        };
        refused(
            vec![marker(&fixture.alice, 3)],
            "last_read_seq: must be between 0 and",
        );
        refused(
            vec![marker(&fixture.alice, -1)],
            "last_read_seq: must be between 0 and",
        );
        refused(vec![marker(&fixture.bea, 1)], "user_id: ");
        let stranger = UserRecord {
            id: UserId::generate(),
            ..fixture.alice.clone()
        };
        refused(vec![marker(&stranger, 1)], "no user");
    }

    #[test]
    fn a_consistent_dump_passes() {
        let fixture = fixture();
        assert_eq!(fixture.check(), Ok(()));
        // A plaintext body of an encrypted message (a --decrypt dump) is
        // checked as it stands.
        let mut plain = fixture;
        plain.second.body = "Try 1234.".into();
        assert_eq!(plain.check(), Ok(()));
        // A ticket with no messages and a count of 0, at the end.
        let mut empty = plain;
        empty.ticket.message_count = 0;
        let records: Vec<Record> = empty
            .records()
            .into_iter()
            .filter(|record| !matches!(record, Record::Message(_)))
            .collect();
        assert_eq!(check(&records, &empty.keyring), Ok(()));
    }

    #[test]
    fn encrypted_bodies_are_sealed_or_plaintext_as_the_header_says() {
        let fixture = fixture();
        let records = fixture.records();
        assert_eq!(
            check_as(&records, &fixture.keyring, EncryptedBodies::Sealed),
            Ok(())
        );
        // A decrypted dump's bodies are plaintext, even one that reads like
        // an envelope; a sealed dump's must open.
        let mut plain = fixture;
        plain.second.body = "tkdenc:v1:not a sealed body".into();
        let records = plain.records();
        assert_eq!(
            check_as(&records, &plain.keyring, EncryptedBodies::Decrypted),
            Ok(())
        );
        let (_, reason) = check_as(&records, &plain.keyring, EncryptedBodies::Sealed)
            .expect_err("a plaintext in a sealed dump");
        assert!(reason.contains("body: not a valid sealed body"), "{reason}");
        plain.second.body = "Try 1234.".into();
        let records = plain.records();
        let (_, reason) = check_as(&records, &plain.keyring, EncryptedBodies::Sealed)
            .expect_err("a plaintext in a sealed dump");
        assert!(reason.contains("body: not a valid sealed body"), "{reason}");
    }

    #[test]
    fn a_ticket_may_not_name_a_customer_of_another_workspace() {
        let mut fixture = fixture();
        fixture.ticket.customer_id = fixture.bea.id;
        assert_eq!(
            fixture.check(),
            Err((
                fixture.ticket_line(),
                format!(
                    "{}: customer_id: {} is a user of workspace {}, not of the ticket's \
                     workspace {}",
                    fixture.ticket_name(),
                    fixture.bea.id,
                    fixture.bravo.id,
                    fixture.alpha.id
                )
            ))
        );
        fixture.ticket.customer_id = fixture.sam.id;
        assert_eq!(
            fixture.check(),
            Err((
                fixture.ticket_line(),
                format!(
                    "{}: customer_id: {} is staff, not a customer",
                    fixture.ticket_name(),
                    fixture.sam.id
                )
            ))
        );
    }

    #[test]
    fn a_sender_must_be_of_the_tickets_workspace_role_and_customer() {
        let mut fixture = fixture();
        fixture.first.sender_id = fixture.bea.id;
        let line = fixture.message_line(1);
        assert_eq!(
            fixture.check(),
            Err((
                line,
                format!(
                    "{}: sender_id: {} is a user of workspace {}, not of the ticket's \
                     workspace {}",
                    fixture.message_name(&fixture.first),
                    fixture.bea.id,
                    fixture.bravo.id,
                    fixture.alpha.id
                )
            ))
        );

        let mut fixture = self::fixture();
        fixture.first.sender_role = Role::Staff;
        assert_eq!(
            fixture.check(),
            Err((
                line,
                format!(
                    "{}: sender_role: the sender is customer, not staff",
                    fixture.message_name(&fixture.first)
                )
            ))
        );

        // Another customer of the same workspace.
        let mut fixture = self::fixture();
        fixture.bea = UserRecord {
            workspace_id: fixture.alpha.id,
            ..fixture.bea.clone()
        };
        fixture.first.sender_id = fixture.bea.id;
        assert_eq!(
            fixture.check(),
            Err((
                fixture.message_line(1),
                format!(
                    "{}: sender_id: {} is another customer than the ticket's: customers write \
                     only in their own tickets",
                    fixture.message_name(&fixture.first),
                    fixture.bea.id
                )
            ))
        );
    }

    #[test]
    fn every_reference_must_come_before_it() {
        let stranger = UserId::generate();
        let nowhere = WorkspaceId::generate();
        let mut fixture = fixture();
        fixture.bea.workspace_id = nowhere;
        assert_eq!(
            fixture.check(),
            Err((
                fixture.user_line(fixture.bea.id),
                format!(
                    "user {}: workspace_id: no workspace {nowhere} comes before it in the dump",
                    fixture.bea.id
                )
            ))
        );

        let mut fixture = self::fixture();
        fixture.key.user_id = stranger;
        assert_eq!(
            fixture.check(),
            Err((
                fixture.line_of(|record| matches!(record, Record::ApiKey(_))),
                format!(
                    "api_key {}: user_id: no user {stranger} comes before it in the dump",
                    fixture.key.id
                )
            ))
        );

        let mut fixture = self::fixture();
        fixture.ticket.workspace_id = nowhere;
        assert_eq!(
            fixture.check(),
            Err((
                fixture.ticket_line(),
                format!(
                    "{}: workspace_id: no workspace {nowhere} comes before it in the dump",
                    fixture.ticket_name()
                )
            ))
        );

        let mut fixture = self::fixture();
        fixture.ticket.customer_id = stranger;
        assert_eq!(
            fixture.check(),
            Err((
                fixture.ticket_line(),
                format!(
                    "{}: customer_id: no user {stranger} comes before it in the dump",
                    fixture.ticket_name()
                )
            ))
        );

        let mut fixture = self::fixture();
        fixture.second.sender_id = stranger;
        assert_eq!(
            fixture.check(),
            Err((
                fixture.message_line(2),
                format!(
                    "{}: sender_id: no user {stranger} comes before it in the dump",
                    fixture.message_name(&fixture.second)
                )
            ))
        );

        // Messages of a ticket the dump does not hold (in dump order: after it).
        let fixture = self::fixture();
        let mut records = fixture.records();
        let orphan = MessageRecord {
            ticket_id: TicketId::from_ulid(ulid::Ulid::from(u128::MAX)),
            seq: 1,
            ..fixture.first.clone()
        };
        records.push(Record::Message(orphan.clone()));
        assert_eq!(
            check(&records, &fixture.keyring),
            Err((
                records.len() as u64 + 1,
                format!(
                    "{}: ticket_id: no ticket {} comes before it in the dump",
                    message_name(&orphan),
                    orphan.ticket_id
                )
            ))
        );
    }

    #[test]
    fn text_follows_the_apis_rules() {
        // The finding: a message of 3,000,000 characters with a NUL.
        let mut fixture = fixture();
        fixture.first.body = format!("{}\0", "x".repeat(2_999_999));
        let line = fixture.message_line(1);
        let name = fixture.message_name(&fixture.first);
        assert_eq!(
            fixture.check(),
            Err((
                line,
                format!("{name}: body: must be at most 25000 characters long (got 3000000)")
            ))
        );
        fixture.first.body = "a\0b".into();
        assert_eq!(
            fixture.check(),
            Err((
                line,
                format!("{name}: body: must not contain NUL characters")
            ))
        );
        fixture.first.body = " \n".into();
        assert_eq!(
            fixture.check(),
            Err((
                line,
                format!("{name}: body: must contain at least 1 non-whitespace character")
            ))
        );
        fixture.first.body = "x".repeat(25_000);
        assert_eq!(fixture.check(), Ok(()));
        fixture.first.sender_name = "Al\0ice".into();
        assert_eq!(
            fixture.check(),
            Err((
                line,
                format!("{name}: sender_name: must not contain NUL characters")
            ))
        );

        let mut fixture = self::fixture();
        fixture.ticket.subject = "é".repeat(256);
        assert_eq!(
            fixture.check(),
            Err((
                fixture.ticket_line(),
                format!(
                    "{}: subject: must be at most 255 characters long (got 256)",
                    fixture.ticket_name()
                )
            ))
        );

        let mut fixture = self::fixture();
        fixture.sam.name = String::new();
        fixture.bea.email = Some("bea.example.com".into());
        let first_user = fixture
            .records()
            .iter()
            .find_map(|record| match record {
                Record::User(user) if user.id == fixture.sam.id || user.id == fixture.bea.id => {
                    Some(user.id)
                }
                _ => None,
            })
            .expect("a user");
        let expected = if first_user == fixture.sam.id {
            format!(
                "user {}: name: must contain at least 1 non-whitespace character",
                fixture.sam.id
            )
        } else {
            format!(
                "user {}: email: must be an email address (with an @, at most 320 bytes, no NUL)",
                fixture.bea.id
            )
        };
        assert_eq!(
            fixture.check(),
            Err((fixture.user_line(first_user), expected))
        );

        let mut fixture = self::fixture();
        fixture.bravo.code = "bravo".into();
        assert_eq!(
            fixture.check(),
            Err((
                3,
                format!(
                    "workspace {}: code: must be 2 to 32 characters of A-Z, 0-9, - and _, \
                     starting with a letter or digit",
                    fixture.bravo.id
                )
            ))
        );
        fixture.bravo.code = "ALPHA".into();
        assert_eq!(
            fixture.check(),
            Err((
                3,
                format!(
                    "workspace {}: code: ALPHA is the code of an earlier workspace",
                    fixture.bravo.id
                )
            ))
        );
        fixture.bravo.code = "BRAVO".into();
        fixture.bravo.plan = "\0".into();
        assert_eq!(
            fixture.check(),
            Err((
                3,
                format!(
                    "workspace {}: plan: must not contain NUL characters",
                    fixture.bravo.id
                )
            ))
        );
    }

    #[test]
    fn a_sealed_body_must_open_and_hold_a_valid_message() {
        let mut fixture = fixture();
        let line = fixture.message_line(2);
        let name = fixture.message_name(&fixture.second);
        let (ticket, message) = (fixture.ticket.id, fixture.second.id);

        let elsewhere = DataKey::generate().expect("a key");
        fixture.second.body = crypto::seal(&elsewhere, ticket, message, "hi")
            .expect("sealed")
            .into_string();
        assert_eq!(
            fixture.check(),
            Err((
                line,
                format!(
                    "{name}: body: sealed with key {}, which the encryption key file lacks: \
                     import with the key file of the database the dump came from",
                    elsewhere.id()
                )
            ))
        );

        // Sealed for the first message, and copied into the second.
        fixture.second.body =
            crypto::seal(fixture.keyring.current(), ticket, fixture.first.id, "hi")
                .expect("sealed")
                .into_string();
        assert_eq!(
            fixture.check(),
            Err((
                line,
                format!(
                    "{name}: body: the sealed body does not open: it was altered, or sealed \
                     for another message"
                )
            ))
        );

        fixture.second.body = format!("{}nonsense", crypto::ENVELOPE_PREFIX);
        assert_eq!(
            fixture.check(),
            Err((line, format!("{name}: body: not a valid sealed body")))
        );

        fixture.second.body = crypto::seal(fixture.keyring.current(), ticket, message, "a\0")
            .expect("sealed")
            .into_string();
        assert_eq!(
            fixture.check(),
            Err((
                line,
                format!("{name}: body, once opened: must not contain NUL characters")
            ))
        );
    }

    #[test]
    fn numbers_must_add_up() {
        let mut fixture = fixture();
        fixture.ticket.number = 2;
        assert_eq!(
            fixture.check(),
            Err((
                fixture.ticket_line(),
                format!(
                    "{}: number: must be from 1 to the workspace's last_ticket_number (1)",
                    fixture.ticket_name()
                )
            ))
        );

        // Too few messages: the ticket's line is at fault.
        let fixture = self::fixture();
        let mut records = fixture.records();
        records.pop();
        assert_eq!(
            check(&records, &fixture.keyring),
            Err((
                fixture.ticket_line(),
                format!(
                    "{}: message_count: 2 but the dump holds 1 messages of it",
                    fixture.ticket_name()
                )
            ))
        );
        // None at all.
        records.pop();
        assert_eq!(
            check(&records, &fixture.keyring),
            Err((
                fixture.ticket_line(),
                format!(
                    "{}: message_count: 2 but the dump holds 0 messages of it",
                    fixture.ticket_name()
                )
            ))
        );

        // Too many, or a gap.
        let mut fixture = self::fixture();
        fixture.ticket.message_count = 1;
        assert_eq!(
            fixture.check(),
            Err((
                fixture.message_line(2),
                format!(
                    "{}: seq: past the ticket's message_count (1, line {})",
                    fixture.message_name(&fixture.second),
                    fixture.ticket_line()
                )
            ))
        );
        let mut fixture = self::fixture();
        fixture.second.seq = 3;
        assert_eq!(
            fixture.check(),
            Err((
                fixture.message_line(3),
                format!(
                    "{}: seq: expected 2: a ticket's messages are numbered 1, 2, 3, ... \
                     without gaps",
                    fixture.message_name(&fixture.second)
                )
            ))
        );

        // A ticket number used twice in one workspace; a workspace id twice.
        let mut fixture = self::fixture();
        fixture.alpha.last_ticket_number = 2;
        let mut records = fixture.records();
        let twin = TicketRecord {
            id: TicketId::from_ulid(ulid::Ulid::from(u128::MAX)),
            message_count: 0,
            ..fixture.ticket.clone()
        };
        let after_ticket = fixture.ticket_line() as usize - 1;
        records.insert(after_ticket, Record::Ticket(twin.clone()));
        assert_eq!(
            check(&records, &fixture.keyring),
            Err((
                after_ticket as u64 + 2,
                format!(
                    "ticket {}: number: an earlier ticket of workspace {} has number 1",
                    twin.id, fixture.alpha.id
                )
            ))
        );
        let mut fixture = self::fixture();
        fixture.bravo.id = fixture.alpha.id;
        assert_eq!(
            fixture.check(),
            Err((
                3,
                format!(
                    "workspace {}: id: an earlier workspace has this id",
                    fixture.alpha.id
                )
            ))
        );
    }
}
