"""The storm benchmark's correctness checks at a small size (benchmarks/storm.py): a storm of
duplicated alerts from 8 concurrent clients, against serve as it runs in the pod (gunicorn
master, worker, tracker process) and a sandbox process, rolls every bad Deployment back exactly
once and loses no decision. No timing is asserted: this machine is shared, and the latency
figures are the benchmark's, read as ratios within one run."""

from __future__ import annotations

from pathlib import Path

from benchmarks.storm import Case, run_case


def test_storm_rolls_every_bad_deployment_back_once_and_loses_no_decision(
    tmp_path: Path,
) -> None:
    case = Case(12, alerts_per_deployment=10)  # two namespaces, 120 alerts, ~5 payloads
    result = run_case(case, workdir=tmp_path)
    assert result.failures == []
    assert (result.lost, result.double) == (0, 0)
    assert result.rolled_back == 12
    assert result.alerts == 120 and sum(result.outcomes.values()) == 120
    # A repeat after the rollback is decided from the cluster, never written again.
    assert set(result.outcomes) <= {"rolled_back", "not_current_revision", "cooldown"}, (
        result.outcomes
    )
