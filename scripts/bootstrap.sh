#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine with Python 3.11:
# the package with its dev extras, and (as root) the Debian binaries the real-component
# tests and the demo use. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || need_apt+=(prometheus-alertmanager)
# The PostgreSQL audit tests start a server of their own (initdb, postgres; lab/postgres.py).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 \
  || need_apt+=(postgresql)
if [[ "${WITH_BROWSER:-1}" == "1" ]]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
fi

if ((${#need_apt[@]})); then
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: not root or no apt-get; missing: ${need_apt[*]} (tests needing them skip, or fail under CI=true)"
  fi
fi

# compat mode puts the checkout itself on sys.path, so the lab packages beside the product
# (sandbox, lab, rules) import as installed while the wheel still ships `webhook` alone.
echo "bootstrap: pip install -e .[dev] (editable, compat mode)"
"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[dev]" \
  --config-settings editable_mode=compat

# The Go programs of the test bench (Prometheus 3, Alertmanager 0.3x, helm, kube-state-metrics,
# the control plane), pinned by lab/go/<name>/go.mod, into ${ROLLBACK_WEBHOOK_BIN:-~/.cache/...}.
# Skipped without Go: the tests that need them then skip (or fail under CI=true).
# WITH_GO=0 skips them (the demo needs none: it runs Debian's Prometheus and Alertmanager).
if [[ "${WITH_GO:-1}" != "1" ]]; then
  echo "bootstrap: WITH_GO=0: lab/go binaries not built"
elif command -v go >/dev/null 2>&1; then
  echo "bootstrap: scripts/build-go.sh (all lab/go modules)"
  scripts/build-go.sh
else
  echo "bootstrap: go not found; lab/go binaries not built (tests needing them skip, or fail under CI=true)"
fi
