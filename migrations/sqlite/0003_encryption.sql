-- Encryption at rest: the data keys sealed message bodies may use.
--
-- The keys themselves live in the key file, never here; each row holds a
-- key's id and a check value (a constant sealed under the key), so that a
-- key file that does not belong to this database is refused at startup.
-- A retiring key is being replaced by `ticketd encryption rotate`: what it
-- sealed can still be read, but nothing new may be sealed with it.

CREATE TABLE encryption_key (
    id           TEXT    PRIMARY KEY,
    check_value  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    retiring     INTEGER NOT NULL DEFAULT 0
        CONSTRAINT encryption_key_retiring_check CHECK (retiring IN (0, 1))
);

-- A sealed body (`tkdenc:v1:<26-character key id>:...`) may be written only
-- under a registered key that is not retiring. The writer holds the lock,
-- so a key deleted once no message uses it can never gain one afterwards.
CREATE TRIGGER message_sealed_key_insert BEFORE INSERT ON message
WHEN NEW.encrypted = 1 AND substr(NEW.body, 1, 10) = 'tkdenc:v1:'
BEGIN
    SELECT RAISE(ABORT, 'message_sealed_key_check')
    WHERE NOT EXISTS (
        SELECT 1 FROM encryption_key
        WHERE id = substr(NEW.body, 11, 26) AND retiring = 0
    );
END;

CREATE TRIGGER message_sealed_key_update BEFORE UPDATE OF body ON message
WHEN NEW.encrypted = 1 AND substr(NEW.body, 1, 10) = 'tkdenc:v1:'
BEGIN
    SELECT RAISE(ABORT, 'message_sealed_key_check')
    WHERE NOT EXISTS (
        SELECT 1 FROM encryption_key
        WHERE id = substr(NEW.body, 11, 26) AND retiring = 0
    );
END;
