#!/usr/bin/env bash
# The officer's approval queue (its first page: 50 applications, opened from
# their sealed records) over the applications already in a data directory,
# e.g. one left by bench/campaign.sh after a batch of 1,000,000 was checked
# and not yet approved (KEEP=1 bench/campaign.sh stops there). wrk with a
# signed-in officer's session (CONNS connections, default 4); latency percentiles, pages/s
# and the server's CPU per page, medians of REPS runs.
#
#   DATA=/tmp/hallmark-bench-campaign.X/data-sqlite bench/queue.sh
set -euo pipefail
: "${DATA:?set DATA to a data directory}"
REPS=${REPS:-3}; DUR=${DUR:-10}; PORT=${PORT:-18443}; CONNS=${CONNS:-4}
HM=${HM:-${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}/release/hallmark}
[ -x "$HM" ] || { echo "no $HM: build it with cargo build --release (or set HM or CARGO_TARGET_DIR)" >&2; exit 1; }
VENV=${HALLMARK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hallmark-venv}
export HALLMARK_DATA_DIR=$DATA HALLMARK_PASSPHRASE=${HALLMARK_PASSPHRASE:-"benchmark passphrase"} HALLMARK_LOG=warn
export HALLMARK_STAFF_PASSWORD="queue benchmark password"
W=$(mktemp -d /tmp/hallmark-bench-queue.XXXXXX)
user=queue$RANDOM
secret=$("$HM" staff add --username "$user" --name "Queue bench" --role officer --centre Bench 2>/dev/null | sed -n 's/.*once): //p')
"$HM" serve --listen 127.0.0.1:$PORT > "$W/serve.log" 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
# serve pre-signs every live certificate's OCSP response at start (a
# million take about a minute): WARM seconds let that finish first.
sleep "${WARM:-0}"
UA="hallmark-queue-bench"
page=$(curl -fs -A "$UA" -c "$W/jar" "http://127.0.0.1:$PORT/ra/staff/sign-in")
csrf=$(printf '%s' "$page" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -n1)
code=$("$VENV/bin/python" -c "import pyotp,sys;print(pyotp.TOTP(sys.argv[1]).now())" "$secret")
curl -fs -A "$UA" -b "$W/jar" -c "$W/jar" -o /dev/null \
    --data-urlencode "csrf=$csrf" --data-urlencode "username=$user" \
    --data-urlencode "password=$HALLMARK_STAFF_PASSWORD" --data-urlencode "code=$code" \
    "http://127.0.0.1:$PORT/ra/staff/sign-in"
session=$(awk '$6 == "hm_session" {print $7}' "$W/jar")
[ -n "$session" ] || { echo "sign-in failed" >&2; exit 1; }
rows=$(curl -fs -A "$UA" -H "Cookie: hm_session=$session" "http://127.0.0.1:$PORT/ra/staff/queue" | grep -c '<tr><td>HM-' || true)
echo "queue page shows $rows applications"
[ "$rows" -gt 0 ] || { echo "the queue is empty: nothing awaits approval in $DATA" >&2; exit 1; }
cpu() { awk '{print $14 + $15}' "/proc/$srv/stat"; }
for r in $(seq 1 "$REPS"); do
    before=$(cpu)
    wrk -t"$(( CONNS < 2 ? 1 : 2 ))" -c"$CONNS" -d"${DUR}s" --latency -H "User-Agent: $UA" -H "Cookie: hm_session=$session" \
        "http://127.0.0.1:$PORT/ra/staff/queue" > "$W/wrk.$r"
    after=$(cpu)
    reqs=$(awk '/requests in/ {print $1}' "$W/wrk.$r")
    p50=$(awk '$1 == "50%" {print $2}' "$W/wrk.$r")
    p99=$(awk '$1 == "99%" {print $2}' "$W/wrk.$r")
    non2xx=$(awk '/Non-2xx/ {print $4}' "$W/wrk.$r")
    ticks=$(getconf CLK_TCK)
    printf 'run %s: %s pages in %ss, p50 %s, p99 %s, server CPU %.3f ms/page%s\n' "$r" "$reqs" "$DUR" "$p50" "$p99" \
        "$(awk -v a="$after" -v b="$before" -v t="$ticks" -v n="$reqs" 'BEGIN { print (a - b) * 1000 / t / n }')" \
        "${non2xx:+, NON-2xx $non2xx}"
done
