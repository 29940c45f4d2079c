"""Tests that need a real binary skip on a laptop without it, and fail under CI.

A real-component test that silently skipped in CI would prove nothing, so with CI=true a
missing binary is a failure that names the binary and the package that provides it.
"""

from __future__ import annotations

import os
import shutil

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
