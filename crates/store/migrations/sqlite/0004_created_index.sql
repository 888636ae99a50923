-- Certificates are listed newest first in pages keyed by (created_at,
-- serial): with the serial in the index a page is a range scan, not a
-- sort of every certificate issued in the same second (or of all of them).
DROP INDEX certificates_created;
CREATE INDEX certificates_created ON certificates (created_at, serial);
