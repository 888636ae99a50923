#!/usr/bin/env bash
# Hallmark benchmarks with their peers in the same run (see BENCHMARKS.md).
#   issuance  POST /api/v1/certificates (CSR in, checked, linted, signed,
#             stored durably with its audit entry) on SQLite and PostgreSQL,
#             against `cfssl serve` /api/v1/cfssl/sign (stores nothing);
#   ocsp      POST /ocsp with a fixed RFC 5019 request (wrk keep-alive and
#             ab one-request-per-connection) against `openssl ocsp` and
#             `cfssl ocspserve` (ab, as the peer scripts must);
#   raw       P-256 sign+verify rate of our crypto provider and openssl speed;
#   floor     what PostgreSQL alone costs per stored certificate (pgbench,
#             bench/pg-floor.sh), not in the default PARTS.
# CRLs: bench/crl.sh. Needs the peer tools (../shared/bench/peers/00-install.sh).
# Env: PARTS ("raw issue ocsp"), BACKENDS ("sqlite postgres"), REPS (3), DUR (10),
# CONNS (8), PG_URL, NO_PEERS=1 to skip the peers.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS:-$ROOT/../shared/bench/peers}
HM=${HM:-${CARGO_TARGET_DIR:-$ROOT/target}/release/hallmark}
PARTS=${PARTS:-raw issue ocsp}
export REPS=${REPS:-3} DUR=${DUR:-10} CONNS=${CONNS:-8}
PG_URL=${PG_URL:-postgres://$(id -un)@127.0.0.1:5432}
W=${W:-$(mktemp -d /tmp/hallmark-bench.XXXXXX)}
mkdir -p "$W"
PORT=${PORT:-18080}
echo "work dir $W; binary $HM" >&2
cd "$W"
: > raw.txt
export HALLMARK_PASSPHRASE="benchmark passphrase" HALLMARK_DANGER_INSECURE_KDF=1 HALLMARK_LOG=warn

start() { # data dir
  HALLMARK_DATA_DIR=$1 "$HM" serve --listen 127.0.0.1:$PORT > "$1.serve.log" 2>&1 &
  SPID=$!
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$PORT/healthz && return; sleep 0.1; done
  echo "server did not start" >&2; cat "$1.serve.log" >&2; exit 1
}
stop() { kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; }
trap 'stop' EXIT

install() { # name [--database-url URL]
  local d=$W/$1; shift
  HALLMARK_DATA_DIR=$d "$HM" init --listen 127.0.0.1:$PORT "$@" 2> "$d.init.log" >/dev/null
  grep -o 'hm_[0-9a-f]*' "$d.init.log"
}

if [[ " $PARTS " == *" raw "* ]]; then
  for r in $(seq 1 "$REPS"); do
    "$HM" bench sign --seconds 3 | awk '{print "hallmark-p256-sign+verify/s/core", $3}' | sed 's|/s$||' | tee -a raw.txt
  done
  openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/256 bits ecdsa/ {print "openssl-p256-sign/s/core", $(NF-1); print "openssl-p256-verify/s/core", $NF}' | tee -a raw.txt
fi

if [[ " $PARTS " == *" issue "* ]]; then
  openssl ecparam -name prime256v1 -genkey -noout -out leaf.key
  openssl req -new -key leaf.key -subj "/CN=leaf.bench.test" -out leaf.csr
  python3 -c "import json;print(json.dumps({'profile':'server','subject':'CN=leaf.bench.test','csr':open('leaf.csr').read(),'dns_names':['leaf.bench.test']}))" > issue.json
  psql "$PG_URL/test" -qc "DROP DATABASE IF EXISTS hallmark_bench WITH (FORCE)" -c "CREATE DATABASE hallmark_bench"
  for backend in ${BACKENDS:-sqlite postgres}; do
    if [ $backend = sqlite ]; then T=$(install hm-sqlite); D=$W/hm-sqlite
    else T=$(install hm-pg --database-url "$PG_URL/hallmark_bench"); D=$W/hm-pg; fi
    start "$D"
    # correctness: one issuance, verified by openssl
    curl -s -X POST -H "Authorization: Bearer $T" --data @issue.json http://127.0.0.1:$PORT/api/v1/certificates \
      | python3 -c 'import json,sys;r=json.load(sys.stdin);open("leaf.pem","w").write(r["certificate"]);open("chain.pem","w").write(r["chain"][0])'
    curl -s http://127.0.0.1:$PORT/ca/root.pem > root.pem
    openssl verify -CAfile root.pem -untrusted chain.pem leaf.pem
    for r in $(seq 1 "$REPS"); do
      BODY=$W/issue.json TOKEN=$T python3 "$PEERS/wrkrun.py" "hallmark-issue-$backend(c=$CONNS)" $SPID \
        http://127.0.0.1:$PORT/api/v1/certificates -s "$ROOT/bench/issue.lua" 2>>wrk.log | tee -a raw.txt
    done
    HALLMARK_DATA_DIR=$D "$HM" audit verify | tail -1
    stop
  done
  # CFSSL: `cfssl serve` sign, and `cfssl ocspserve` driven by wrk like ours
  # (the peer script needs its sign part to make the leaf for OCSP).
  if [ -z "${NO_PEERS:-}" ]; then
    { W=$W/cfssl bash "$PEERS/02-cfssl.sh" 2>&1 || true; } \
      | { grep -E "^cfssl-(sign|ocspserve)[^ ]* (ok/s|p99_ms|srv_cpu_ms/op) [0-9.]+$" || true; } | tee -a raw.txt
  fi
fi

# PostgreSQL's own floor beside the issuance figures: pgbench on Hallmark's
# schema with 8 certificates in flight (see bench/pg-floor.sh).
if [[ " $PARTS " == *" floor "* ]]; then
  CONFIGS="8:1:one 2:4:batch 1:8:batch" RAW=1 PG_URL=$PG_URL HM=$HM \
    bash "$ROOT/bench/pg-floor.sh" 2>/dev/null | tee -a raw.txt
fi

if [[ " $PARTS " == *" ocsp "* ]]; then
  T=$(install hm-ocsp); D=$W/hm-ocsp
  start "$D"
  openssl ecparam -name prime256v1 -genkey -noout -out o.key
  openssl req -new -key o.key -subj "/CN=x" -out o.csr
  HALLMARK_DATA_DIR=$D "$HM" cert issue --profile personal --subject "CN=OCSP Bench,C=HK" --csr o.csr --out o.pem 2>/dev/null
  curl -s http://127.0.0.1:$PORT/ca/issuing.pem > issuing.pem; curl -s http://127.0.0.1:$PORT/ca/root.pem > root.pem
  openssl ocsp -issuer issuing.pem -cert o.pem -CAfile root.pem -url http://127.0.0.1:$PORT/ocsp -no_nonce 2>&1 | head -2
  openssl ocsp -issuer issuing.pem -cert o.pem -no_nonce -reqout ocsp-req.der
  for r in $(seq 1 "$REPS"); do
    BODY=$W/ocsp-req.der CTYPE=application/ocsp-request python3 "$PEERS/wrkrun.py" "hallmark-ocsp-post(c=$CONNS,wrk)" $SPID \
      http://127.0.0.1:$PORT/ocsp -s "$PEERS/post.lua" 2>>wrk.log | tee -a raw.txt
  done
  for r in $(seq 1 "$REPS"); do
    TOOL=ab ABN=60000 BODY=$W/ocsp-req.der CTYPE=application/ocsp-request python3 "$PEERS/wrkrun.py" "hallmark-ocsp-post(c=$CONNS,ab)" $SPID \
      http://127.0.0.1:$PORT/ocsp 2>>ab.log | tee -a raw.txt
  done
  stop
  { W=$W/openssl NREV=1000 bash "$PEERS/03-openssl-ocsp-crl.sh" 2>&1 || true; } \
    | { grep -E "^(openssl-ocsp|cfssl-ocspserve)[^ ]* (ok/s|p99_ms|srv_cpu_ms/op) [0-9.]+$" || true; } | tee -a raw.txt
fi

echo "== medians"
python3 "$PEERS/stats.py" < raw.txt
