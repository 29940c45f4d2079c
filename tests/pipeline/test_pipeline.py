"""Sandbox /metrics -> real prometheus -> real alertmanager -> receiver -> rollback.

The shipped rules (rendered with short `for:` and intervals) and the shipped route carry each
alert; the receiver decides with its default policy and reads the real Prometheus.
"""

from __future__ import annotations

import functools
import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.pipeline import Workload
from tests.pipeline.conftest import (
    DRY_RUN,
    HEALTHY,
    NOT_OPTED_IN,
    RETRY,
    RETRY_FAULT_PATH,
    TRIGGER_WORKLOADS,
    V1,
    V2,
    Run,
)
from tests.rules.support import dashboard_queries
from webhook import contract

ALERTNAMES = {
    "restart_rate": "RolloutRestartRateHigh",
    "oomkilled": "RolloutOOMKilled",
    "p99_latency": "RolloutP99LatencyRegressed",
}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _outcomes(rows: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(r["outcome"], r["reason"]) for r in rows]


def _writes(run: Run, workload: Workload) -> list[tuple[str, str]]:
    """(method, resource) of every write the receivers sent for the workload's namespace."""
    return [
        (entry["method"], entry["resource"])
        for entry in run.pipeline.sandbox.controls.requests()
        if entry["namespace"] == workload.namespace and entry["method"] in WRITES
    ]


def _answered(run: Run, code: str) -> float:
    """How many alert payloads the main receiver answered with `code` (its own /metrics)."""
    url = run.pipeline.receiver.url.replace("/api/v1/alerts", "/metrics")
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "rollback_webhook_payloads_total"
        and sample.labels == {"endpoint": "alerts", "code": code}
    )


def _assert_untouched(run: Run, workload: Workload) -> None:
    sandbox = run.pipeline.sandbox
    assert workload.images(sandbox) == [V2]
    annotations = workload.deployment(sandbox)["metadata"].get("annotations") or {}
    assert contract.ANNOTATION_LAST_ACTION not in annotations
    for rs in workload.replicasets(sandbox):
        assert contract.ANNOTATION_BAD_REVISION not in rs["metadata"].get("annotations", {})


@pytest.mark.pipeline
@pytest.mark.parametrize("trigger", ["restart_rate", "oomkilled", "p99_latency"])
def test_bad_revision_is_rolled_back_once_to_the_last_healthy_one(run: Run, trigger: str) -> None:
    workload = TRIGGER_WORKLOADS[trigger]
    sandbox = run.pipeline.sandbox
    good = workload.replicaset_for(sandbox, V1)["metadata"]["name"]
    bad = workload.replicaset_for(sandbox, V2)["metadata"]["name"]
    run.wait_for(
        f"{workload.namespace} rolled back to {V1}", lambda: workload.images(sandbox) == [V1]
    )
    # A later notification (the resolved one) reaches the receiver and changes nothing.
    run.wait_for(
        f"a second notification for {workload.namespace}",
        lambda: len(run.decisions(workload)) >= 2,
    )
    rows = run.decisions(workload)
    rolled = [r for r in rows if r["outcome"] == contract.ROLLED_BACK]
    assert len(rolled) == 1, _outcomes(rows)
    decision = rolled[0]
    assert decision["alertname"] == ALERTNAMES[trigger]
    assert decision["trigger"] == trigger
    assert decision["source"] == "alertmanager"
    assert (decision["from_replicaset"], decision["to_replicaset"]) == (bad, good)
    if trigger == "oomkilled":
        # V1_5 came between V1 and V2 but ran three minutes: the target skipped it for V1.
        assert decision["from_revision"] == 3 and decision["to_revision"] == 1
        assert "r2 unproven" in decision["detail"]
    assert workload.images(sandbox) == [V1]
    mark = json.loads(
        workload.replicaset_for(sandbox, V2)["metadata"]["annotations"][
            contract.ANNOTATION_BAD_REVISION
        ]
    )
    assert mark["trigger"] == trigger
    assert mark["alertname"] == ALERTNAMES[trigger]
    action = json.loads(
        workload.deployment(sandbox)["metadata"]["annotations"][contract.ANNOTATION_LAST_ACTION]
    )
    assert action["audit_id"] == decision["id"]


@pytest.mark.pipeline
def test_healthy_rollout_is_left_alone(run: Run) -> None:
    sandbox = run.pipeline.sandbox
    slowest = TRIGGER_WORKLOADS["restart_rate"]
    # Judge only after the slowest trigger has had its time: the healthy revision was out as
    # long as that one.
    run.wait_for("the restart-rate rollback", lambda: slowest.images(sandbox) == [V1])
    assert HEALTHY.images(sandbox) == [V2]
    assert run.decisions(HEALTHY) == []
    assert run.pipeline.alert_states(HEALTHY.namespace, HEALTHY.name) == {}
    assert _writes(run, HEALTHY) == []


