"""The GitOps suites: sandbox fixtures come from tests/conftest.py; the real control plane's
(session control plane, a namespace per test) from tests/controlplane/conftest.py."""

from __future__ import annotations

from tests.controlplane.conftest import controlplane, namespace  # noqa: F401 - fixtures
