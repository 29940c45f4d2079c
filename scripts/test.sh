#!/usr/bin/env bash
# The test command: set-up on a fresh machine, then lint, type-check and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
PYTHON="${PYTHON:-python3}"
echo "== ruff"
"$PYTHON" -m ruff check webhook sandbox lab tests benchmarks rules scripts
"$PYTHON" -m ruff format --check webhook sandbox lab tests benchmarks rules scripts
echo "== mypy"
"$PYTHON" -m mypy
echo "== mypy --strict (the product package)"
"$PYTHON" -m mypy --strict -p webhook
echo "== import contracts (docs/architecture.md)"
lint-imports
echo "== pytest"
"$PYTHON" -m pytest "$@"
