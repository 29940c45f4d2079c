"""The storm benchmark's correctness checks on the real control plane (benchmarks/storm.py
--cluster controlplane), at a small size, on the session's control plane: duplicated alerts
from 8 concurrent clients at `serve` as it runs in the pod, authenticated as the shipped
ServiceAccount with the shipped RBAC, roll every bad Deployment back exactly once (one decision,
one template write: generation 3; the real controller re-adopts revision 1 as revision 3, no
revision 4; one bad mark naming that decision) and lose no decision (every alert answered and
audited). No timing is asserted; the figures are the benchmark's."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from benchmarks.storm import DEFAULT_BREAKER, Case, run_case
from lab.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane

# A repeat after the rollback is decided from the cluster, never written again.
REPEATS = {"rolled_back", "not_current_revision", "cooldown"}


def case(deployments: int, *, alerts_per_deployment: int, default_breaker: bool = False) -> Case:
    # A prefix of its own: the session's control plane is shared with the other suites.
    return Case(
        deployments,
        alerts_per_deployment=alerts_per_deployment,
        default_breaker=default_breaker,
        cluster="controlplane",
        prefix="storm-" + uuid.uuid4().hex[:6],
    )


def test_storm_on_the_control_plane_rolls_every_bad_deployment_back_once_and_loses_no_decision(
    controlplane: ControlPlane, tmp_path: Path
) -> None:
    result = run_case(case(5, alerts_per_deployment=10), workdir=tmp_path, plane=controlplane)
    assert result.failures == []
    assert (result.lost, result.double) == (0, 0)
    assert result.rolled_back == 5
    assert result.alerts == 50 and sum(result.outcomes.values()) == 50
    assert set(result.outcomes) <= REPEATS, result.outcomes
    # Counted by the apiserver itself: a rollback costs requests, a repeat at least a read.
    assert result.api_requests_per_decision is not None
    assert result.api_requests_per_decision >= 1, result.api_requests_per_decision


def test_storm_on_the_control_plane_stops_at_the_shipped_breaker(
    controlplane: ControlPlane, tmp_path: Path
) -> None:
    # Two more bad Deployments than the breaker allows: exactly 5 rolled back, the other two
    # left on revision 2 untouched (check_revisions), every alert still decided and audited.
    result = run_case(
        case(DEFAULT_BREAKER + 2, alerts_per_deployment=6, default_breaker=True),
        workdir=tmp_path,
        plane=controlplane,
    )
    assert result.failures == []
    assert (result.lost, result.double) == (0, 0)
    assert result.rolled_back == DEFAULT_BREAKER
    assert result.alerts == 42 and sum(result.outcomes.values()) == 42
    assert "circuit_open" in result.outcomes, result.outcomes
