"""GET /api/v1/audit: filters and pagination over a few hundred decisions, newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.oncall.support import OnCall
from webhook.decision import Decision, new_id

OUTCOMES = ("skipped", "dry_run", "rolled_back", "failed")


@pytest.fixture
def history(oncall: OnCall) -> list[Decision]:
    """360 decisions, one a minute over the last six hours, over 3 namespaces x 2 Deployments."""
    now = datetime.now(UTC)
    made = []
    for i in range(360):
        when = now - timedelta(minutes=360 - i)
        decision = Decision(
            id=new_id(when),
            time=when,
            source="alertmanager",
            outcome=OUTCOMES[i % 4],
            reason="cooldown" if i % 4 == 0 else None,
            namespace=("shop", "pay", "ads")[i % 3],
            deployment=("web", "api")[i % 2],
            labels={"alertname": "RollbackRestartRate", "n": str(i)},
        )
        oncall.h.service.audit.record(decision)
        made.append(decision)
    return made


def all_pages(oncall: OnCall, **params: Any) -> tuple[list[str], int]:
    """Follow next_before to the end; the ids in order and the number of pages."""
    ids: list[str] = []
    pages = 0
    before = None
    while True:
        query = {**params, **({"before": before} if before else {})}
        response = oncall.audit(**query)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        pages += 1
        assert body["count"] == len(body["decisions"]) <= int(params.get("limit", 50))
        ids.extend(d["id"] for d in body["decisions"])
        before = body["next_before"]
        if before is None:
            return ids, pages


def newest_first(decisions: list[Decision]) -> list[str]:
    return [d.id for d in sorted(decisions, key=lambda d: d.time, reverse=True)]


def test_pages_cover_every_decision_once_newest_first(
    oncall: OnCall, history: list[Decision]
) -> None:
    ids, pages = all_pages(oncall, limit=50)
    assert ids == newest_first(history)
    assert pages == 8  # 360 / 50, the last page short


def test_exact_multiple_of_the_page_size_has_no_empty_last_page(
    oncall: OnCall, history: list[Decision]
) -> None:
    ids, pages = all_pages(oncall, limit=120)
    assert len(ids) == 360 and pages == 3


def test_filters_combine_and_page(oncall: OnCall, history: list[Decision]) -> None:
    wanted = [d for d in history if d.namespace == "shop" and d.deployment == "web"]
    ids, _ = all_pages(oncall, namespace="shop", deployment="web", limit=7)
    assert ids == newest_first(wanted) and len(ids) == 60

    rolled = [d for d in history if d.outcome == "rolled_back"]
    ids, _ = all_pages(oncall, outcome="rolled_back", limit=25)
    assert ids == newest_first(rolled)

    recent = [d for d in history if d.time >= datetime.now(UTC) - timedelta(minutes=90)]
    ids, _ = all_pages(oncall, since="90m")
    assert set(ids) <= {d.id for d in recent} and len(recent) - len(ids) <= 1  # clock moved

    cutoff = history[300].time
    ids, _ = all_pages(oncall, since=cutoff.isoformat().replace("+00:00", "Z"), outcome="skipped")
    assert ids == newest_first([d for d in history[300:] if d.outcome == "skipped"])


def test_default_page_is_the_newest_fifty(oncall: OnCall, history: list[Decision]) -> None:
    body = oncall.audit().get_json()
    assert [d["id"] for d in body["decisions"]] == newest_first(history)[:50]
    first = body["decisions"][0]
    assert first["labels"] == {"alertname": "RollbackRestartRate", "n": "359"}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"outcome": "exploded"}, "outcome"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since": "last tuesday"}, "since"),
        ({"before": "d-unknown"}, "before"),
        ({"namespce": "shop"}, "namespce"),
    ],
)
def test_bad_query_parameters_are_400_naming_them(
    oncall: OnCall, params: dict[str, str], named: str
) -> None:
    response = oncall.audit(**params)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(named)


def test_unknown_decision_is_404(oncall: OnCall) -> None:
    response = oncall.audit("/d-20260101T000000000-00000000")
    assert response.status_code == 404
