-- The content key of an upload stored sealed: its own random key, kept
-- only sealed under a data key of the key file (`tkdupl:v1:<key id>:...`),
-- so that a rotation re-seals a few dozen bytes per upload, never its
-- bytes. NULL for a plain upload, and set for every sealed one.
ALTER TABLE upload ADD COLUMN content_key TEXT;
ALTER TABLE upload ADD CONSTRAINT upload_content_key_check
    CHECK ((content_key IS NOT NULL) = encrypted);

-- As for message bodies (0003): a content key may be sealed only under a
-- registered key that is not retiring, whose row stays share-locked until
-- the write commits, so a key deleted once no upload uses it never gains
-- one afterwards.
CREATE FUNCTION upload_sealed_key_check() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF substr(NEW.content_key, 1, 10) = 'tkdupl:v1:' THEN
        PERFORM 1 FROM encryption_key
        WHERE id = substr(NEW.content_key, 11, 26) AND NOT retiring
        FOR KEY SHARE;
    END IF;
    IF substr(NEW.content_key, 1, 10) <> 'tkdupl:v1:' OR NOT FOUND THEN
        RAISE EXCEPTION 'upload content key sealed under an unknown or retiring key'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'upload_sealed_key_check';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER upload_sealed_key_check
    BEFORE INSERT OR UPDATE OF content_key ON upload
    FOR EACH ROW
    WHEN (NEW.content_key IS NOT NULL)
    EXECUTE FUNCTION upload_sealed_key_check();
