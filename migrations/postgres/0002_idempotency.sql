-- Idempotency keys: one record per (API key, idempotency key). A request
-- claims the key (state in_progress, owner = its claim token, a lease), and
-- the write it protects completes the record with its response in the same
-- transaction (state completed).

CREATE TABLE idempotency_record (
    api_key_id         TEXT        COLLATE "C" NOT NULL REFERENCES api_key (id),
    key                TEXT        COLLATE "C" NOT NULL,
    -- SHA-256 of the request's method, path and canonical body.
    fingerprint        BYTEA       NOT NULL,
    state              TEXT        NOT NULL,
    owner              TEXT,
    lease_expires_at   TIMESTAMPTZ,
    response_status    INTEGER,
    response_location  TEXT,
    response_body      BYTEA,
    created_at         TIMESTAMPTZ NOT NULL,
    expires_at         TIMESTAMPTZ NOT NULL,
    CONSTRAINT idempotency_record_pkey PRIMARY KEY (api_key_id, key),
    CONSTRAINT idempotency_record_state_check CHECK (
        (state = 'in_progress' AND owner IS NOT NULL AND lease_expires_at IS NOT NULL
            AND response_status IS NULL AND response_body IS NULL)
        OR (state = 'completed' AND owner IS NULL AND lease_expires_at IS NULL
            AND response_status IS NOT NULL AND response_body IS NOT NULL)
    )
);
-- The sweep deletes expired records oldest first.
CREATE INDEX idempotency_record_expires_at_idx ON idempotency_record (expires_at);
