"""docs/install.md promises kubectl 1.27 or newer: its kustomize (v5.0) renders the same bundle.

These machines carry Google Cloud SDK's kubectl dispatcher with one kubectl per minor beside it
(kubectl.1.27 ... kubectl.1.33); the oldest renders each overlay byte for byte like the default.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.binaries import in_ci, require_binary
from tests.deploy.render import DEPLOY, OVERLAYS

OLDEST = "kubectl.1.27"


def kustomize(kubectl: str | Path, overlay: str) -> str:
    result = subprocess.run(
        [str(kubectl), "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{kubectl} kustomize {overlay}:\n{result.stderr}"
    return result.stdout


@pytest.mark.kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_oldest_supported_kubectl_renders_the_same_bundle(overlay: str):
    kubectl = require_binary("kubectl")
    oldest = Path(shutil.which(kubectl) or kubectl).resolve().parent / OLDEST
    if not oldest.exists():
        message = f"{OLDEST} not found beside {kubectl} (the Google Cloud SDK dispatcher has it)"
        if in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    assert kustomize(oldest, overlay) == kustomize(kubectl, overlay)
