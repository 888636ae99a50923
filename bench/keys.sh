#!/usr/bin/env bash
# Signing throughput with Hallmark's own keys: the software key store against
# a PKCS#11 token (SoftHSM2), same run, 1 and 2 threads, for the issuing CA
# key (issuance) and the OCSP responder key (pre-signing OCSP responses).
# SoftHSM2 is software too: this measures our overhead over PKCS#11, not an HSM.
set -euo pipefail
REPS=${REPS:-3}
HM=${HM:-${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}/release/hallmark}
W=${W:-$(mktemp -d /tmp/hallmark-bench-keys.XXXXXX)}
mkdir -p "$W" && cd "$W"
export HALLMARK_PASSPHRASE="benchmark passphrase" HALLMARK_DANGER_INSECURE_KDF=1 HALLMARK_LOG=warn
LABEL=hm-bench-$$
softhsm2-util --init-token --free --label "$LABEL" --pin 246810 --so-pin 135790 >/dev/null
trap 'softhsm2-util --delete-token --token "$LABEL" >/dev/null 2>&1 || true' EXIT
echo 246810 > pin
HALLMARK_DATA_DIR=$W/soft "$HM" init >/dev/null 2>&1
HALLMARK_DATA_DIR=$W/hsm "$HM" init --key-store pkcs11 --pkcs11-module /usr/lib/softhsm/libsofthsm2.so \
  --pkcs11-token "$LABEL" --pkcs11-pin-file "$W/pin" >/dev/null 2>&1
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
