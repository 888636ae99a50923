-- CRLs owed after revocations, kept with the revocation (written in its
-- transaction): a process that revoked and then failed or stopped before
-- publishing (a CLI command, a crash) leaves the debt here, and a running
-- server pays it. One row per issuer and CRL (a partition, or the full CRL
-- as shard -1), kept for good: `version` rises with each revocation, and a
-- generator that read version v and published marks `paid` up to v, so a
-- revocation after its read stays owed (versions never start again, so a
-- slow generator cannot take a newer debt for the one it read).
CREATE TABLE crls_due (
    issuer TEXT NOT NULL REFERENCES issuers(id),
    shard BIGINT NOT NULL,
    version BIGINT NOT NULL,
    paid BIGINT NOT NULL DEFAULT 0,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, shard)
);
