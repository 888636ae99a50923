-- The audit log keyed by its entry number as SQLite's row id: one b-tree
-- instead of a table and a separate primary-key index, so that every
-- appended entry writes one page fewer (each issuance appends one).
-- Entry numbers, hashes and the chain are copied unchanged.
CREATE TABLE audit_log_by_rowid (
    seq INTEGER PRIMARY KEY,
    ts BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_log_by_rowid (seq, ts, actor, action, details, prev_hash, hash)
    SELECT seq, ts, actor, action, details, prev_hash, hash FROM audit_log ORDER BY seq;
DROP TABLE audit_log;
ALTER TABLE audit_log_by_rowid RENAME TO audit_log;
