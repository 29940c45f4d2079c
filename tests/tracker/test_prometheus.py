"""With Prometheus configured, the tracker asks it before stamping: pods that flapped between
two rounds, or a trigger alert that reached another replica's audit, still block the stamp."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from lab.receiver_harness import Harness, minutes
from tests.tracker.support import FakeClock, stamp_of, tracker_for
from webhook.prom import PrometheusEvidence

PROM = "http://prometheus.test:9090"


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, object]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": labels, "value": [0, value]} for labels, value in samples],
        },
    }


class FakePrometheus:
    """Answers /api/v1/query: pods fully ready, and the given firing ALERTS series."""

    def __init__(self) -> None:
        self.firing: list[dict[str, str]] = []
        self.queries: list[str] = []

    def answer(self, request: object) -> tuple[int, dict[str, str], str]:
        url = getattr(request, "url", "")
        query = parse_qs(urlsplit(url).query)["query"][0]
        self.queries.append(query)
        if "ALERTS" in query:
            body = vector(*((alert, "1") for alert in self.firing))
        else:
            body = vector(({"stat": "worst"}, "1"), ({"stat": "steps"}, "10000"))
        return 200, {"Content-Type": "application/json"}, json.dumps(body)


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, f"{PROM}/api/v1/query", callback=fake.answer)
        yield fake


def test_alert_prometheus_saw_blocks_the_stamp_and_restarts_the_period(
    harness: Harness, clock: FakeClock, prometheus: FakePrometheus
) -> None:
    [rs1] = harness.deploy("web", [("web:1", minutes(2))])
    evidence = PrometheusEvidence(PROM, clock=clock, retries=0)
    tracker = tracker_for(harness, clock, prometheus=evidence)
    # Our audit has nothing: the alert went to another replica. Prometheus fired it.
    prometheus.firing = [{"alertname": "RollbackRestartRate", "rollback_trigger": "restart_rate"}]
    tracker.resync_once()
    assert prometheus.queries == []  # asked only when a stamp is due
    clock.advance(600)
    result = tracker.resync_once()
    assert result.state_of("shop", "web") == "prometheus_unhealthy"
    assert "RollbackRestartRate (restart_rate)" in result.observations[0].detail
    assert any(f'replicaset="{rs1}"' in q for q in prometheus.queries)
    assert stamp_of(harness, rs1) is None

    prometheus.firing = []
    assert tracker.resync_once().state_of("shop", "web") == "waiting"  # a new period
    clock.advance(600)
    assert tracker.resync_once().state_of("shop", "web") == "stamped"


def test_prometheus_without_data_does_not_block(harness: Harness, clock: FakeClock) -> None:
    [rs1] = harness.deploy("web", [("web:1", minutes(2))])
    with responses.RequestsMock() as mock:
        mock.get(f"{PROM}/api/v1/query", json=vector())
        tracker = tracker_for(harness, clock, prometheus=PrometheusEvidence(PROM, clock=clock))
        tracker.resync_once()
        clock.advance(600)
        assert tracker.resync_once().state_of("shop", "web") == "stamped"
    assert stamp_of(harness, rs1) is not None
