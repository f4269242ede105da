-- Files users upload to attach to their messages. The bytes live in the
-- blob store under the upload's id; the row is written first, as pending,
-- and marked stored once the bytes are durable, so a crash midway leaves a
-- pending row for the sweep to delete with any bytes under its id, and no
-- stored bytes are ever referenced by nothing.
--
-- An upload is attached by setting message_id and position, in the
-- transaction that writes the message; from then on the sweep, which only
-- takes rows without a message, leaves it alone. The sweep first marks a
-- row deleting (nothing attaches it from then on), then deletes its bytes,
-- then the row, so a crash between the steps leaves a row the next sweep
-- finishes.
CREATE TABLE upload (
    id            TEXT    PRIMARY KEY,
    workspace_id  TEXT    NOT NULL REFERENCES workspace (id),
    owner_id      TEXT    NOT NULL REFERENCES principal (id),
    filename      TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    -- The size and the sha256 (lowercase hex) of the bytes, once stored.
    size          INTEGER NOT NULL,
    sha256        TEXT    NOT NULL,
    encrypted     INTEGER NOT NULL
        CONSTRAINT upload_encrypted_check CHECK (encrypted IN (0, 1)),
    state         TEXT    NOT NULL
        CONSTRAINT upload_state_check CHECK (state IN ('pending', 'stored', 'deleting')),
    created_at    INTEGER NOT NULL,
    -- When an unattached upload is swept.
    expires_at    INTEGER NOT NULL,
    message_id    TEXT    REFERENCES message (id),
    position      INTEGER,
    CONSTRAINT upload_attached_check CHECK ((message_id IS NULL) = (position IS NULL)),
    CONSTRAINT upload_message_id_position_key UNIQUE (message_id, position)
);
-- The sweep's walk: unattached uploads by expiry.
CREATE INDEX upload_unattached_expires_at_idx ON upload (expires_at) WHERE message_id IS NULL;

-- How many files a ticket's messages carry and what they hold together,
-- kept by the writes that attach: the per-ticket limit is checked without
-- summing them, and a thread without files is read without looking.
ALTER TABLE ticket ADD COLUMN attachment_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ticket ADD COLUMN attachment_bytes INTEGER NOT NULL DEFAULT 0;

-- Pre-signed upload URLs used so far, by nonce, so each works once; kept
-- until the URL would have expired anyway.
CREATE TABLE upload_url_use (
    nonce       TEXT    PRIMARY KEY,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX upload_url_use_expires_at_idx ON upload_url_use (expires_at);
