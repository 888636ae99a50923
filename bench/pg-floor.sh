#!/usr/bin/env bash
# What PostgreSQL alone costs to store certificates durably with their audit
# entries, on Hallmark's own schema, driven by pgbench (a C client: no
# Hallmark, no HTTP, no signatures in the loop). It bounds what any issuance
# path on this machine can reach when PostgreSQL shares its cores
# (see docs/benchmarks-history.md, "PostgreSQL's own floor").
#
# Cases, each with CLIENTS connections (8, as the issuance benchmark):
#   one      one certificate per transaction: the finished row and its audit
#            entry, one commit (no reservation before signing);
#   batch    BATCH certificates per transaction (what a group commit of that
#            many requests writes), one commit;
#   reserve  Hallmark's order: the pending row with its TBS in one commit,
#            then the signed certificate and its audit entry in another.
# Prints "case certs/s pg_cpu_ms/cert" lines, medians of REPS runs (each run
# with RAW=1, as bench/run.sh takes them).
# Env: PG_URL (server URL without database), REPS (3), DUR (8), CLIENTS (8), RAW,
# BATCH (4), CASES ("one batch reserve"), CONFIGS (several "clients:batch:case"
# in one run, on one database).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HM=${HM:-${CARGO_TARGET_DIR:-$ROOT/target}/release/hallmark}
PG_URL=${PG_URL:-postgres://$(id -un)@127.0.0.1:5432}
REPS=${REPS:-3} DUR=${DUR:-8} CLIENTS=${CLIENTS:-8} BATCH=${BATCH:-4}
DB=hallmark_floor
W=$(mktemp -d /tmp/hallmark-floor.XXXXXX)
trap 'rm -rf "$W"' EXIT
psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
# Hallmark's schema (migrations, issuers) from a real installation.
HALLMARK_PASSPHRASE="floor passphrase" HALLMARK_DANGER_INSECURE_KDF=1 HALLMARK_DATA_DIR=$W/d \
  "$HM" init --database-url "$PG_URL/$DB" >/dev/null 2>&1
ISSUER=$(psql -At "$PG_URL/$DB" -c "SELECT id FROM issuers WHERE is_root = 0 LIMIT 1")
psql -q "$PG_URL/$DB" -c "CREATE SEQUENCE floor_seq START 1000000" >/dev/null

# Sizes as in the issuance benchmark: TBS ~460 bytes, certificate ~540,
# audit details ~200 characters; serials 40 or more random hex digits.
# bytes(n): n random-looking bytes (n a multiple of 16).
bytes() { echo "decode(repeat(md5(random()::text), $(($1 / 16))), 'hex')"; }
SERIAL="md5(random()::text) || to_hex(:s)"
ROW="'$ISSUER', $SERIAL"
AUDIT="nextval('floor_seq'), 1, 'api:admin', 'certificate.issue', '{\"issuer\":\"$ISSUER\",\"serial\":\"00\",\"profile\":\"server\",\"escrowed\":false,\"sha256\":\"' || repeat('ab', 32) || '\"}', $(bytes 32), $(bytes 32)"
cat > "$W/one.sql" <<SQL
\\set s random(1, 9223372036854775806)
BEGIN;
INSERT INTO certificates (issuer, serial, status, profile, subject, cert, not_before, not_after, shard, created_at, changed_at)
  VALUES ($ROW, 'issued', 'server', 'CN=leaf.bench.test', $(bytes 544), 1, 2, 0, 1, 1);
INSERT INTO audit_log (seq, ts, actor, action, details, prev_hash, hash) VALUES ($AUDIT);
COMMIT;
SQL
cat > "$W/batch.sql" <<SQL
\\set s random(1, 9223372036854775806)
BEGIN;
INSERT INTO certificates (issuer, serial, status, profile, subject, cert, not_before, not_after, shard, created_at, changed_at)
  SELECT $ROW, 'issued', 'server', 'CN=leaf.bench.test', $(bytes 544), 1, 2, 0, 1, 1 FROM generate_series(1, __BATCH__);
INSERT INTO audit_log (seq, ts, actor, action, details, prev_hash, hash) SELECT $AUDIT FROM generate_series(1, __BATCH__);
COMMIT;
SQL
cat > "$W/reserve.sql" <<SQL
\\set s random(1, 9223372036854775806)
INSERT INTO certificates (issuer, serial, status, profile, subject, tbs, not_before, not_after, shard, created_at, changed_at)
  VALUES ('$ISSUER', lpad(to_hex(:s), 40, '0'), 'pending', 'server', 'CN=leaf.bench.test', $(bytes 464), 1, 2, 0, 1, 1);
BEGIN;
UPDATE certificates SET status = 'issued', cert = $(bytes 544), tbs = NULL
  WHERE issuer = '$ISSUER' AND serial = lpad(to_hex(:s), 40, '0') AND status = 'pending';
INSERT INTO audit_log (seq, ts, actor, action, details, prev_hash, hash) VALUES ($AUDIT);
COMMIT;
SQL

# CPU of every PostgreSQL process, with the children the postmaster reaped.
pg_cpu() {
  local t=0 p f
  for p in $(pgrep -x postgres); do
    f=$(cut -d' ' -f14-17 "/proc/$p/stat" 2>/dev/null) || continue
    for v in $f; do t=$((t + v)); done
  done
  echo "$t"
}
TCK=$(getconf CLK_TCK)
# CONFIGS: "clients:batch:case" words; by default each of CASES with CLIENTS
# and BATCH. The batch size is part of the script, so each is written anew.
CONFIGS=${CONFIGS:-$(for c in ${CASES:-one batch reserve}; do printf '%s ' "$CLIENTS:$BATCH:$c"; done)}
for cfg in $CONFIGS; do
  IFS=: read -r clients batch case <<< "$cfg"
  per=1; [ "$case" = batch ] && per=$batch
  sed "s/__BATCH__/$batch/g" "$W/$case.sql" > "$W/run.sql"
  for _ in $(seq 1 "$REPS"); do
    c0=$(pg_cpu)
    tps=$(pgbench -n -c "$clients" -j 1 -T "$DUR" -f "$W/run.sql" "$PG_URL/$DB" 2>/dev/null \
      | awk '/^tps/ {print $3}')
    sleep 0.5
    c1=$(pg_cpu)
    python3 -c "t=$tps*$per; print('pg-floor-$case(c=$clients,per=$per) certs/s', round(t)); print('pg-floor-$case(c=$clients,per=$per) pg_cpu_ms/cert', round(($c1-$c0)/$TCK/$DUR/t*1000, 3))"
  done
done > "$W/raw.txt"
if [ -n "${RAW:-}" ]; then cat "$W/raw.txt"
else python3 "$ROOT/../shared/bench/peers/stats.py" < "$W/raw.txt" 2>/dev/null || cat "$W/raw.txt"; fi
psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
