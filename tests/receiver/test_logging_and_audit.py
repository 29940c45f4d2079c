"""The record a team keeps (README, audit): one JSON line per decision on stdout, the
SQLite audit in WAL mode, and `audit.retention_days` pruning old decisions and payloads."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.receiver_harness import SERVICE_TOKEN, Harness, hours, minutes
from sandbox.testing import SandboxHandle
from webhook import decision_log
from webhook.audit import AuditStore, SqliteStore
from webhook.config import settings_from_dict
from webhook.decision import Decision, new_id
from webhook.runtime import build_service

# Section 11's decision fields, as the log line names them.
DECISION_FIELDS = {
    "id",
    "time",
    "source",
    "actor",
    "group_key",
    "fingerprint",
    "alertname",
    "trigger",
    "labels",
    "starts_at",
    "namespace",
    "deployment",
    "from_revision",
    "to_revision",
    "outcome",
    "reason",
    "detail",
    "dry_run",
    "overrides",
    "replay_of",
    "duration_ms",
}

REPO = Path(__file__).resolve().parents[2]

# A receiver in a process of its own, as `serve` runs it: settings from a file, the cluster from
# the kubeconfig, one payload from stdin. Its stdout is exactly what a log collector would read.
RECEIVER_PROCESS = """
import sys
from webhook.config import load_settings
from webhook.runtime import build_service

