#!/usr/bin/env bash
# The whole test suite: unit tests plus end-to-end tests of the `hallmark`
# binary judged by tools we did not write (OpenSSL, pkilint).
#
# SQLite always; PostgreSQL too when HALLMARK_TEST_DATABASE_URL is set, e.g.
#   HALLMARK_TEST_DATABASE_URL=postgres://$USER@127.0.0.1:5432/test scripts/test.sh
# Needs: cargo, openssl, softhsm2, wrk, poppler-utils, fonts-noto-cjk, chromium and
# chromium-driver, python3 (with
# venv), psql and pg_dump for PostgreSQL runs.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v openssl >/dev/null || { echo "the openssl CLI is needed (Debian: apt-get install openssl)" >&2; exit 1; }
command -v softhsm2-util >/dev/null || { echo "SoftHSM2 is needed for the PKCS#11 tests (Debian: apt-get install softhsm2)" >&2; exit 1; }
command -v chromedriver >/dev/null || { echo "Chromium and chromedriver are needed for the browser tests (Debian: apt-get install chromium chromium-driver)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is needed for the hostile-clients test (Debian: apt-get install wrk)" >&2; exit 1; }
command -v pdftotext >/dev/null || { echo "poppler's pdftotext is needed to read PIN mailers (Debian: apt-get install poppler-utils)" >&2; exit 1; }
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || [ -n "${HALLMARK_CJK_FONT:-}" ] || { echo "a CJK font is needed for PIN mailers (Debian: apt-get install fonts-noto-cjk)" >&2; exit 1; }

# pkilint, openapi-core (the API's contract), PyOTP, schemathesis (the
# API fuzzed) and aiosmtpd (the mail server that receives what Hallmark
# sends) in a virtual environment of their own.
VENV=${HALLMARK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hallmark-venv}
if ! [ -x "$VENV/bin/lint_pkix_cert" ] || ! "$VENV/bin/python" -c 'import openapi_core, pyotp, schemathesis, aiosmtpd' 2>/dev/null; then
    echo "installing pkilint, openapi-core, PyOTP, schemathesis and aiosmtpd into $VENV" >&2
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    # schemathesis 3.39 needs a Hypothesis from before 6.130 (later ones
    # changed what it calls).
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'pkilint>=0.13,<0.14' 'openapi-core>=0.19,<0.20' 'pyotp>=2.9,<3' \
        'schemathesis>=3.39,<3.40' 'hypothesis>=6.108,<6.130' 'aiosmtpd>=1.4,<2'
fi
export PATH="$VENV/bin:$PATH"

if [ -n "${HALLMARK_TEST_DATABASE_URL:-}" ]; then
    command -v psql >/dev/null || { echo "psql is needed for PostgreSQL tests (apt-get install postgresql-client)" >&2; exit 1; }
    echo "running the suite on SQLite and on PostgreSQL ($HALLMARK_TEST_DATABASE_URL)" >&2
else
    echo "running the suite on SQLite (set HALLMARK_TEST_DATABASE_URL to add PostgreSQL)" >&2
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --release "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
