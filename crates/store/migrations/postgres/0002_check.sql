-- Fails the statement it is used in, with a message, unless `ok`: lets one
-- statement of data-modifying CTEs undo itself when it did not do all it
-- had to (see writer/sqlx_batch.rs).
CREATE OR REPLACE FUNCTION hallmark_check(ok boolean, msg text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION '%', msg;
    END IF;
    RETURN true;
END
$$;
