#!/usr/bin/env bash
# The campaign (issue 17): N synthetic residents (default 1,000,000)
# imported into the registry, N applications imported as one batch by an
# officer, checked, approved by a supervisor's batch action and issued with
# centrally generated keys, durably (FULL sync on SQLite, fsync on
# PostgreSQL) with an audit entry per certificate. Wall time and peak RSS
# of each stage from /usr/bin/time, on SQLite and (with PG_URL) PostgreSQL;
# in the same run, the ceiling: `hallmark bench campaign-raw` (key
# generation + signature on every core, nothing stored), and the officer's
# queue page with the whole batch awaiting approval (bench/queue.sh; QUEUE=0
# skips it).
#
#   N=1000000 PG_URL=postgres://$USER@127.0.0.1:5432/test bench/campaign.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
N=${N:-1000000}
BACKENDS=${BACKENDS:-sqlite${PG_URL:+ postgres}}
HM=${HM:-${CARGO_TARGET_DIR:-$HERE/../target}/release/hallmark}
[ -x "$HM" ] || { echo "no $HM: build it with cargo build --release (or set HM or CARGO_TARGET_DIR)" >&2; exit 1; }
VENV=${HALLMARK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hallmark-venv}
W=${W:-$(mktemp -d /tmp/hallmark-bench-campaign.XXXXXX)}
mkdir -p "$W" && cd "$W"
export HALLMARK_PASSPHRASE="benchmark passphrase" HALLMARK_LOG=warn
export HALLMARK_STAFF_PASSWORD="benchmark staff password"
totp() { "$VENV/bin/python" -c "import pyotp,sys;print(pyotp.TOTP(sys.argv[1]).now())" "$1"; }
stage() { # NAME CMD...: runs CMD, prints "NAME wall_s peak_MiB" to results
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o time.out "$@" > stage.out 2> stage.err || { cat stage.err >&2; exit 1; }
    read -r wall kb < time.out
    printf '%-10s %-22s %9.1f s %7.0f MiB  %s\n' "$B" "$name" "$wall" "$((kb / 1024))" \
        "$(grep -v warning stage.err | tail -n1)" | tee -a results
}

"$HM" registry synth --count "$N" --seed 7 --out residents.csv 2>/dev/null
"$HM" campaign synth --count "$N" --seed 7 --out applications.csv 2>/dev/null
: > results
for B in $BACKENDS; do
    export HALLMARK_DATA_DIR=$W/data-$B
    rm -rf "$HALLMARK_DATA_DIR"
    unset HALLMARK_DATABASE_URL
    if [ "$B" = postgres ]; then
        # A database of its own, made afresh (PG_URL is only connected to).
        psql "$PG_URL" -qc "DROP DATABASE IF EXISTS hallmark_bench_campaign" -c "CREATE DATABASE hallmark_bench_campaign" >/dev/null
        export HALLMARK_DATABASE_URL=${PG_URL%/*}/hallmark_bench_campaign
    fi
    "$HM" init >/dev/null 2>&1
    off=$("$HM" staff add --username officer --name Officer --role officer --centre Bench 2>/dev/null | sed -n 's/.*once): //p')
    sup=$("$HM" staff add --username supervisor --name Supervisor --role supervisor --centre Bench 2>/dev/null | sed -n 's/.*once): //p')
    stage "registry import" "$HM" registry import residents.csv
    stage "applications import" "$HM" campaign import applications.csv --as officer --code "$(totp "$off")"
    batch=$(tail -n1 stage.out)
    stage "registry check" "$HM" campaign check "$batch"
    # The officer's queue while the whole batch awaits approval.
    if [ "${QUEUE:-1}" = 1 ]; then
        DATA=$HALLMARK_DATA_DIR HM=$HM HALLMARK_VENV=$VENV REPS=${QUEUE_REPS:-3} \
            bash "$HERE/queue.sh" | sed "s/^/$B queue: /" | tee -a results
    fi
    stage "supervisor approval" "$HM" campaign approve "$batch" --as supervisor --code "$(totp "$sup")"
    stage "issuance" "$HM" campaign issue "$batch"
    "$HM" campaign status "$batch" | tee -a results
    stage "ceiling (no storage)" "$HM" bench campaign-raw --count 200000
    cat stage.out | tee -a results
done
echo "results in $W/results"
