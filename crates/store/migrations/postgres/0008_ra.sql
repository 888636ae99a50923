-- The registration authority (crates/ra). Personal data is sealed
-- (AES-256-GCM under a data key from key custody) in `*_sealed` columns;
-- identity-card numbers are also kept as a keyed hash (`id_hash`) so that
-- they can be looked up without being readable.

-- The population registry as imported by the operator (the built-in
-- registry; a real one is reached over HTTP instead).
CREATE TABLE ra_residents (
    id_hash BYTEA PRIMARY KEY,
    sealed BYTEA NOT NULL,
    key_version BIGINT NOT NULL,
    imported_at BIGINT NOT NULL
);

CREATE TABLE ra_applications (
    reference TEXT PRIMARY KEY,
    channel TEXT NOT NULL CHECK (channel IN ('online', 'counter', 'partner', 'kiosk', 'campaign')),
    centre TEXT,
    profile TEXT NOT NULL,
    id_hash BYTEA NOT NULL,
    sealed BYTEA NOT NULL,
    key_version BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('awaiting-registry', 'awaiting-approval', 'approved', 'activating', 'activated', 'rejected')),
    registry TEXT NOT NULL CHECK (registry IN ('pending', 'confirmed', 'mismatch', 'unknown')),
    entered_by TEXT NOT NULL,
    approved_by TEXT,
    pin_mac BYTEA,
    pin_failures BIGINT NOT NULL DEFAULT 0,
    mailers BIGINT NOT NULL DEFAULT 0,
    issuer TEXT,
    serial TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX ra_applications_queue ON ra_applications (status, created_at);
CREATE INDEX ra_applications_person ON ra_applications (id_hash);

CREATE TABLE ra_staff (
    username TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('officer', 'supervisor', 'administrator', 'auditor')),
    centre TEXT,
    password BYTEA NOT NULL,
    totp_sealed BYTEA NOT NULL,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE ra_sessions (
    token_hash BYTEA PRIMARY KEY,
    username TEXT NOT NULL REFERENCES ra_staff(username),
    csrf TEXT NOT NULL,
    agent_hash BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
