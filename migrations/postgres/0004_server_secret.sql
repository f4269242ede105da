-- The server secret: 32 random bytes in the key file, shared by every node
-- and kept by rotations, from which keys for single purposes are derived
-- (the first: idempotency fingerprints). As with the data keys, only a
-- check value is kept here, never the secret, so that a node whose key
-- file holds another secret refuses to start.

CREATE TABLE server_secret (
    id           SMALLINT    NOT NULL,
    check_value  TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT server_secret_pkey PRIMARY KEY (id),
    -- One row: there is one server secret.
    CONSTRAINT server_secret_id_check CHECK (id = 1)
);

-- Idempotency fingerprints are now HMAC-SHA256 under a key derived from the
-- server secret. Those stored so far are plain SHA-256 digests of method,
-- path and body, which let anyone with the database test guesses at a
-- request's body (an encrypted reply's too). They are erased: 32 zero
-- bytes, a fingerprint no request has. The records stay until they expire,
-- so a retry of such a request is refused (422) instead of written again.
UPDATE idempotency_record SET fingerprint = decode(repeat('00', 32), 'hex');
