"""Section 6 with every kind of evidence at once, against a real Prometheus.

A Deployment with five older revisions and a current one:

    r1  S  stamped auto-rollback/healthy-since           -> healthy (stamp)
    r2  C  ran an hour, no Prometheus data                -> healthy (cluster rule)
    r4  X  marked auto-rollback/bad-revision              -> bad (mark)
    r5  P  re-adopted (revision-history 3), Prometheus    -> healthy (Prometheus only: a
           shows its pods ready and no trigger alert         re-adopted revision's age proves
                                                             nothing)
    r6  N  current, alerting
    (r3 was P before its re-adoption)

The target is the newest older revision with evidence, r5; with Prometheus down it degrades to
r2 and says so. The Prometheus is the real Debian binary, its history backfilled with
`promtool tsdb create-blocks-from openmetrics` (series shaped as kube-state-metrics exports them).
Also here: confirmation (`not_confirmed` when the alert's expression no longer holds).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.pipeline.processes import ManagedProcess, free_port
from lab.receiver_harness import Harness, hours, minutes, now
from sandbox.store import parse_time
from sandbox.testing import SandboxHandle
from tests.binaries import require_binary
from webhook.revisions import format_k8s_time

IMAGES = [
    ("S", hours(8)),
    ("C", hours(7)),
    ("P", hours(6)),
    ("X", hours(5)),
    ("P", hours(4)),
    ("N", minutes(5)),
]


def openmetrics(*, replicaset_p: str, end: datetime) -> str:
    """15 s samples for P's two pods (owner + ready) over the 30 minutes before `end`, and a
    `rollback_test_condition` series up to now for confirmation."""
    lines = []
    start = end - timedelta(minutes=30)
    t = start
    while t <= end:
        ts = f"{t.timestamp():.3f}"
        for pod in (f"{replicaset_p}-aaaaa", f"{replicaset_p}-bbbbb"):
            lines.append(
                f'kube_pod_owner{{namespace="shop",pod="{pod}",owner_kind="ReplicaSet",'
                f'owner_name="{replicaset_p}",owner_is_controller="true"}} 1 {ts}'
            )
            lines.append(
                f'kube_pod_status_ready{{namespace="shop",pod="{pod}",condition="true"}} 1 {ts}'
            )
        t += timedelta(seconds=15)
    t = now() - timedelta(minutes=20)
    while t <= now():
        lines.append(f'rollback_test_condition{{deployment="web"}} 1 {t.timestamp():.3f}')
        t += timedelta(seconds=15)
    # OpenMetrics wants one metric family's samples together.
    lines.sort(key=lambda line: line.split("{", 1)[0])
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture
def world(sandbox: SandboxHandle, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The Deployment, its marks, and a Prometheus holding P's history."""
    promtool = require_binary("promtool")
    prometheus = require_binary("prometheus")
    builder = Harness(sandbox, tmp_path)
    rs = builder.deploy("web", IMAGES)  # ordered by revision: S C X P N (P re-adopted as r5)
    by_image = {
        r["spec"]["template"]["spec"]["containers"][0]["image"]: r["metadata"]["name"]
        for r in builder.replicasets("shop", "web")
    }
    assert len(rs) == 5
    api = builder.official()
    stamp = format_k8s_time(now() - hours(7.5))
    api.patch_namespaced_replica_set(
        by_image["S"], "shop", {"metadata": {"annotations": {"auto-rollback/healthy-since": stamp}}}
    )
    api.patch_namespaced_replica_set(
        by_image["X"], "shop", {"metadata": {"annotations": {"auto-rollback/bad-revision": "{}"}}}
    )
    current = builder.replicasets("shop", "web")[-1]
    end = parse_time(current["metadata"]["creationTimestamp"])
    data = tmp_path / "tsdb"
    source = tmp_path / "history.om"
    source.write_text(openmetrics(replicaset_p=by_image["P"], end=end))
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 15s}\n")
    port = free_port()
    process = ManagedProcess(
        "prometheus",
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
        ],
        log_path=tmp_path / "prometheus.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        process.wait_ready(f"{url}/-/ready", timeout=30)
        yield {"url": url, "rs": by_image, "current": current["metadata"]["name"]}
    finally:
        process.stop()


