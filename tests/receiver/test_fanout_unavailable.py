"""A payload's other groups stop deciding once one has found the audit store unavailable.

The payload is answered 503 (and sent again by Alertmanager) as soon as one of its groups meets
an audit store that cannot be written: deciding its other Deployments would only read the
cluster for decisions that cannot be recorded, and make the 503 wait one busy timeout more per
wave of groups (webhook.service's `decide_texts`, webhook.fanout). Counted without timing: by
the Deployments the service reads in the sandbox's request record.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pytest

from lab.receiver_harness import SERVICE_TOKEN, Harness, hours, minutes, template_images
from webhook.fanout import MAX_PARALLEL_TARGETS

DEPLOYMENTS = [f"app{i:02d}" for i in range(20)]  # more than one wave of groups
_DEPLOYMENT_PATH = re.compile(r"^/apis/apps/v1/namespaces/shop/deployments/([^/]+)$")


def deployments_read(harness: Harness) -> set[str]:
    """The Deployments the service itself asked the API for (the test's own reads left out)."""
    read = set()
    for entry in harness.sandbox.controls.requests():
        found = _DEPLOYMENT_PATH.match(entry["path"])
        if entry["token"] == SERVICE_TOKEN and found:
            read.add(found.group(1))
    return read


def writes(harness: Harness) -> list[dict[str, Any]]:
    return [
        entry
        for entry in harness.sandbox.controls.requests()
        if entry["token"] == SERVICE_TOKEN and entry["method"] not in ("GET", "LIST", "WATCH")
    ]


def test_a_payload_meeting_a_locked_audit_is_503_and_its_groups_not_yet_started_do_not_run(
    make_harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every write waits at most this long for the held file (10 s in production): the first
    # wave's gates fail after it. Which groups run is counted, never timed.
    monkeypatch.setattr("webhook.audit.sqlite.BUSY_TIMEOUT_SECONDS", 1.0)
    harness: Harness = make_harness(max_rollbacks=len(DEPLOYMENTS))  # no breaker on the retry
    alerts = []
    for name in DEPLOYMENTS:
        revisions = harness.deploy(name, [(f"{name}:1", hours(2)), (f"{name}:2", minutes(3))])
        alerts.append(harness.alert(namespace="shop", deployment=name, replicaset=revisions[1]))
    payload = harness.payload(*alerts)
    # A receiver that has run a while: the schema made and the hourly prune done (the first
    # payload's prune would otherwise be what meets the lock, before any group).
    harness.service.prune_if_due()
    harness.sandbox.controls.clear_requests()
    other = sqlite3.connect(harness.tmp_path / "audit.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the audit's write lock
    try:
        response = harness.post(payload)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert response.status_code == 503, response.get_json()
    assert "audit store unavailable" in response.get_json()["error"]
    read = deployments_read(harness)
    # Each group is one Deployment whose rollback must pass the gate, which cannot be written:
    # a pool thread is free again only once its group has failed, and the first failure stops
    # the rest. Without the stop every Deployment is read (and each wave waits its timeout).
    assert 1 <= len(read) <= MAX_PARALLEL_TARGETS < len(DEPLOYMENTS), sorted(read)
    assert writes(harness) == []
    assert harness.service.audit.payloads() == []  # refused whole: sent again
    # Sent again once the store is free: every Deployment is decided, none was left half-way.
    retry = harness.post(payload)
    assert retry.status_code == 200, retry.get_json()
    decisions = retry.get_json()["decisions"]
    assert [d["deployment"] for d in decisions] == DEPLOYMENTS
    assert {d["outcome"] for d in decisions} == {"rolled_back"}, decisions
    for name in DEPLOYMENTS:
        assert template_images(harness.deployment("shop", name)) == [f"{name}:1"]
    assert harness.service.audit.open_intents() == []
