"""The receiver on payloads recorded from a real Alertmanager 0.35 (tests/receiver/recorded/).

They carry fields Alertmanager added after 0.25 (notification_reason, routeLabels): the receiver
ignores what it does not use and decides on the rest as for any payload.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab.receiver_harness import Harness, hours, minutes, now, template_images
from webhook.alerts import parse_payload

RECORDED = Path(__file__).resolve().parent / "recorded"
FIRING = RECORDED / "alertmanager-0.35-firing.json"
RESOLVED = RECORDED / "alertmanager-0.35-resolved.json"


def recorded(path: Path, *, replicaset: str, started: str) -> dict[str, Any]:
    """The recorded body with the revision and start time of this test's Deployment."""
    document: dict[str, Any] = json.loads(path.read_text())
    for alert in document["alerts"]:
        alert["labels"]["replicaset"] = replicaset
        alert["labels"].pop("cluster")
        alert["startsAt"] = started
    document["commonLabels"]["replicaset"] = replicaset
    document["commonLabels"].pop("cluster")
    return document


@pytest.mark.parametrize("path", [FIRING, RESOLVED], ids=lambda path: path.stem)
def test_recorded_payload_has_the_newer_fields_and_parses(path: Path):
    document = json.loads(path.read_text())
    assert document["version"] == "4"
    assert "notification_reason" in document and "routeLabels" in document
    payload = parse_payload(document)
    assert [alert.labels["rollback_trigger"] for alert in payload.alerts] == ["restart_rate"]
    assert payload.truncated_alerts == 0


def test_recorded_firing_payload_rolls_back_and_resolved_one_is_skipped(harness: Harness):
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    started = (now() - minutes(1)).isoformat().replace("+00:00", "Z")

    response = harness.post(recorded(FIRING, replicaset=rs[1], started=started))
    assert response.status_code == 200
    [decision] = response.get_json()["decisions"]
    assert decision["outcome"] == "rolled_back", decision
    assert template_images(harness.deployment("shop", "web")) == ["web:1"]

    response = harness.post(recorded(RESOLVED, replicaset=rs[1], started=started))
    assert response.status_code == 200
    [decision] = response.get_json()["decisions"]
    assert (decision["outcome"], decision["reason"]) == ("skipped", "resolved")
