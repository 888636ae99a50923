-- Certificates are listed newest first in pages keyed by (created_at,
-- serial): with the serial in the index a page is a range scan, not a
-- sort of every certificate issued in the same second (or of all of them).
-- The new index is built before the old one is dropped, so that the
-- table is locked against readers only for the drop.
CREATE INDEX certificates_created_serial ON certificates (created_at, serial);
DROP INDEX certificates_created;
