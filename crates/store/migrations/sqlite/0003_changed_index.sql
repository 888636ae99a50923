-- Revocations are followed by time of change in pages keyed by
-- (changed_at, issuer, serial): the index holds the whole key.
DROP INDEX certificates_changed;
CREATE INDEX certificates_changed ON certificates (changed_at, issuer, serial) WHERE revoked_at IS NOT NULL;
