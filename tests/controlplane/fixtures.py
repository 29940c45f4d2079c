"""The real control plane (scripts/controlplane.sh): one per session, a fresh namespace per test.

A plugin of tests/conftest.py (`pytest_plugins`), so every suite that runs on the control plane
(tests/controlplane, tests/gitops, tests/hostile) shares the one session plane: a fixture
imported into another conftest or test module would be a second definition, and start a second
control plane.

Starting it takes seconds once built; the first run on a machine builds kube-apiserver,
kube-controller-manager and etcd from Go modules (README: the cold and warm times).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.controlplane import ControlPlane
from tests.binaries import require_binary, require_built_or_go
from tests.controlplane.support import kubectl


@pytest.fixture(scope="session")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A running control plane for the session; stopped (SIGTERM) at the end, exit 0 asserted."""
    require_binary("kubectl")
    require_built_or_go("etcd", "kube-apiserver", "kube-controller-manager")
    workdir: Path = tmp_path_factory.mktemp("controlplane")
    plane = ControlPlane.start(workdir=workdir, backoff_scale=0.1)
    try:
        yield plane
    finally:
        status = plane.stop()
        assert status == 0, "scripts/controlplane.sh did not exit 0:\n" + "\n".join(
            plane.output[-20:]
        )


@pytest.fixture
def namespace(controlplane: ControlPlane) -> Iterator[str]:
    """A fresh namespace for one test, deleted after it (the namespace controller empties it)."""
    name = "t-" + uuid.uuid4().hex[:8]
    kubectl(controlplane, "create", "namespace", name)
    yield name
    kubectl(controlplane, "delete", "namespace", name, "--wait=false", check=False)
