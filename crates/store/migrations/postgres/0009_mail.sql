-- Mail that the registration authority sends (e-mail address
-- confirmations, reminders) and letters it prints, kept in an outbox that
-- is written in the same transaction as what caused it. Delivery claims a
-- row with a lease; `dedup_key` makes each notice unique, and is also the
-- message's Message-ID, so a resend after a crash is recognisably the
-- same message. Recipient and body are sealed like all personal data and
-- dropped once delivered.
CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key TEXT NOT NULL UNIQUE,
    medium TEXT NOT NULL CHECK (medium IN ('email', 'letter')),
    sealed BYTEA,
    key_version BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    claim TEXT,
    not_before BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX outbox_due ON outbox (status, not_before);

-- Proof of an e-mail address (S/MIME Baseline Requirements 3.2.2.2): the
-- MAC of the random value sent to it, when it stops working, how many
-- were sent, and when the address was confirmed.
ALTER TABLE ra_applications ADD COLUMN email_mac BYTEA;
ALTER TABLE ra_applications ADD COLUMN email_expires BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ra_applications ADD COLUMN email_sends BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ra_applications ADD COLUMN email_confirmed_at BIGINT;
CREATE INDEX ra_applications_certificate ON ra_applications (issuer, serial);
