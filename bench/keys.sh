#!/usr/bin/env bash
# Signing and issuance throughput with Hallmark's own keys: the software key store against
# a PKCS#11 token (SoftHSM2), same run, 1 and 2 threads, for the issuing CA
# key (issuance) and the OCSP responder key (pre-signing OCSP responses).
# SoftHSM2 is software too: this measures our overhead over PKCS#11, not an HSM.
set -euo pipefail
REPS=${REPS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS:-$ROOT/../shared/bench/peers}
HM=${HM:-${CARGO_TARGET_DIR:-$ROOT/target}/release/hallmark}
W=${W:-$(mktemp -d /tmp/hallmark-bench-keys.XXXXXX)}
mkdir -p "$W" && cd "$W"
export HALLMARK_PASSPHRASE="benchmark passphrase" HALLMARK_DANGER_INSECURE_KDF=1 HALLMARK_LOG=warn
LABEL=hm-bench-$$
softhsm2-util --init-token --free --label "$LABEL" --pin 246810 --so-pin 135790 >/dev/null
trap 'softhsm2-util --delete-token --token "$LABEL" >/dev/null 2>&1 || true' EXIT
echo 246810 > pin
HALLMARK_DATA_DIR=$W/soft "$HM" init 2> soft.init.log >/dev/null
HALLMARK_DATA_DIR=$W/hsm "$HM" init --key-store pkcs11 --pkcs11-module /usr/lib/softhsm/libsofthsm2.so \
  --pkcs11-token "$LABEL" --pkcs11-pin-file "$W/pin" 2> hsm.init.log >/dev/null
: > raw.txt
for r in $(seq 1 "$REPS"); do
  for key in issuing ocsp; do
    for t in 1 2; do
      for store in soft hsm; do
        HALLMARK_DATA_DIR=$W/$store "$HM" bench keys --key "$key" --threads "$t" --seconds 3 \
          | awk -v s=$store -v k=$key -v t=$t '{print s "-" k "-threads" t, $(NF-1)}' | tee -a raw.txt
      done
    done
  done
done
python3 - raw.txt <<'P'
import sys, statistics as st, collections
d = collections.OrderedDict()
for line in open(sys.argv[1]):
    k, v = line.split()
    d.setdefault(k, []).append(float(v))
for k, v in d.items():
    print(f"{k:28s} median {st.median(v):9.0f}/s  [{min(v):.0f}-{max(v):.0f}]")
P

# Issuance through the API with each key store, the server on 1 and 2 runtime
# threads (wrk, 8 connections, 10 s; bench/issue.lua counts 201 + certificate).
PORT=${PORT:-18090}
openssl ecparam -name prime256v1 -genkey -noout -out leaf.key
openssl req -new -key leaf.key -subj "/CN=leaf.bench.test" -out leaf.csr
python3 -c "import json;print(json.dumps({'profile':'server','subject':'CN=leaf.bench.test','csr':open('leaf.csr').read(),'dns_names':['leaf.bench.test']}))" > issue.json
: > issue.txt
for store in soft hsm; do
  T=$(grep -o 'hm_[0-9a-f]*' "$store.init.log")
  for t in 1 2; do
    for r in $(seq 1 "$REPS"); do
      HALLMARK_WORKER_THREADS=$t HALLMARK_DATA_DIR=$W/$store "$HM" serve --listen 127.0.0.1:$PORT > "$store.serve.log" 2>&1 &
      SPID=$!
      for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.1; done
      BODY=$W/issue.json TOKEN=$T python3 "$PEERS/wrkrun.py" "issue-$store-threads$t" $SPID \
        http://127.0.0.1:$PORT/api/v1/certificates -s "$ROOT/bench/issue.lua" 2>>wrk.log | grep -E " (ok/s|srv_cpu_ms/op) " | tee -a issue.txt
      kill $SPID; wait $SPID 2>/dev/null || true
    done
  done
done
python3 "$PEERS/stats.py" < issue.txt
