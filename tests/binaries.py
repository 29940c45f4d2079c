"""Tests that need a real binary skip on a laptop without it, and fail under CI.

A real-component test that silently skipped in CI would prove nothing, so with CI=true a
missing binary is a failure that names the binary and the package that provides it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

PROVIDERS = {
    "kubectl": "the Google Cloud SDK kubectl on these machines",
    "promtool": "Debian package prometheus",
    "prometheus": "Debian package prometheus",
    "alertmanager": "Debian package prometheus-alertmanager",
    "prometheus-alertmanager": "Debian package prometheus-alertmanager",
    "chromium": "Debian package chromium",
    "chromedriver": "Debian package chromium-driver",
}


# Built from lab/go/<module>/ by scripts/build-go.sh (scripts/bootstrap.sh runs it when Go is
# present): binary -> the module that builds it.
BUILT = {
    "prometheus3": "prometheus3",
    "promtool3": "prometheus3",
    "alertmanager-0.3x": "alertmanager",
    "amtool-0.3x": "alertmanager",
    "helm": "helm",
    "kube-state-metrics": "kube-state-metrics",
    "kube-apiserver": "controlplane",
    "kube-controller-manager": "controlplane",
    "etcd": "controlplane",
}


def bin_dir() -> Path:
    """Where scripts/build-go.sh puts the binaries it builds."""
    default = Path.home() / ".cache" / "rollback-webhook" / "bin"
    return Path(os.environ.get("ROLLBACK_WEBHOOK_BIN", default))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str, *alternatives: str) -> str:
    """Return the path of the first of `name`/`alternatives` on PATH; skip or fail without it."""
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path:
            return path
    what = PROVIDERS.get(name, name)
    message = f"{name} not found on PATH (install {what}; scripts/test.sh does)"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def require_built(name: str) -> str:
    """Return the path of a binary scripts/build-go.sh builds; skip or fail (CI=true) without it."""
    path = bin_dir() / name
    if path.is_file() and os.access(path, os.X_OK):
        return str(path)
    module = BUILT.get(name, name)
    message = (
        f"{name} not found in {bin_dir()} (build it with `scripts/build-go.sh {module}`, "
        "which needs Go; scripts/bootstrap.sh runs it)"
    )
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def require_built_or_go(*names: str) -> None:
    """Binaries scripts/build-go.sh builds, or Go to build them with (a first run builds).

    Skips on a laptop with neither, fails under CI=true.
    """
    if all((bin_dir() / n).is_file() and os.access(bin_dir() / n, os.X_OK) for n in names):
        return
    if shutil.which("go"):
        return
    modules = sorted({BUILT.get(n, n) for n in names})
    message = (
        f"{', '.join(names)} not built in {bin_dir()} and go not on PATH (install Go 1.26, then "
        f"`scripts/build-go.sh {' '.join(modules)}`)"
    )
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)
