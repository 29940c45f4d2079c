"""webhook/prom.py against real components: a loopback socket that never answers (timeouts are
really honoured), and promtool evaluating the PromQL over synthetic series (the queries mean what
the code assumes)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.binaries import require_binary
from tests.unit.prom_stub import NOW
from webhook.prom import PrometheusEvidence
from webhook.promql import alerts_query, readiness_query


def test_timeouts_are_honoured_on_a_silent_socket() -> None:
    """A Prometheus that accepts and never answers costs at most (retries+1) timeouts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    port = server.getsockname()[1]
    prom = PrometheusEvidence(
        f"http://127.0.0.1:{port}",
        timeout_seconds=0.2,
        retries=1,
        clock=lambda: NOW,
        sleep=lambda _: None,
    )
    try:
        began = time.monotonic()
        confirmation = prom.confirm(generator_url="http://p/graph?g0.expr=up", at=NOW)
        elapsed = time.monotonic() - began
        deadline = time.monotonic() + 2
        while len(accepted) < 2 and time.monotonic() < deadline:  # the accept thread may lag
            time.sleep(0.01)
    finally:
        prom.close()
        server.close()
        for conn in accepted:
            conn.close()

    assert confirmation.verdict == "unknown"
    assert "failed after 2 attempts: no answer within 0.2s" in confirmation.detail
    assert len(accepted) == 2  # no hidden retries underneath ours
    # The library's default urllib3 retries (3 more, 1s+ backoff) would blow this bound.
    assert 0.4 <= elapsed < 2.5


@pytest.mark.promtool
def test_queries_mean_what_the_verdicts_assume_under_promtool(tmp_path: Path) -> None:
    """promtool evaluates the exact PromQL over kube-state-metrics-shaped series."""
    promtool = require_binary("promtool")
    owner = (
        'kube_pod_owner{{namespace="shop", pod="{pod}", owner_kind="ReplicaSet", '
        'owner_name="{rs}", instance="{inst}"}}'
    )
    ready = (
        'kube_pod_status_ready{{namespace="shop", pod="{pod}", condition="true", '
        'instance="{inst}"}}'
    )
    series = []
    # 30s samples over 40 minutes; the window is minutes 20..30, evaluated at 30m.
    for rs, pods in {"good": ["g1", "g2"], "flaky": ["f1", "f2"], 'we"ird': ["w1"]}.items():
        for pod in pods:
            for inst in ("ksm-0", "ksm-1"):  # two kube-state-metrics replicas
                esc = rs.replace('"', '\\"')
                series.append(
                    {"series": owner.format(pod=pod, rs=esc, inst=inst), "values": "1x80"}
                )
                values = "1x44 0x4 1x31" if pod == "f2" else "1x80"
                series.append({"series": ready.format(pod=pod, inst=inst), "values": values})
    # "gap": owner data only from minute 25 on; "none": nothing at all.
    series.append({"series": owner.format(pod="p1", rs="gap", inst="ksm-0"), "values": "_x49 1x30"})
    series.append({"series": ready.format(pod="p1", inst="ksm-0"), "values": "_x49 1x30"})
    alert = (
        'ALERTS{{alertname="{name}", alertstate="{state}", namespace="shop", '
        'replicaset="{rs}"{trigger}}}'
    )
    series += [
        {
            "series": alert.format(
                name="KubePodRestarting",
                state="firing",
                rs="flaky",
                trigger=', rollback_trigger="restart_rate"',
            ),
            "values": "_x44 1x4",
        },
        {
            "series": alert.format(
                name="KubePodRestarting",
                state="pending",
                rs="good",
                trigger=', rollback_trigger="restart_rate"',
            ),
            "values": "1x80",
        },
        {
            "series": alert.format(name="Unrelated", state="firing", rs="good", trigger=""),
            "values": "1x80",
        },
    ]

    def readiness(rs: str) -> str:
        return readiness_query(namespace="shop", replicaset=rs, window_seconds=600, step_seconds=30)

    def alerts(rs: str) -> str:
        return alerts_query(namespace="shop", replicaset=rs, window_seconds=600)

    def stats(worst: float, steps: int) -> list[dict[str, object]]:
        return [
            {"labels": '{stat="worst"}', "value": worst},
            {"labels": '{stat="steps"}', "value": steps},
        ]

    # Prometheus 2.x subqueries include the window's left edge: 21 steps of 30s in 600s.
    tests = [
        {"expr": readiness("good"), "eval_time": "30m", "exp_samples": stats(1, 21)},
        {"expr": readiness("flaky"), "eval_time": "30m", "exp_samples": stats(0.5, 21)},
        {"expr": readiness('we"ird'), "eval_time": "30m", "exp_samples": stats(1, 21)},
        {"expr": readiness("gap"), "eval_time": "30m", "exp_samples": stats(1, 12)},
        {"expr": readiness("none"), "eval_time": "30m", "exp_samples": []},
        {"expr": alerts("good"), "eval_time": "30m", "exp_samples": []},
        {
            "expr": alerts("flaky"),
            "eval_time": "30m",
            "exp_samples": [
                {
                    "labels": '{alertname="KubePodRestarting", rollback_trigger="restart_rate"}',
                    "value": 1,
                }
            ],
        },
    ]
    rules = tmp_path / "empty.rules.yml"
    rules.write_text("groups: []\n")
    spec = tmp_path / "prom_test.yml"
    spec.write_text(
        yaml.safe_dump(
            {
                "rule_files": [rules.name],
                "evaluation_interval": "30s",
                "tests": [{"interval": "30s", "input_series": series, "promql_expr_test": tests}],
            },
            width=1000,
        )
    )

    run = subprocess.run(
        [promtool, "test", "rules", spec.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr
