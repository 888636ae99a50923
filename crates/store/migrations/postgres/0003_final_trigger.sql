-- The revocation-is-final trigger ran its function on every update of a
-- certificate, including the finalisation of each one issued. It now runs
-- only where it can refuse something: updates of revoked_at or reason of a
-- certificate already revoked (as the SQLite trigger always did).
DROP TRIGGER certificates_revocation_is_final ON certificates;
CREATE TRIGGER certificates_revocation_is_final BEFORE UPDATE OF revoked_at, reason ON certificates
    FOR EACH ROW WHEN (OLD.revoked_at IS NOT NULL)
    EXECUTE FUNCTION certificates_revocation_is_final();
