-- Workspaces, users, API keys, tickets and messages.
-- Ids are lowercase ULIDs without their public prefix, compared bytewise
-- (COLLATE "C") so that keyset order matches the SQLite backend; times are
-- timestamptz holding whole milliseconds.

CREATE TABLE workspace (
    numeric_id          BIGINT      NOT NULL,
    id                  TEXT        COLLATE "C" NOT NULL,
    name                TEXT        NOT NULL,
    code                TEXT        COLLATE "C" NOT NULL,
    plan                TEXT        NOT NULL,
    last_ticket_number  BIGINT      NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL,
    CONSTRAINT workspace_pkey PRIMARY KEY (numeric_id),
    CONSTRAINT workspace_id_key UNIQUE (id),
    CONSTRAINT workspace_code_key UNIQUE (code)
);

CREATE TABLE principal (
    id            TEXT        COLLATE "C" NOT NULL,
    workspace_id  TEXT        COLLATE "C" NOT NULL REFERENCES workspace (id),
    role          TEXT        NOT NULL
        CONSTRAINT principal_role_check CHECK (role IN ('customer', 'staff', 'automation')),
    name          TEXT        NOT NULL,
    email         TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT principal_pkey PRIMARY KEY (id)
);
CREATE INDEX principal_workspace_id_idx ON principal (workspace_id);

CREATE TABLE api_key (
    id            TEXT        COLLATE "C" NOT NULL,
    principal_id  TEXT        COLLATE "C" NOT NULL REFERENCES principal (id),
    secret_hash   BYTEA       NOT NULL,
    scopes        TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    CONSTRAINT api_key_pkey PRIMARY KEY (id)
);
CREATE INDEX api_key_principal_id_idx ON api_key (principal_id);

CREATE TABLE ticket (
    id               TEXT        COLLATE "C" NOT NULL,
    workspace_id     TEXT        COLLATE "C" NOT NULL REFERENCES workspace (id),
    number           BIGINT      NOT NULL,
    customer_id      TEXT        COLLATE "C" NOT NULL REFERENCES principal (id),
    subject          TEXT        NOT NULL,
    status           TEXT        NOT NULL
        CONSTRAINT ticket_status_check
        CHECK (status IN ('open', 'in_progress', 'awaiting_response', 'resolved', 'closed')),
    priority         TEXT        NOT NULL
        CONSTRAINT ticket_priority_check CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    last_message_at  TIMESTAMPTZ NOT NULL,
    message_count    BIGINT      NOT NULL,
    resolved_at      TIMESTAMPTZ,
    closed_at        TIMESTAMPTZ,
    CONSTRAINT ticket_pkey PRIMARY KEY (id),
    CONSTRAINT ticket_workspace_id_number_key UNIQUE (workspace_id, number)
);
-- One index per list shape: staff see the workspace, customers their own
-- tickets, each optionally filtered by status; lists walk them backwards
-- for most recent activity first.
CREATE INDEX ticket_workspace_id_updated_at_idx
    ON ticket (workspace_id, updated_at, id);
CREATE INDEX ticket_workspace_id_status_updated_at_idx
    ON ticket (workspace_id, status, updated_at, id);
CREATE INDEX ticket_customer_id_updated_at_idx
    ON ticket (customer_id, updated_at, id);
CREATE INDEX ticket_customer_id_status_updated_at_idx
    ON ticket (customer_id, status, updated_at, id);

-- A page of a thread is one range of the primary key.
CREATE TABLE message (
    ticket_id    TEXT        COLLATE "C" NOT NULL REFERENCES ticket (id),
    seq          BIGINT      NOT NULL,
    id           TEXT        COLLATE "C" NOT NULL,
    sender_id    TEXT        COLLATE "C" NOT NULL REFERENCES principal (id),
    sender_role  TEXT        NOT NULL
        CONSTRAINT message_sender_role_check CHECK (sender_role IN ('customer', 'staff', 'automation')),
    sender_name  TEXT        NOT NULL,
    body         TEXT        NOT NULL,
    body_format  TEXT        NOT NULL
        CONSTRAINT message_body_format_check CHECK (body_format IN ('plain', 'markdown')),
    encrypted    BOOLEAN     NOT NULL,
    sent_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT message_pkey PRIMARY KEY (ticket_id, seq),
    CONSTRAINT message_id_key UNIQUE (id)
);
