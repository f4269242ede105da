-- What a ticket is about, as the API it was opened through classifies it
-- (`billing`, `technical_bug`, ...); NULL when its opener gave none.
ALTER TABLE ticket ADD COLUMN category TEXT;
