-- What the agency profile needs of the core: a workspace's agency
-- signature generation (NULL until one is minted; a new one revokes every
-- signature of the old), an opaque integer a ticket refers to (Daakey's
-- booking), and per-user read markers on tickets.
ALTER TABLE workspace ADD COLUMN agency_signature_kid TEXT;
ALTER TABLE ticket ADD COLUMN booking_id INTEGER;

-- How far into a ticket's thread a user has read: messages with a larger
-- `seq` are unread to them. Viewing a ticket and writing in it move it.
CREATE TABLE ticket_read (
    ticket_id      TEXT    NOT NULL REFERENCES ticket (id),
    user_id        TEXT    NOT NULL REFERENCES principal (id),
    last_read_seq  INTEGER NOT NULL CHECK (last_read_seq >= 0),
    PRIMARY KEY (ticket_id, user_id)
) WITHOUT ROWID;
-- Until now each user had read a thread up to their own latest message.
INSERT INTO ticket_read (ticket_id, user_id, last_read_seq)
SELECT ticket_id, sender_id, max(seq) FROM message GROUP BY ticket_id, sender_id;
