#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) with libFuzzer for a set number
# of executions each, starting from the seed corpus in fuzz/corpus, and
# reports executions and crashes per target. A crash leaves its input in
# fuzz/artifacts/TARGET/ and fails the run; turn it into a regression test
# (crates/pki/tests/vectors.rs or the crate's own tests) before fixing it.
#
#   scripts/fuzz.sh                 10,000,000 executions per target
#   FUZZ_RUNS=2000 scripts/fuzz.sh  a smoke run (CI: every target still builds and runs)
#   scripts/fuzz.sh csr subject     only these targets
#
# Needs a nightly toolchain (rustup toolchain install nightly) and cargo-fuzz
# (cargo install cargo-fuzz); built without sanitizers (-s none: the code
# under test forbids unsafe; what libFuzzer finds is panics, hangs and
# runaway memory).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${FUZZ_RUNS:-10000000}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/tmp/hallmark-fuzz-target}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is needed: cargo install cargo-fuzz" >&2; exit 1; }

cd fuzz
cargo +nightly fuzz build -s none --release
status=0
printf '%-15s %12s %9s %8s\n' target executions seconds crashes
for t in "${targets[@]}"; do
    work=$(mktemp -d)
    cp -r "corpus/$t/." "$work/" 2>/dev/null || true
    mkdir -p "artifacts/$t"
    log=$(mktemp)
    start=$(date +%s)
    set +e
    # -rss_limit_mb: a parser that grows without bound is a finding too.
    cargo +nightly fuzz run -s none --release "$t" "$work" -- \
        -runs="$RUNS" -max_len=16384 -timeout=10 -rss_limit_mb=1024 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    secs=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)
    crashes=$(find "artifacts/$t" -type f | wc -l)
    printf '%-15s %12s %9s %8s\n' "$t" "${execs:-?}" "$secs" "$crashes"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        status=1
        tail -n 30 "$log" >&2
    fi
    rm -rf "$work" "$log"
done
exit "$status"
