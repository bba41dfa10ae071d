#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs all checks and tests.
# Used by the README and by .ci/run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

if ! command -v chromium >/dev/null 2>&1; then
    step "installing Debian's chromium for the browser tests"
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null
    fi
fi

step "installing the package with its test extras"
python -m pip install -q --disable-pip-version-check -e '.[test]'

step "building the dashboard bundle (npm ci, tsc, esbuild)"
(cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run --silent check && npm run --silent build)
if [ -d .git ] && ! git diff --quiet -- broker/static; then
    echo "broker/static/ differs from the committed bundle: run 'npm run build' in frontend/ and commit." >&2
    git --no-pager diff --stat -- broker/static >&2
    exit 1
fi

step "lint and types"
python -m ruff check debugbroker agent broker tests benchmarks
python -m mypy

step "tests"
set +e
python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
    echo "pytest collected no tests: that is a failure here." >&2
    exit 1
fi
exit "$status"