def harness_with(sandbox: SandboxHandle, tmp_path: Path, url: str, **prometheus: Any) -> Harness:
    folder = tmp_path / f"svc-{len(list(tmp_path.glob('svc-*')))}"
    folder.mkdir()
    return Harness(
        sandbox, folder, prometheus={"url": url, "timeout_seconds": 3, "retries": 0, **prometheus}
    )


def test_target_is_newest_revision_with_evidence_prometheus_outranks_age(
    world: dict[str, Any], sandbox: SandboxHandle, tmp_path: Path
) -> None:
    harness = harness_with(sandbox, tmp_path, world["url"], confirm=False)
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=world["current"])
    )
    assert decision["outcome"] == "rolled_back", decision
    assert decision["to_replicaset"] == world["rs"]["P"] and decision["to_revision"] == 5
    assert (
        "prometheus: every pod" in decision["detail"]
        and "Prometheus: every" not in decision["detail"]
    )


def test_prometheus_down_degrades_to_cluster_rule_and_says_so(
    world: dict[str, Any], sandbox: SandboxHandle, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    harness = harness_with(sandbox, tmp_path, closed, confirm=False)
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=world["current"])
    )
    assert decision["outcome"] == "rolled_back", decision
    assert decision["to_replicaset"] == world["rs"]["C"] and decision["to_revision"] == 2
    assert "r5 unproven" in decision["detail"] and "no Prometheus evidence" in decision["detail"]


def run_history(world: dict[str, Any], sandbox: SandboxHandle, tmp_path: Path, *extra: str) -> str:
    config = tmp_path / "history.yaml"
    config.write_text(yaml.safe_dump({"prometheus": {"url": world["url"], "retries": 0}}))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook",
            "history",
            "shop/web",
            "--config",
            str(config),
            "--kubeconfig",
            str(sandbox.kubeconfig),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_history_json_orders_revisions_and_names_the_pick(
    world: dict[str, Any], sandbox: SandboxHandle, tmp_path: Path
) -> None:
    history = json.loads(run_history(world, sandbox, tmp_path, "--json"))
    rows = {r["revision"]: r for r in history["revisions"]}
    assert list(rows) == [6, 5, 4, 2, 1]
    assert rows[6]["verdict"] == "current"
    assert rows[5]["verdict"] == "healthy" and rows[5]["evidence"].startswith("prometheus:")
    assert any(m.startswith("re-adopted from 3") for m in rows[5]["marks"])
    assert rows[4]["verdict"] == "bad" and "bad-revision" in rows[4]["marks"]
    assert rows[2]["verdict"] == "healthy" and rows[2]["evidence"].startswith("cluster:")
    assert rows[1]["verdict"] == "healthy" and rows[1]["evidence"].startswith("stamp:")
    assert history["rollback_target"]["revision"] == 5
    assert history["rollback_target"]["replicaset"] == world["rs"]["P"]


def test_history_table_for_people(
    world: dict[str, Any], sandbox: SandboxHandle, tmp_path: Path
) -> None:
    table = run_history(world, sandbox, tmp_path)
    lines = table.splitlines()
    assert lines[0] == "shop/web"
    assert lines[1].split()[:3] == ["REV", "REPLICASET", "IMAGES"]
    revisions = [line.split()[0] for line in lines[2:-1] if not line.startswith("(")]
    assert revisions == ["6", "5", "4", "2", "1"]
    assert lines[-1] == f"a rollback now would pick revision 5 ({world['rs']['P']})"


@pytest.mark.parametrize(
    ("expr", "outcome"),
    [
        ('rollback_test_condition{deployment="web"} > 0', ("rolled_back", None)),
        ('rollback_test_condition{deployment="web"} > 5', ("skipped", "not_confirmed")),
    ],
)
def test_confirmation_reevaluates_the_alert_expression(
    world: dict[str, Any],
    sandbox: SandboxHandle,
    tmp_path: Path,
    expr: str,
    outcome: tuple[str, str | None],
) -> None:
    from urllib.parse import quote

    harness = harness_with(sandbox, tmp_path, world["url"])
    alert = harness.alert(namespace="shop", deployment="web", replicaset=world["current"])
    alert["generatorURL"] = f"http://prometheus:9090/graph?g0.expr={quote(expr)}&g0.tab=1"
    [decision] = harness.post_alerts(alert)
    assert (decision["outcome"], decision["reason"]) == outcome, decision
    row = harness.audit_row(decision["id"])
    assert row["reason"] == outcome[1]
    if outcome[1] == "not_confirmed":
        assert "no longer confirms" in row["detail"]
