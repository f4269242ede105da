-- Encryption at rest: the data keys sealed message bodies may use.
--
-- The keys themselves live in the key file, never here; each row holds a
-- key's id and a check value (a constant sealed under the key), so that a
-- key file that does not belong to this database is refused at startup.
-- A retiring key is being replaced by `ticketd encryption rotate`: what it
-- sealed can still be read, but nothing new may be sealed with it.

CREATE TABLE encryption_key (
    id           TEXT        COLLATE "C" PRIMARY KEY,
    check_value  TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    retiring     BOOLEAN     NOT NULL DEFAULT false
);

-- A sealed body (`tkdenc:v1:<26-character key id>:...`) may be written only
-- under a registered key that is not retiring. The key's row is share-locked
-- (as a foreign key's parent is) until the write commits, so deleting a key
-- waits for writes under it, and a key deleted once no message uses it can
-- never gain one afterwards.
CREATE FUNCTION message_sealed_key_check() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM encryption_key
    WHERE id = substr(NEW.body, 11, 26) AND NOT retiring
    FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message sealed under an unknown or retiring key'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'message_sealed_key_check';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER message_sealed_key_check
    BEFORE INSERT OR UPDATE OF body ON message
    FOR EACH ROW
    WHEN (NEW.encrypted AND substr(NEW.body, 1, 10) = 'tkdenc:v1:')
    EXECUTE FUNCTION message_sealed_key_check();
