"""docs/install.md promises kubectl 1.27 or newer: its kustomize (v5.0) renders the same bundle.

These machines carry Google Cloud SDK's kubectl dispatcher with one kubectl per minor beside it
(kubectl.1.27 ... kubectl.1.33); the oldest renders each overlay byte for byte like the default.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.binaries import in_ci, require_binary
from tests.deploy.render import DEPLOY, OVERLAYS, kustomize

OLDEST = "kubectl.1.27"


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
    directory = DEPLOY / "overlays" / overlay
    assert kustomize(directory, kubectl=oldest) == kustomize(directory, kubectl=kubectl)
