-- Bulk campaigns (e.g. ID card replacement centres): applications imported
-- in batches, checked and approved by batch, issued with centrally
-- generated keys before the holder comes. A batch is usable only once its
-- import completed ('imported'); an interrupted import stays 'importing'
-- and can be discarded.
CREATE TABLE ra_batches (
    id TEXT PRIMARY KEY,
    centre TEXT,
    state TEXT NOT NULL CHECK (state IN ('importing', 'imported')),
    entered_by TEXT NOT NULL,
    rows_imported BIGINT NOT NULL DEFAULT 0,
    approved_by TEXT,
    approved_at BIGINT,
    created_at BIGINT NOT NULL
);
ALTER TABLE ra_applications ADD COLUMN batch TEXT;
-- The application's line in its batch's file: batch steps page in this
-- order, which is also the order the rows were written in (so a page's
-- rows sit together on disk).
ALTER TABLE ra_applications ADD COLUMN batch_row BIGINT;
-- A centrally generated key waiting for its holder (sealed like personal
-- data, bound to the application); cleared when collected.
ALTER TABLE ra_applications ADD COLUMN key_sealed BLOB;
CREATE INDEX ra_applications_batch ON ra_applications (batch, batch_row) WHERE batch IS NOT NULL;
-- The approval queue pages by (created_at, reference): a batch's rows share
-- one created_at, so the index orders by reference too (a million rows
-- with one time stamp are otherwise sorted for every page).
DROP INDEX ra_applications_queue;
CREATE INDEX ra_applications_queue ON ra_applications (status, created_at, reference);
