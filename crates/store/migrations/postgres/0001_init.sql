CREATE TABLE issuers (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    cert BYTEA NOT NULL,
    parent TEXT,
    key_label TEXT NOT NULL,
    is_root BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE certificates (
    issuer TEXT NOT NULL REFERENCES issuers(id),
    serial TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'issued', 'abandoned')),
    profile TEXT NOT NULL,
    subject TEXT NOT NULL,
    -- The linted TBS, kept until the signed certificate is stored.
    tbs BYTEA,
    cert BYTEA,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    reason BIGINT,
    changed_at BIGINT NOT NULL,
    escrow BYTEA,
    PRIMARY KEY (issuer, serial)
);
CREATE INDEX certificates_revoked ON certificates (issuer, shard) WHERE revoked_at IS NOT NULL;
-- Revocations by time of change, for responders polling for news.
CREATE INDEX certificates_changed ON certificates (changed_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX certificates_created ON certificates (created_at);
-- A revocation is final: it can be neither undone nor altered.
CREATE FUNCTION certificates_revocation_is_final() RETURNS trigger AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL AND (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at OR NEW.reason IS DISTINCT FROM OLD.reason) THEN
        RAISE EXCEPTION 'a revoked certificate cannot be un-revoked or re-revoked';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER certificates_revocation_is_final BEFORE UPDATE ON certificates
    FOR EACH ROW EXECUTE FUNCTION certificates_revocation_is_final();
CREATE TABLE crl_numbers (issuer TEXT PRIMARY KEY REFERENCES issuers(id), next BIGINT NOT NULL);
CREATE TABLE crls (
    issuer TEXT NOT NULL REFERENCES issuers(id),
    shard BIGINT NOT NULL,
    number BIGINT NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    der BYTEA NOT NULL,
    PRIMARY KEY (issuer, shard)
);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    ts BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL
);
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    ts BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    spki BYTEA NOT NULL
);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
