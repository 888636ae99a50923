-- Staff accounts under dual control: an administrator proposes an
-- account and another administrator approves it; only then can it sign
-- in. Accounts that existed before were made by the operator and are
-- active.
ALTER TABLE ra_staff ADD COLUMN state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('proposed', 'active', 'disabled'));
ALTER TABLE ra_staff ADD COLUMN proposed_by TEXT;
ALTER TABLE ra_staff ADD COLUMN approved_by TEXT;
