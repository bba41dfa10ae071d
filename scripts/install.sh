#!/usr/bin/env bash
# Installs what the checks and tests need on a fresh machine: Debian's chromium and
# redis-server, the package with its test extras, and the dashboard's npm packages; then
# rebuilds the dashboard bundle and fails if it differs from the committed one.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
    step "installing Debian's ${missing[*]} for the browser and task-queue tests"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
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
