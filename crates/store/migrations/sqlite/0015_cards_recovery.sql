-- Smart cards: which card holds which certificate. A card is known by its
-- PKCS#11 token serial number; the key is 'on-card' when the card made it,
-- 'imported' when it was made before the holder came (a campaign's).
CREATE TABLE ra_cards (
    issuer TEXT NOT NULL,
    serial TEXT NOT NULL,
    reference TEXT NOT NULL,
    card_serial TEXT NOT NULL,
    card_label TEXT NOT NULL,
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    key_origin TEXT NOT NULL CHECK (key_origin IN ('on-card', 'imported')),
    personalised_by TEXT NOT NULL,
    personalised_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, serial)
);
CREATE INDEX ra_cards_card ON ra_cards (card_serial);
CREATE INDEX ra_cards_reference ON ra_cards (reference);
-- Key recovery: an escrowed encipherment key delivered again to its
-- holder. An officer requests (the holder in front of them), a supervisor
-- who is not that officer approves, and the holder collects a new
-- PKCS#12 under a new one-time PIN, kept only as a MAC.
CREATE TABLE ra_recoveries (
    id TEXT PRIMARY KEY,
    reference TEXT NOT NULL,
    issuer TEXT NOT NULL,
    serial TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('requested', 'approved', 'collected', 'cancelled')),
    requested_by TEXT NOT NULL,
    -- The requester's office: a supervisor of that office approves.
    centre TEXT,
    requested_at BIGINT NOT NULL,
    approved_by TEXT,
    approved_at BIGINT,
    pin_mac BLOB,
    pin_failures BIGINT NOT NULL DEFAULT 0,
    collected_at BIGINT
);
CREATE INDEX ra_recoveries_reference ON ra_recoveries (reference);
