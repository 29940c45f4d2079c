"""The audit store records every decision of a payload, however many, in one go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from webhook.audit import SqliteStore
from webhook.decision import Decision, new_id


@pytest.mark.parametrize("count", [1, 3, 41, 100])
def test_record_many_keeps_every_decision(tmp_path: Path, count: int) -> None:
    audit = SqliteStore(tmp_path / "audit.sqlite")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    decisions = [
        Decision(
            id=new_id(start + timedelta(seconds=i)),
            time=start + timedelta(seconds=i),
            source="alertmanager",
            outcome="skipped",
            reason="resolved",
            labels={"alertname": "A", "n": str(i)},
            namespace="shop",
            deployment=f"app{i}",
        )
        for i in range(count)
    ]
    audit.record_many(decisions)
    rows = audit.query(limit=500)
    assert len(rows) == count
    assert {r["id"] for r in rows} == {d.id for d in decisions}
    assert rows[0]["labels"] == {"alertname": "A", "n": str(count - 1)}
