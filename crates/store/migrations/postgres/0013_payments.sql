-- Fees: payments through a provider (checkout, then webhooks saying what
-- happened, which may arrive twice or late). A payment moves only
-- forward (created -> captured | declined; captured -> refunded); receipt
-- numbers are given at capture, once.
CREATE TABLE ra_payments (
    id TEXT PRIMARY KEY,
    reference TEXT NOT NULL REFERENCES ra_applications(reference),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    status TEXT NOT NULL CHECK (status IN ('created', 'captured', 'declined', 'refunded')),
    receipt_no BIGINT UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX ra_payments_reference ON ra_payments (reference);
