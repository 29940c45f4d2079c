"""Times are converted to UTC, never relabelled: an alert stamped 05:04:41-10:00 started at
15:04:41Z, and every mark the service writes (alerted-at, bad-revision, last-action, Events)
is UTC even when its clock is in another zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from lab.receiver_harness import Harness, hours, minutes, template_images
from sandbox.testing import SandboxHandle
from tests.tracker.support import rs_annotations
from webhook.alerts import parse_payload
from webhook.app import create_app
from webhook.auth import Credentials
from webhook.runtime import build_service

HONOLULU = timezone(timedelta(hours=-10))


def in_honolulu(when: datetime) -> str:
    """`when` as RFC 3339 in -10:00 (05:04:41-10:00 style)."""
    return when.astimezone(HONOLULU).isoformat(timespec="seconds")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_alert_at_minus_ten_hours_is_recorded_in_utc(harness: Harness) -> None:
    # One revision only, current for two minutes: the alert is skipped (no older revision),
    # and the receiver records alerted-at on it.
    [rs1] = harness.deploy("web", [("web:1", minutes(2))])
    started = (datetime.now(UTC) - minutes(1)).replace(microsecond=0)
    alert = harness.alert(namespace="shop", deployment="web", replicaset=rs1)
    alert["startsAt"] = in_honolulu(started)
    assert alert["startsAt"].endswith("-10:00")
    [decision] = harness.post_alerts(alert)
    # Read as local time labelled Z it would be ten hours before the revision existed.
    assert decision["reason"] == "no_healthy_revision", decision
    assert parse(decision["starts_at"]) == started
    marked = rs_annotations(harness, rs1)["auto-rollback/alerted-at"]
    assert marked == started.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert harness.audit_row(decision["id"])["starts_at"].startswith(
        started.strftime("%Y-%m-%dT%H:%M:%S")
    )


def test_fixed_example_05_04_41_minus_ten(harness: Harness) -> None:
    alert = harness.alert(namespace="shop", deployment="web")
    alert["startsAt"] = "2026-12-01T05:04:41-10:00"
    [parsed] = parse_payload(harness.payload(alert)).alerts
    assert parsed.starts_at == datetime(2026, 12, 1, 15, 4, 41, tzinfo=UTC)
    assert parsed.starts_at.utcoffset() == timedelta(0)


def test_marks_written_by_a_clock_in_another_zone_are_utc(
    sandbox: SandboxHandle, harness: Harness
) -> None:
    _, rs2 = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    service = build_service(
        harness.settings,
        api_client=sandbox.api_client("service-account-rollback-webhook"),
        clock=lambda: datetime.now(HONOLULU),
    )
    client = create_app(service, credentials=Credentials.load(harness.settings)).test_client()
    alert = harness.alert(namespace="shop", deployment="web", replicaset=rs2)
    alert["startsAt"] = in_honolulu(datetime.now(UTC) - minutes(1))
    before = datetime.now(UTC).replace(microsecond=0)
    response = client.post(
        "/api/v1/alerts",
        data=json.dumps(harness.payload(alert)),
        headers={"Authorization": "Bearer receiver-secret-token"},
        content_type="application/json",
    )
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert response.status_code == 200, response.get_json()
    [decision] = response.get_json()["decisions"]
    assert decision["outcome"] == "rolled_back", decision
    assert template_images(harness.deployment("shop", "web")) == ["web:1"]

    def near_now(text: str) -> None:
        assert text.endswith("Z"), text
        assert before <= parse(text) <= after, (text, before, after)

    bad = json.loads(rs_annotations(harness, rs2)["auto-rollback/bad-revision"])
    near_now(bad["time"])
    deployment = harness.deployment("shop", "web")
    last = json.loads(deployment["metadata"]["annotations"]["auto-rollback/last-action"])
    near_now(last["time"])
    [event] = [e for e in harness.events("shop") if e["reason"] == "AutoRollback"]
    near_now(event["lastTimestamp"])
