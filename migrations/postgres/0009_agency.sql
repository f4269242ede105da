-- What the agency profile needs of the core: a workspace's agency
-- signature generation (NULL until one is minted; a new one revokes every
-- signature of the old), an opaque integer a ticket refers to (Daakey's
-- booking), and per-user read markers on tickets.
ALTER TABLE workspace ADD COLUMN agency_signature_kid TEXT;
ALTER TABLE ticket ADD COLUMN booking_id BIGINT;

-- How far into a ticket's thread a user has read: messages with a larger
-- `seq` are unread to them. Viewing a ticket and writing in it move it.
CREATE TABLE ticket_read (
    ticket_id      TEXT   COLLATE "C" NOT NULL REFERENCES ticket (id),
    user_id        TEXT   COLLATE "C" NOT NULL REFERENCES principal (id),
    last_read_seq  BIGINT NOT NULL CONSTRAINT ticket_read_seq_check CHECK (last_read_seq >= 0),
    CONSTRAINT ticket_read_pkey PRIMARY KEY (ticket_id, user_id)
);
-- Until now each user had read a thread up to their own latest message.
INSERT INTO ticket_read (ticket_id, user_id, last_read_seq)
SELECT ticket_id, sender_id, max(seq) FROM message GROUP BY ticket_id, sender_id;
