-- The content key of an upload stored sealed: its own random key, kept
-- only sealed under a data key of the key file (`tkdupl:v1:<key id>:...`),
-- so that a rotation re-seals a few dozen bytes per upload, never its
-- bytes. NULL for a plain upload, and set for every sealed one.
ALTER TABLE upload ADD COLUMN content_key TEXT
    CONSTRAINT upload_content_key_check CHECK ((content_key IS NOT NULL) = (encrypted = 1));

-- As for message bodies (0003): a content key may be sealed only under a
-- registered key that is not retiring.
CREATE TRIGGER upload_sealed_key_insert BEFORE INSERT ON upload
WHEN NEW.content_key IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'upload_sealed_key_check')
    WHERE substr(NEW.content_key, 1, 10) <> 'tkdupl:v1:' OR NOT EXISTS (
        SELECT 1 FROM encryption_key
        WHERE id = substr(NEW.content_key, 11, 26) AND retiring = 0
    );
END;

CREATE TRIGGER upload_sealed_key_update BEFORE UPDATE OF content_key ON upload
WHEN NEW.content_key IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'upload_sealed_key_check')
    WHERE substr(NEW.content_key, 1, 10) <> 'tkdupl:v1:' OR NOT EXISTS (
        SELECT 1 FROM encryption_key
        WHERE id = substr(NEW.content_key, 11, 26) AND retiring = 0
    );
END;
