#!/usr/bin/env bash
# The main job: set-up on a fresh machine, then the demo on the sandbox cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
# No browser and no Go builds: the demo runs Debian's Prometheus and Alertmanager on the sandbox.
WITH_BROWSER=0 WITH_GO=0 bash scripts/bootstrap.sh
exec "${PYTHON:-python3}" -m webhook demo "$@"
