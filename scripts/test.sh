#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs all checks and tests:
# install.sh, lint.sh, test-fast.sh, test-e2e.sh, then the agent's and the broker's tests under
# the other supported Pythons. Used by the README and by .ci/run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

bash scripts/install.sh

step "lint and types"
bash scripts/lint.sh

status=0
step "agent and broker tests"
# The slowest tests are listed too: CI must stay under 20 minutes.
bash scripts/test-fast.sh --durations=8 "$@" || status=1
step "end-to-end tests"
bash scripts/test-e2e.sh --durations=12 "$@" || status=1

# The other supported Pythons (pyproject: requires-python >= 3.10): the agent's and the
# broker's tests, each in a fresh venv. A Python that is not installed is skipped with a note.
# By default the oldest and the newest (3.12 lies between 3.11, the main run, and 3.13, which
# shares its sys.monitoring code paths; three extra Pythons took CI past 19 of its 20 minutes).
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
for version in ${DEBUGBROKER_EXTRA_PYTHONS-3.10 3.13}; do
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
    "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not e2e and not once" -n 2 tests/agent tests/broker
    extra=$?
    set -e
    echo "Python $version ($interpreter): pytest exit status $extra, $((SECONDS - started)) s with its venv"
    if [ "$extra" != 0 ]; then
        status=1
    fi
    rm -rf "$venv"
done
exit "$status"
