-- Which running server holds each claim in progress: its node (the stable
-- `node_id` setting) and the process (a new id at every start). A server
-- starting releases the claims its earlier processes left (on SQLite, which
-- one server serves, every claim in progress), so a retry after a crash is
-- answered at once instead of waiting for the lease. Completed records, and
-- claims taken before this migration, hold none.
ALTER TABLE idempotency_record ADD COLUMN holder_node TEXT;
ALTER TABLE idempotency_record ADD COLUMN holder_instance TEXT;
