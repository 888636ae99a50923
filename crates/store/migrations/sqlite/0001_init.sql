CREATE TABLE issuers (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    cert BLOB NOT NULL,
    parent TEXT,
    key_label TEXT NOT NULL,
    is_root INTEGER NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE certificates (
    issuer TEXT NOT NULL REFERENCES issuers(id),
    serial TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'issued', 'abandoned')),
    profile TEXT NOT NULL,
    subject TEXT NOT NULL,
    -- The linted TBS, kept until the signed certificate is stored.
    tbs BLOB,
    cert BLOB,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    reason INTEGER,
    changed_at BIGINT NOT NULL,
    escrow BLOB,
    PRIMARY KEY (issuer, serial)
);
CREATE INDEX certificates_revoked ON certificates (issuer, shard) WHERE revoked_at IS NOT NULL;
-- Revocations by time of change, for responders polling for news.
CREATE INDEX certificates_changed ON certificates (changed_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX certificates_created ON certificates (created_at);
-- A revocation is final: it can be neither undone nor altered.
CREATE TRIGGER certificates_revocation_is_final BEFORE UPDATE OF revoked_at, reason ON certificates
    WHEN OLD.revoked_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a revoked certificate cannot be un-revoked or re-revoked');
END;
CREATE TABLE crl_numbers (issuer TEXT PRIMARY KEY REFERENCES issuers(id), next BIGINT NOT NULL);
CREATE TABLE crls (
    issuer TEXT NOT NULL REFERENCES issuers(id),
    shard BIGINT NOT NULL,
    number BIGINT NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    der BLOB NOT NULL,
    PRIMARY KEY (issuer, shard)
);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    ts BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    ts BIGINT NOT NULL,
    hash BLOB NOT NULL,
    signature BLOB NOT NULL,
    spki BLOB NOT NULL
);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
