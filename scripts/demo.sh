#!/usr/bin/env bash
# The main job: set-up on a fresh machine, then the demo on the sandbox cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_BROWSER=0 bash scripts/bootstrap.sh
exec "${PYTHON:-python3}" -m webhook demo "$@"
