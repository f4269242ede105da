-- Integer ids for messages and uploads, beside their ULIDs, for the APIs
-- whose clients know only integers. Each is unique across the database,
-- drawn from a sequence when the row is written (no row is locked for it,
-- so concurrent replies never wait on each other; a rolled-back write
-- leaves a gap), and kept by export and import, which moves the sequence
-- past what it brought. Existing rows are numbered in the order they were
-- written.
CREATE SEQUENCE message_numeric_id_seq AS BIGINT;
ALTER TABLE message ADD COLUMN numeric_id BIGINT;
UPDATE message SET numeric_id = numbered.n
FROM (SELECT ticket_id, seq, row_number() OVER (ORDER BY sent_at, ticket_id, seq) AS n
      FROM message) AS numbered
WHERE message.ticket_id = numbered.ticket_id AND message.seq = numbered.seq;
SELECT setval('message_numeric_id_seq', coalesce((SELECT max(numeric_id) FROM message), 0) + 1, false);
ALTER TABLE message
    ALTER COLUMN numeric_id SET DEFAULT nextval('message_numeric_id_seq'),
    ALTER COLUMN numeric_id SET NOT NULL,
    ADD CONSTRAINT message_numeric_id_key UNIQUE (numeric_id);

CREATE SEQUENCE upload_numeric_id_seq AS BIGINT;
ALTER TABLE upload ADD COLUMN numeric_id BIGINT;
UPDATE upload SET numeric_id = numbered.n
FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM upload) AS numbered
WHERE upload.id = numbered.id;
SELECT setval('upload_numeric_id_seq', coalesce((SELECT max(numeric_id) FROM upload), 0) + 1, false);
ALTER TABLE upload
    ALTER COLUMN numeric_id SET DEFAULT nextval('upload_numeric_id_seq'),
    ALTER COLUMN numeric_id SET NOT NULL,
    ADD CONSTRAINT upload_numeric_id_key UNIQUE (numeric_id);
