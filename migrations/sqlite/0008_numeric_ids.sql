-- Integer ids for messages and uploads, beside their ULIDs, for the APIs
-- whose clients know only integers. Each is unique across the database,
-- given by the store when the row is written (the largest so far plus one:
-- the single writer makes that safe), and kept by export and import.
-- Existing rows are numbered in the order they were written.
ALTER TABLE message ADD COLUMN numeric_id INTEGER;
UPDATE message SET numeric_id = numbered.n
FROM (SELECT ticket_id, seq, row_number() OVER (ORDER BY sent_at, ticket_id, seq) AS n
      FROM message) AS numbered
WHERE message.ticket_id = numbered.ticket_id AND message.seq = numbered.seq;
CREATE UNIQUE INDEX message_numeric_id_key ON message (numeric_id);

ALTER TABLE upload ADD COLUMN numeric_id INTEGER;
UPDATE upload SET numeric_id = numbered.n
FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM upload) AS numbered
WHERE upload.id = numbered.id;
CREATE UNIQUE INDEX upload_numeric_id_key ON upload (numeric_id);
