-- Workspaces, users, API keys, tickets and messages.
-- Ids are lowercase ULIDs without their public prefix; times are integer
-- milliseconds since the Unix epoch (UTC).

CREATE TABLE workspace (
    numeric_id          INTEGER PRIMARY KEY,
    id                  TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    code                TEXT    NOT NULL,
    plan                TEXT    NOT NULL,
    last_ticket_number  INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    CONSTRAINT workspace_id_key UNIQUE (id),
    CONSTRAINT workspace_code_key UNIQUE (code)
);

CREATE TABLE principal (
    id            TEXT    PRIMARY KEY,
    workspace_id  TEXT    NOT NULL REFERENCES workspace (id),
    role          TEXT    NOT NULL
        CONSTRAINT principal_role_check CHECK (role IN ('customer', 'staff', 'automation')),
    name          TEXT    NOT NULL,
    email         TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX principal_workspace_id_idx ON principal (workspace_id);

CREATE TABLE api_key (
    id            TEXT    PRIMARY KEY,
    principal_id  TEXT    NOT NULL REFERENCES principal (id),
    secret_hash   BLOB    NOT NULL,
    scopes        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX api_key_principal_id_idx ON api_key (principal_id);

CREATE TABLE ticket (
    id               TEXT    PRIMARY KEY,
    workspace_id     TEXT    NOT NULL REFERENCES workspace (id),
    number           INTEGER NOT NULL,
    customer_id      TEXT    NOT NULL REFERENCES principal (id),
    subject          TEXT    NOT NULL,
    status           TEXT    NOT NULL
        CONSTRAINT ticket_status_check
        CHECK (status IN ('open', 'in_progress', 'awaiting_response', 'resolved', 'closed')),
    priority         TEXT    NOT NULL
        CONSTRAINT ticket_priority_check CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_message_at  INTEGER NOT NULL,
    message_count    INTEGER NOT NULL,
    resolved_at      INTEGER,
    closed_at        INTEGER,
    CONSTRAINT ticket_workspace_id_number_key UNIQUE (workspace_id, number)
);
-- One index per list shape: staff see the workspace, customers their own
-- tickets, each optionally filtered by status; all in keyset order.
CREATE INDEX ticket_workspace_id_updated_at_idx
    ON ticket (workspace_id, updated_at DESC, id DESC);
CREATE INDEX ticket_workspace_id_status_updated_at_idx
    ON ticket (workspace_id, status, updated_at DESC, id DESC);
CREATE INDEX ticket_customer_id_updated_at_idx
    ON ticket (customer_id, updated_at DESC, id DESC);
CREATE INDEX ticket_customer_id_status_updated_at_idx
    ON ticket (customer_id, status, updated_at DESC, id DESC);

-- Clustered by thread position: a page of a thread is one contiguous range,
-- and a reply appends at the end of its ticket's range.
CREATE TABLE message (
    ticket_id    TEXT    NOT NULL REFERENCES ticket (id),
    seq          INTEGER NOT NULL,
    id           TEXT    NOT NULL,
    sender_id    TEXT    NOT NULL REFERENCES principal (id),
    sender_role  TEXT    NOT NULL
        CONSTRAINT message_sender_role_check CHECK (sender_role IN ('customer', 'staff', 'automation')),
    sender_name  TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    body_format  TEXT    NOT NULL
        CONSTRAINT message_body_format_check CHECK (body_format IN ('plain', 'markdown')),
    encrypted    INTEGER NOT NULL
        CONSTRAINT message_encrypted_check CHECK (encrypted IN (0, 1)),
    sent_at      INTEGER NOT NULL,
    CONSTRAINT message_pkey PRIMARY KEY (ticket_id, seq),
    CONSTRAINT message_id_key UNIQUE (id)
) WITHOUT ROWID;
