#!/usr/bin/env bash
# Lint, format and type checks over the packages, tests and benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(debugbroker agent broker protocol tests benchmarks scripts)
python -m ruff check "${paths[@]}"
python -m ruff format --check "${paths[@]}"
python -m mypy
