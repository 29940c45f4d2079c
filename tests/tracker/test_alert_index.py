"""The tracker's alert index (webhook.alert_index) answers what `implicates` answers row by
row, and a round reads the namespace's audit once, however many Deployments it holds."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from lab.receiver_harness import Harness, hours, minutes
from tests.tracker.support import FakeClock, tracker_for
from webhook.alert_index import AlertIndex, implicates

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LABELS: list[dict[str, str]] = [
    {},
    {"deployment": "web"},
    {"deployment": "api"},
    {"replicaset": "web-aaa"},
    {"replicaset": "web-bbb", "deployment": "web"},
    {"pod": "web-aaa-x1y2z"},
    {"pod": "web-bbb-x1y2z", "deployment": "web"},
    {"pod": "nodash"},
]


def rows() -> list[dict[str, Any]]:
    """Every combination of labels, from_replicaset, resolved or not, at two times."""
    made = []
    combos = itertools.product(LABELS, [None, "web-aaa", "web-bbb"], ["", "resolved"], [0, 10])
    for number, (labels, from_rs, reason, minute) in enumerate(combos):
        made.append(
            {
                "id": f"d{number:03d}",
                "time": (T0 + timedelta(minutes=minute)).isoformat(),
                "labels": labels,
                "from_replicaset": from_rs,
                "reason": reason,
            }
        )
    return made


def test_index_agrees_with_implicates_for_every_row_and_revision() -> None:
    for row in rows():
        index = AlertIndex()
        index.add(row)
        for deployment, replicaset in itertools.product(["web", "api"], ["web-aaa", "web-bbb"]):
            expected = row["reason"] != "resolved" and implicates(
                row, deployment=deployment, replicaset=replicaset
            )
            found = index.alert_since(deployment=deployment, replicaset=replicaset, since=T0)
            assert (found == row["id"]) is expected, (row, deployment, replicaset)


def test_index_keeps_the_newest_row_and_honours_since() -> None:
    index = AlertIndex()
    for row in rows():
        index.add(row)
    late = T0 + timedelta(minutes=5)
    found = index.alert_since(deployment="web", replicaset="web-aaa", since=late)
    assert found is not None
    assert found > "d000"
    assert index.alert_since(deployment="web", replicaset="web-aaa", since=T0 + hours(1)) is None


class CountingAudit:
    """The real audit, with its queries counted (what the round costs in audit reads)."""

    def __init__(self, audit: Any) -> None:
        self.audit = audit
        self.queries = 0

    def query(self, **kwargs: Any) -> list[dict[str, Any]]:
        self.queries += 1
        found: list[dict[str, Any]] = self.audit.query(**kwargs)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.audit, name)


def test_a_round_queries_the_audit_once_per_namespace(
    make_harness: Callable[..., Harness], clock: FakeClock
) -> None:
    harness = make_harness(dry_run=True)
    names = [f"web{index}" for index in range(6)]
    for name in names:
        harness.deploy(name, [(f"{name}:1", hours(2)), (f"{name}:2", minutes(3))])
    # Alerts about the first Deployment only: the others stay candidates for a stamp.
    for _ in range(3):
        harness.post_alerts(harness.alert(namespace="shop", deployment=names[0]))
    service = harness.service
    audit = CountingAudit(service.audit)
    tracker = tracker_for(harness, clock)
    tracker.audit = audit  # type: ignore[assignment]
    result = tracker.resync_once()
    assert result.state_of("shop", names[0]) == "alerted"
    assert {result.state_of("shop", name) for name in names[1:]} == {"waiting"}
    assert audit.queries == 1
