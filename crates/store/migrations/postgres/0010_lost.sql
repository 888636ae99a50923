-- Lost reports: the MAC of the revocation code printed on the PIN mailer
-- (with which the holder reports a loss online), the officer who entered
-- a paper report awaiting a supervisor, and when the loss was reported
-- (the certificate was revoked in the same transaction).
ALTER TABLE ra_applications ADD COLUMN revoke_mac BYTEA;
ALTER TABLE ra_applications ADD COLUMN lost_requested_by TEXT;
ALTER TABLE ra_applications ADD COLUMN lost_at BIGINT;
