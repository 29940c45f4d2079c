"""Least privilege proven by traffic: the receiver and tracker suites run against sandboxes with
their request record on; the (verb, group, resource) set the service used must be exactly what
the shipped ClusterRole (and Lease Role) grant, and what the namespaced variant's Roles grant.

The test's own requests (kubectl, fixture reads and writes) carry the sandbox's own token and are
left out; the service and tracker use tokens of their own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.binaries import require_built_or_go
from tests.conftest import RECORD_DIR_ENV
from tests.deploy.rbac import granted, used
from tests.deploy.render import DEPLOY, REPO, Obj, render
from tests.deploy.test_rbac import WRITES_ROLLBACKS

SUITES = ("tests/receiver", "tests/tracker", "tests/evidence")


# Non-resource URLs every authenticated identity may GET (the default system:discovery and
# system:public-info-viewer bindings): not part of the service's own grants.
DISCOVERY = re.compile(r"^/(version|api|apis)(/[^/]+){0,2}/?$")


def service_traffic(record_dir: Path) -> list[dict]:
    """Requests made with a token other than the test's own (and not anonymous)."""
    rows = []
    for path in sorted(record_dir.glob("*.json")):
        dump = json.loads(path.read_text())
        rows += [e for e in dump["entries"] if e["token"] not in (dump["test_token"], None)]
    return rows


def test_granted_permissions_are_exactly_the_ones_the_service_uses(
    rendered: dict[str, list[Obj]], tmp_path: Path
) -> None:
    env = {**os.environ, RECORD_DIR_ENV: str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SUITES],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    rows = service_traffic(tmp_path)
    assert len(rows) > 100, "the suites made almost no service requests: record not collected?"
    non_resource = {r["path"] for r in rows if not r["resource"]}
    assert all(DISCOVERY.match(p) for p in non_resource), sorted(non_resource)
    needed = used(r for r in rows if r["resource"])
    for overlay in ("enforce", "dry-run", "namespaced"):
        # A watch-only install never writes a rollback: only that permission is left out.
        expected = needed - WRITES_ROLLBACKS if overlay == "dry-run" else needed
        assert granted(rendered[overlay]) == expected, (
            f"{overlay}: granted but unused: {sorted(granted(rendered[overlay]) - expected)}; "
            f"used but not granted: {sorted(expected - granted(rendered[overlay]))}"
        )
    assert WRITES_ROLLBACKS <= needed


# The GitOps suites: the pause/resume traffic of the control-plane tests (the service as the
# gitops overlay's ServiceAccount, requests recorded by tests/gitops/controlplane_support.py)
# and the sandbox ones (owners the default handling needs no object of).
GITOPS_SUITES = ("tests/gitops",)


@pytest.mark.controlplane
def test_the_gitops_overlay_adds_exactly_what_pausing_owners_uses(tmp_path: Path) -> None:
    require_built_or_go("etcd", "kube-apiserver", "kube-controller-manager")
    env = {**os.environ, RECORD_DIR_ENV: str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *GITOPS_SUITES],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    rows = service_traffic(tmp_path)
    needed = used(r for r in rows if r["resource"])
    enforce = granted(render(DEPLOY / "overlays" / "enforce"))
    gitops = granted(render(DEPLOY / "overlays" / "gitops"))
    extra = {
        ("get", "argoproj.io", "applications"),
        ("patch", "argoproj.io", "applications"),
        ("get", "helm.toolkit.fluxcd.io", "helmreleases"),
        ("patch", "helm.toolkit.fluxcd.io", "helmreleases"),
    }
    # The overlay adds to enforce exactly what the GitOps traffic used beyond it.
    assert gitops - enforce == needed - enforce == extra, (
        f"granted beyond enforce: {sorted(gitops - enforce)}; "
        f"used beyond enforce: {sorted(needed - enforce)}"
    )
    assert gitops >= enforce
    # No other overlay grants them: the extra verbs come only with the handling that uses them.
    for overlay in ("enforce", "dry-run", "namespaced"):
        assert not granted(render(DEPLOY / "overlays" / overlay)) & extra