@pytest.mark.pipeline
def test_deployment_without_opt_in_is_not_touched(run: Run) -> None:
    run.wait_for("a decision for pl-optout", lambda: bool(run.decisions(NOT_OPTED_IN)))
    rows = run.decisions(NOT_OPTED_IN)
    first = rows[0]
    assert (first["outcome"], first["reason"]) == (contract.SKIPPED, "not_opted_in")
    assert first["alertname"] == "RolloutOOMKilled"
    assert contract.ANNOTATION_ENABLED in first["detail"]
    assert all(r["outcome"] != contract.ROLLED_BACK for r in rows)
    _assert_untouched(run, NOT_OPTED_IN)
    assert _writes(run, NOT_OPTED_IN) == []


@pytest.mark.pipeline
def test_dry_run_receiver_records_the_rollback_it_would_write(run: Run) -> None:
    sandbox = run.pipeline.sandbox
    run.wait_for("a decision for pl-dryrun", lambda: bool(run.decisions(DRY_RUN, dry_run=True)))
    first = run.decisions(DRY_RUN, dry_run=True)[0]
    assert first["outcome"] == contract.DRY_RUN
    assert first["alertname"] == "RolloutOOMKilled"
    assert first["dry_run"] is True
    assert first["to_replicaset"] == DRY_RUN.replicaset_for(sandbox, V1)["metadata"]["name"]
    # The alert went to the watch-only receiver only.
    assert run.decisions(DRY_RUN) == []
    _assert_untouched(run, DRY_RUN)
    # Only the AutoRollbackDryRun Event is written: nothing on the Deployment or ReplicaSets.
    assert {resource for _, resource in _writes(run, DRY_RUN)} <= {"events"}


@pytest.mark.pipeline
def test_alertmanager_retries_after_a_503_and_the_rollback_happens_once(run: Run) -> None:
    sandbox = run.pipeline.sandbox
    # The rolled_back row is recorded after the Deployment write (and the mark and Event that
    # follow it): wait for both, not for the template alone.
    run.wait_for(
        "pl-retry rolled back and recorded",
        lambda: (
            RETRY.images(sandbox) == [V1]
            and any(r["outcome"] == contract.ROLLED_BACK for r in run.decisions(RETRY))
        ),
    )
    rows = run.decisions(RETRY)
    outcomes = _outcomes(rows)
    assert outcomes[0] == (contract.FAILED, "api_error"), outcomes
    assert outcomes.count((contract.ROLLED_BACK, None)) == 1, outcomes
    failed, rolled = rows[0], next(r for r in rows if r["outcome"] == contract.ROLLED_BACK)
    # Two deliveries of the same group: the 503 one and Alertmanager's retry.
    assert failed["payload_id"] != rolled["payload_id"]
    assert failed["group_key"] == rolled["group_key"]
    served = [
        e["status"]
        for e in sandbox.controls.requests()
        if e["method"] == "GET"
        and e["namespace"] == RETRY.namespace
        and e["resource"] == "deployments"
        and e["name"] == RETRY.name
    ]
    assert served[0] == 500, f"the injected fault on {RETRY_FAULT_PATH} was not hit first"
    # What Alertmanager saw: one 503 (it retries 5xx), then success.
    assert _answered(run, "503") == 1


def _firing(run: Run, alertname: str, **labels: str) -> bool:
    matchers = "".join(f', {key}="{value}"' for key, value in labels.items())
    query = f'ALERTS{{alertname="{alertname}", alertstate="firing"{matchers}}}'
    return bool(run.pipeline.query(query))


@pytest.mark.pipeline
def test_self_monitoring_alerts_fire_for_a_rollback_and_a_failed_decision(run: Run) -> None:
    # The pipeline's Prometheus scrapes the receivers and evaluates the shipped monitoring rules:
    # the rollbacks above and pl-retry's first decision (a 500 from the API: failed api_error).
    # One alert per Deployment, naming it (pl-retry/web was rolled back; pl-dryrun/web only
    # announced by the watch-only receiver).
    def rolled_back(workload: Workload, outcome: str) -> bool:
        return _firing(
            run,
            "RollbackWebhookRolledBack",
            outcome=outcome,
            deployment_namespace=workload.namespace,
            deployment=workload.name,
        )

    for workload, outcome in ((RETRY, "rolled_back"), (DRY_RUN, "dry_run")):
        run.wait_for(
            f"RollbackWebhookRolledBack firing for {workload.namespace}/{workload.name}",
            functools.partial(rolled_back, workload, outcome),
        )
    run.wait_for(
        "RollbackWebhookDecisionFailed firing",
        lambda: _firing(run, "RollbackWebhookDecisionFailed", reason="api_error"),
    )
    assert not _firing(run, "RollbackWebhookDown")


@pytest.mark.pipeline
@pytest.mark.parametrize("query", dashboard_queries())
def test_every_dashboard_query_returns_series_from_the_real_prometheus(
    run: Run, query: str
) -> None:
    run.wait_for(f"series for the dashboard query {query}", lambda: bool(run.pipeline.query(query)))
