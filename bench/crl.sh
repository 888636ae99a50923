#!/usr/bin/env bash
# CRL generation over N revoked certificates (default 1,000,000): Hallmark
# (`hallmark crl generate --full-only`, entries streamed from SQLite, P-256
# issuing CA) against `openssl ca -gencrl` over the same serials in the same
# run (P-256 CA, as in ../shared/bench/peers/03-openssl-ocsp-crl.sh).
# Wall time, CPU time and peak RSS from /usr/bin/time; medians of REPS runs.
set -euo pipefail
N=${N:-1000000}; REPS=${REPS:-3}
HM=${HM:-${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}/release/hallmark}
W=${W:-$(mktemp -d /tmp/hallmark-bench-crl.XXXXXX)}
mkdir -p "$W" && cd "$W"
export HALLMARK_DATA_DIR=$W/data HALLMARK_PASSPHRASE="benchmark passphrase" HALLMARK_DANGER_INSECURE_KDF=1 HALLMARK_LOG=warn
"$HM" init >/dev/null 2>&1
"$HM" bench crl-fixture --entries "$N" --openssl-index index.add

# OpenSSL CA with the same entries.
mkdir -p ossl/newcerts && cd ossl
cat > ca.cnf <<C
[ ca ]
default_ca = bench
[ bench ]
dir = $W/ossl
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
crlnumber = \$dir/crlnumber
certificate = \$dir/ca.pem
private_key = \$dir/ca.key
default_md = sha256
default_days = 90
default_crl_days = 7
policy = pol
unique_subject = no
[ pol ]
commonName = supplied
C
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -new -x509 -key ca.key -subj "/CN=Bench OpenSSL CA" -days 30 -out ca.pem
echo 01 > serial; echo 01 > crlnumber
cp ../index.add index.txt
cd "$W"

: > raw.txt
for r in $(seq 1 "$REPS"); do
  /usr/bin/time -f "%e %U %S %M" -o h.txt "$HM" crl generate --issuer issuing --full-only > h.out
  read -r e u s m < h.txt
  echo "hallmark wall_s $e cpu_s $(python3 -c "print($u+$s)") maxrss_MiB $(python3 -c "print(round($m/1024,1))")" | tee -a raw.txt
  (cd ossl && /usr/bin/time -f "%e %U %S %M" -o ../o.txt openssl ca -batch -config ca.cnf -gencrl -out crl.pem 2>/dev/null)
  read -r e u s m < o.txt
  echo "openssl wall_s $e cpu_s $(python3 -c "print($u+$s)") maxrss_MiB $(python3 -c "print(round($m/1024,1))")" | tee -a raw.txt
done

# Check Hallmark's CRL with OpenSSL: signature and entry count.
python3 - "$W/data/hallmark.db" > hallmark.crl.der <<'P'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
sys.stdout.buffer.write(c.execute("SELECT der FROM crls WHERE issuer='issuing' AND shard=-1").fetchone()[0])
P
python3 - "$W/data/hallmark.db" > issuing.pem <<'P'
import sqlite3, sys, base64, textwrap
c = sqlite3.connect(sys.argv[1])
der = c.execute("SELECT cert FROM issuers WHERE id='issuing'").fetchone()[0]
print("-----BEGIN CERTIFICATE-----\n" + "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64)) + "\n-----END CERTIFICATE-----")
P
echo "hallmark CRL: $(stat -c %s hallmark.crl.der) bytes DER, $(openssl crl -inform DER -in hallmark.crl.der -CAfile issuing.pem -noout 2>&1 | head -1), $(openssl crl -inform DER -in hallmark.crl.der -noout -text | grep -c 'Serial Number:') entries"
echo "openssl CRL: $(openssl crl -in ossl/crl.pem -outform DER | wc -c) bytes DER, $(openssl crl -in ossl/crl.pem -noout -text | grep -c 'Serial Number:') entries"
python3 - raw.txt <<'P'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    d = rows.setdefault(f[0], {})
    for k, v in zip(f[1::2], f[2::2]):
        d.setdefault(k, []).append(float(v))
for who, d in rows.items():
    print(who, " ".join(f"{k} {st.median(v):g} [{min(v):g}-{max(v):g}]" for k, v in d.items()))
h, o = st.median(rows["hallmark"]["wall_s"]), st.median(rows["openssl"]["wall_s"])
print(f"ratio openssl/hallmark wall time: {o/h:.2f}x")
P
