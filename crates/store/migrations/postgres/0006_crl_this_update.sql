-- The latest thisUpdate given to a CRL of the issuer, taken with its CRL
-- number in one statement: a CRL numbered after another never says it
-- was issued before it, also when two processes (a CLI command and the
-- server, or several servers on PostgreSQL) with clocks apart make them.
ALTER TABLE crl_numbers ADD COLUMN this_update BIGINT NOT NULL DEFAULT 0;
