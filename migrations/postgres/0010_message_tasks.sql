-- The client's task a message belongs to (AppHandoff's `task_id`): an
-- opaque 128-bit id, kept as the lowercase ULID of its bits, NULL when the
-- sender gave none. Lists of a thread filter by it through the index.
ALTER TABLE message ADD COLUMN task_id TEXT;
CREATE INDEX message_task_id_idx ON message (ticket_id, task_id, seq) WHERE task_id IS NOT NULL;
