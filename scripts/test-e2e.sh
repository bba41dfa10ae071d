#!/usr/bin/env bash
# The end-to-end tests: real servers, workers, Redis and headless Chromium, on two workers.
# Extra arguments go to pytest. pytest's exit status 5 (no tests ran) is a failure here.
set -uo pipefail
cd "$(dirname "$0")/.."
python -m pytest -m e2e -n "${DEBUGBROKER_TEST_WORKERS:-2}" "$@"
status=$?
[ "$status" = 5 ] && { echo "pytest collected no tests: that is a failure here." >&2; status=1; }
exit "$status"
