#!/usr/bin/env bash
# Revocation through the API beside a large CRL: N revoked certificates
# already on the issuing CA's full CRL (default 1,000,000, from
# `hallmark bench crl-fixture`), then M revocations one after another with
# POST /api/v1/certificates/{serial}/revoke. Reports, per revocation, the
# API's answer time (curl time_total) and the times until the CRL of the
# certificate's partition (its CRL distribution point) and the full CRL
# list it (polled; a poll of the full CRL downloads tens of MB, so these
# include that). The last full CRL is checked with `openssl crl`.
# Medians and maxima.
# Env: N (1000000), M (10), PORT (18081), HM (binary).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-1000000}; M=${M:-10}; PORT=${PORT:-18081}
HM=${HM:-${CARGO_TARGET_DIR:-$ROOT/target}/release/hallmark}
W=${W:-$(mktemp -d /tmp/hallmark-bench-revoke.XXXXXX)}
mkdir -p "$W" && cd "$W"
export HALLMARK_DATA_DIR=$W/data HALLMARK_PASSPHRASE="benchmark passphrase" HALLMARK_DANGER_INSECURE_KDF=1 HALLMARK_LOG=warn
"$HM" init --listen 127.0.0.1:$PORT 2> init.log >/dev/null
T=$(grep -o 'hm_[0-9a-f]*' init.log)
"$HM" bench crl-fixture --entries "$N" >/dev/null
for i in $(seq 1 "$M"); do
  "$HM" cert issue --profile personal --subject "CN=Holder $i,C=HK" --generate-key --p12-out "h$i.p12" 2> "h$i.log" > "h$i.pem"
  grep -o 'issued serial [0-9a-f]*' "h$i.log" | awk '{print $3}' >> serials.txt
done
"$HM" serve --listen 127.0.0.1:$PORT > serve.log 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null || true; wait $SPID 2>/dev/null || true' EXIT
for _ in $(seq 600); do curl -s -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.2; done
curl -s http://127.0.0.1:$PORT/ca/issuing.pem > issuing.pem
listed() { # serial URL: is it on the CRL served there? (its bytes in the
  # DER; parsing a million entries with `openssl crl -text` takes seconds)
  python3 -c "import sys,urllib.request;d=urllib.request.urlopen('$2').read();sys.exit(0 if bytes.fromhex('$1') in d else 1)"
}
: > raw.txt
i=0
while read -r serial; do
  i=$((i+1))
  shard=$(openssl x509 -in "h$i.pem" -noout -ext crlDistributionPoints | grep -o 'http://[^ ]*\.crl')
  start=$(date +%s.%N)
  api=$(curl -s -o resp.json -w '%{http_code} %{time_total}' -X POST \
    -H "Authorization: Bearer $T" -H 'Content-Type: application/json' \
    --data '{"reason":"keyCompromise"}' http://127.0.0.1:$PORT/api/v1/certificates/$serial/revoke)
  [ "${api%% *}" = 200 ] || { echo "revoke $serial: $api $(cat resp.json)" >&2; exit 1; }
  until listed "$serial" "$shard"; do sleep 0.05; done
  on_shard=$(python3 -c "import time;print(round(time.time()-$start,3))")
  until listed "$serial" "http://127.0.0.1:$PORT/crl/issuing.crl"; do sleep 0.25; done
  on_full=$(python3 -c "import time;print(round(time.time()-$start,3))")
  echo "revoke api_s ${api#* } on_shard_crl_s $on_shard on_full_crl_s $on_full" | tee -a raw.txt
done < serials.txt
openssl crl -inform DER -in <(curl -s http://127.0.0.1:$PORT/crl/issuing.crl) -CAfile issuing.pem -noout 2>&1 | grep -q "verify OK"
python3 - raw.txt <<'P'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for name, i in (("api_s", 2), ("on_shard_crl_s", 4), ("on_full_crl_s", 6)):
    v = [float(r[i]) for r in rows]
    print(f"{name}: median {statistics.median(v):.3f} max {max(v):.3f} (n={len(v)})")
P
echo "work dir $W" >&2
