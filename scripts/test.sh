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
python -m ruff check debugbroker agent broker protocol tests benchmarks
python -m ruff format --check debugbroker agent broker protocol tests benchmarks
python -m mypy

step "tests"
set +e
python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
    echo "pytest collected no tests: that is a failure here." >&2
    status=1
fi

# The other supported Pythons (pyproject: requires-python >= 3.10): the agent's and the
# broker's tests, each in a fresh venv. A Python that is not installed is skipped with a note.
# DEBUGBROKER_EXTRA_PYTHONS picks the versions ("" skips them all).
find_python() {  # an interpreter of exactly version $1, found on PATH or under pyenv
    local candidate
    for candidate in "$(command -v "python$1" || true)" \
        $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$1".*/bin/python 2>/dev/null | sort -V -r); do
        if [ -n "$candidate" ] && [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$1" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for version in ${DEBUGBROKER_EXTRA_PYTHONS-3.10 3.12 3.13}; do
    step "agent and broker tests under Python $version"
    if ! interpreter=$(find_python "$version"); then
        echo "Python $version is not installed (no python$version on PATH, none under pyenv): skipped."
        continue
    fi
    started=$SECONDS
    venv="$scratch/py$version"
    if ! "$interpreter" -m venv "$venv"; then
        echo "$interpreter cannot make a venv (its venv module is missing): Python $version skipped."
        continue
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
    set +e
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/agent tests/broker
    extra=$?
    set -e
    echo "Python $version ($interpreter): pytest exit status $extra, $((SECONDS - started)) s with its venv"
    if [ "$extra" != 0 ]; then
        status=1
    fi
    rm -rf "$venv"
done
exit "$status"
