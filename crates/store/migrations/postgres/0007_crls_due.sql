-- CRLs owed after revocations, kept with the revocation (written in its
-- transaction): a process that revoked and then failed or stopped before
-- publishing (a CLI command, a crash) leaves the debt here, and a running
-- server pays it. One row per issuer and CRL partition; `version` rises
-- with each revocation, so that a generator that read version v removes
-- the row only if no revocation came after its read.
CREATE TABLE crls_due (
    issuer TEXT NOT NULL REFERENCES issuers(id),
    shard BIGINT NOT NULL,
    version BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, shard)
);