service = build_service(load_settings(sys.argv[1]))
service.receive(sys.stdin.read(), source="alertmanager", actor="alertmanager")
"""


def run_receiver_process(sandbox: SandboxHandle, tmp_path: Path, payload: Any) -> list[str]:
    """Decide `payload` in a separate process; returns its stdout lines."""
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "audit": {"path": str(tmp_path / "audit.sqlite")},
                "auth": {"receiver": {"bearer_token_file": str(tmp_path / "token")}},
                "kubernetes": {"kubeconfig": str(sandbox.kubeconfig), "timeout_seconds": 5},
                "tracker": {"enabled": False},
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-c", RECEIVER_PROCESS, str(config)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # This work tree's code, whatever else `webhook` resolves to on the machine.
        cwd=REPO,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        },
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_each_decision_is_one_json_line_on_stdout(
    harness: Harness, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    payload = harness.payload(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1]),
        harness.alert(status="resolved", namespace="shop", deployment="web"),
        harness.alert(trigger="cpu", namespace="shop", deployment="web"),
    )
    lines = run_receiver_process(sandbox, tmp_path, payload)
    # Nothing but decision lines on stdout: a collector parses every line as JSON.
    records = [json.loads(line) for line in lines]
    assert len(records) == 3, lines
    assert all(record["event"] == "decision" for record in records)
    for record in records:
        missing = DECISION_FIELDS - set(record)
        assert not missing, f"log line lacks {sorted(missing)}: {record}"
    rolled, resolved, unknown = records
    assert (rolled["outcome"], rolled["reason"]) == ("rolled_back", None)
    assert (rolled["from_revision"], rolled["to_revision"]) == (2, 1)
    assert (rolled["namespace"], rolled["deployment"]) == ("shop", "web")
    assert rolled["trigger"] == "restart_rate" and rolled["alertname"] == "RollbackRestartRate"
    assert rolled["labels"] == payload["alerts"][0]["labels"]
    assert rolled["fingerprint"] == payload["alerts"][0]["fingerprint"]
    assert rolled["group_key"] == payload["groupKey"]
    assert (rolled["source"], rolled["actor"], rolled["dry_run"]) == (
        "alertmanager",
        "alertmanager",
        False,
    )
    assert rolled["overrides"] == {} and rolled["replay_of"] is None
    assert datetime.fromisoformat(rolled["time"]).tzinfo is not None
    assert datetime.fromisoformat(rolled["starts_at"]) == datetime.fromisoformat(
        payload["alerts"][0]["startsAt"].replace("Z", "+00:00")
    )
    assert isinstance(rolled["duration_ms"], int | float) and rolled["duration_ms"] >= 0
    assert (resolved["outcome"], resolved["reason"]) == ("skipped", "resolved")
    assert (unknown["outcome"], unknown["reason"]) == ("skipped", "unknown_trigger")
    # The line and the durable record say the same thing about the same decision.
    audit = SqliteStore(tmp_path / "audit.sqlite")
    for record in records:
        row = audit.get(record["id"])
        assert row is not None, record["id"]
        for key in ("outcome", "reason", "detail", "labels", "from_revision", "to_revision"):
            assert row[key] == record[key], key


def test_decision_lines_follow_the_current_stdout(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    [decision] = harness.post_alerts(harness.alert(namespace="shop", deployment="web"))
    decision_log.flush()  # lines are written by the log's own thread, off the request's
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["id"] for line in lines] == [decision["id"]]


def test_audit_database_is_in_wal_mode(harness: Harness) -> None:
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.post_alerts(harness.alert(namespace="shop", deployment="web"))
    path = harness.tmp_path / "audit.sqlite"
    # A fresh connection reads the mode stored in the file, not one set on this connection.
    db = sqlite3.connect(path)
    try:
        [mode] = db.execute("PRAGMA journal_mode").fetchone()
    finally:
        db.close()
    assert mode == "wal"


# -- retention ----------------------------------------------------------------------------------
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def stored(audit: AuditStore, *, age: timedelta, name: str) -> tuple[str, str]:
    """A payload and its decision, both `age` old; returns (payload id, decision id)."""
    when = NOW - age
    payload_id = audit.store_payload(
        json.dumps({"groupKey": name, "alerts": []}),
        received_at=when,
        source="alertmanager",
        group_key=name,
    )
    decision = Decision(
        id=new_id(when),
        time=when,
        source="alertmanager",
        outcome="skipped",
        reason="resolved",
        payload_id=payload_id,
        namespace="shop",
        deployment=name,
    )
    audit.record(decision)
    return payload_id, decision.id


def test_prune_removes_decisions_and_payloads_past_retention_and_keeps_recent(
    tmp_path: Path,
) -> None:
    audit = SqliteStore(tmp_path / "audit.sqlite")
    old = stored(audit, age=timedelta(days=91), name="old")
    older = stored(audit, age=timedelta(days=400), name="older")
    recent = stored(audit, age=timedelta(days=89), name="recent")
    today = stored(audit, age=timedelta(minutes=5), name="today")

    removed = audit.prune(retention_days=90, now=NOW)

    assert removed == 4  # two decisions and their two payloads
    for payload_id, decision_id in (old, older):
        assert audit.get(decision_id) is None
        assert audit.payload(payload_id) is None
    for payload_id, decision_id in (recent, today):
        assert audit.get(decision_id) is not None
        assert audit.payload(payload_id) is not None
    assert [row["deployment"] for row in audit.query()] == ["today", "recent"]
    # Nothing more to remove: pruning again is a no-op.
    assert audit.prune(retention_days=90, now=NOW) == 0


def test_prune_follows_the_configured_days(tmp_path: Path) -> None:
    audit = SqliteStore(tmp_path / "audit.sqlite")
    week = stored(audit, age=timedelta(days=8), name="week")
    day = stored(audit, age=timedelta(hours=20), name="day")
    assert audit.prune(retention_days=30, now=NOW) == 0
    assert audit.prune(retention_days=7, now=NOW) == 2
    assert audit.get(week[1]) is None and audit.get(day[1]) is not None


def test_pruned_rows_are_gone_for_another_store_on_the_same_file(tmp_path: Path) -> None:
    # Replicas (gunicorn workers) share the file: a prune by one is seen by another's store.
    writer = SqliteStore(tmp_path / "audit.sqlite")
    reader = SqliteStore(tmp_path / "audit.sqlite")
    old = stored(writer, age=timedelta(days=100), name="old")
    assert reader.get(old[1]) is not None
    writer.prune(retention_days=90, now=NOW)
    assert reader.get(old[1]) is None and reader.payloads() == []


def test_running_receiver_applies_retention_on_first_payload_and_keeps_doing_so(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    # A long-running receiver: its clock is moved forward a day between deliveries.
    (tmp_path / "token").write_text("t")
    settings = settings_from_dict(
        {
            "audit": {"path": str(tmp_path / "audit.sqlite"), "retention_days": 30},
            "auth": {"receiver": {"bearer_token_file": str(tmp_path / "token")}},
        }
    )
    clock = [NOW]
    service = build_service(
        settings, api_client=sandbox.api_client(SERVICE_TOKEN), clock=lambda: clock[0]
    )
    expired = stored(service.audit, age=timedelta(days=31), name="expired")
    young = stored(service.audit, age=timedelta(days=29, hours=12), name="young")
    resolved = Harness.payload(Harness.alert(status="resolved", namespace="shop", deployment="w"))

    [first] = service.receive(json.dumps(resolved)).decisions
    assert service.audit.get(expired[1]) is None and service.audit.payload(expired[0]) is None
    assert service.audit.get(young[1]) is not None
    assert service.audit.get(first.id) is not None

    clock[0] = NOW + timedelta(days=1)  # `young` is now 30.5 days old
    service.receive(json.dumps(resolved))
    assert service.audit.get(young[1]) is None and service.audit.payload(young[0]) is None
    assert service.audit.get(first.id) is not None
