"""Prometheus evidence and confirmation (webhook/prom.py) against a stubbed HTTP API.

`responses` stands in for Prometheus' /api/v1/query: the tests pin the PromQL that goes on the
wire, the verdicts built from answers, and how failures degrade to "unknown". Confirmation is in
test_prom_confirm.py, the tests against real components in test_prom_live.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
import responses

from tests.unit.prom_stub import END, NOW, PROM, QUERY_URL, answer, sent_params, vector
from webhook.prom import Evidence, PrometheusEvidence
from webhook.promql import alerts_query, readiness_query

START = NOW - timedelta(minutes=20)

_FRACTION = (
    'sum(max by (namespace, pod) (kube_pod_status_ready{namespace="shop", condition="true"})'
    " * on (namespace, pod) "
    'max by (namespace, pod) (kube_pod_owner{namespace="shop", owner_kind="ReplicaSet", '
    'owner_name="web-7d9f"}))'
    ' / count(max by (namespace, pod) (kube_pod_owner{namespace="shop", '
    'owner_kind="ReplicaSet", owner_name="web-7d9f"}))'
)
READY_Q = (
    f'label_replace(min_over_time(({_FRACTION})[600s:30s]), "stat", "worst", "", "") or '
    f'label_replace(count_over_time(({_FRACTION})[600s:30s]), "stat", "steps", "", "")'
)
ALERTS_Q = (
    "count by (alertname, rollback_trigger) (max_over_time("
    'ALERTS{alertstate="firing", rollback_trigger!="", namespace="shop", '
    'replicaset="web-7d9f"}[600s]))'
)


def readiness(worst: str, steps: str) -> dict[str, object]:
    """What readiness_query answers: the worst ready fraction and the steps that had data."""
    return vector(({"stat": "worst"}, worst), ({"stat": "steps"}, steps))


def health(prom: PrometheusEvidence, **overrides: Any) -> Evidence:
    args: dict[str, Any] = {
        "namespace": "shop",
        "deployment": "web",
        "replicaset": "web-7d9f",
        "start": START,
        "end": END,
    }
    args.update(overrides)
    return prom.revision_health(**args)


# --- revision_health -----------------------------------------------------------------------


@responses.activate
def test_healthy_revision_sends_readiness_then_alerts_query_at_window_end(
    prom: PrometheusEvidence,
) -> None:
    answer(READY_Q, readiness("1", "21"))
    answer(ALERTS_Q, vector())

    evidence = health(prom)

    assert evidence.verdict == "healthy"
    assert evidence.queries == (READY_Q, ALERTS_Q)
    assert [sent_params(i)["query"] for i in range(2)] == [READY_Q, ALERTS_Q]
    for i in range(2):
        assert float(sent_params(i)["time"]) == END.timestamp()
        assert sent_params(i)["timeout"] == "5s"
    assert "shop/web-7d9f" in evidence.detail and "Deployment web" in evidence.detail


@responses.activate
def test_label_values_with_quotes_and_backslashes_are_escaped(
    prom: PrometheusEvidence,
) -> None:
    responses.get(QUERY_URL, json=vector())

    health(prom, namespace='we"ird', replicaset='rs\\"x')

    sent = sent_params(0)["query"]
    assert 'kube_pod_status_ready{namespace="we\\"ird", condition="true"}' in sent
    assert 'owner_name="rs\\\\\\"x"' in sent
    alerts = sent_params(1)["query"]
    assert 'namespace="we\\"ird", replicaset="rs\\\\\\"x"' in alerts


def test_query_builders_scale_the_window_and_step() -> None:
    assert (
        readiness_query(namespace="a", replicaset="b", window_seconds=60, step_seconds=6).count(
            ")[60s:6s])"
        )
        == 2
    )
    assert alerts_query(namespace="a", replicaset="b", window_seconds=3600).endswith("[3600s]))")


@responses.activate
def test_short_window_uses_finer_steps(prom: PrometheusEvidence) -> None:
    responses.get(QUERY_URL, json=readiness("1", "11"))

    health(prom, start=END - timedelta(seconds=60))

    assert sent_params(0)["query"].count("[60s:6s]") == 2


@responses.activate
def test_unready_pods_make_revision_unhealthy_without_asking_about_alerts(
    prom: PrometheusEvidence,
) -> None:
    answer(READY_Q, readiness("0.5", "21"))

    evidence = health(prom)

    assert evidence.verdict == "unhealthy"
    assert "50% ready" in evidence.detail
    assert evidence.queries == (READY_Q,)
    assert len(responses.calls) == 1


@responses.activate
def test_firing_rollback_alert_makes_revision_unhealthy(prom: PrometheusEvidence) -> None:
    answer(READY_Q, readiness("1", "21"))
    answer(
        ALERTS_Q,
        vector(({"alertname": "KubePodRestarting", "rollback_trigger": "restart_rate"}, "1")),
    )

    evidence = health(prom)

    assert evidence.verdict == "unhealthy"
    assert "KubePodRestarting (restart_rate)" in evidence.detail


@responses.activate
def test_missing_readiness_data_is_unknown_never_healthy(prom: PrometheusEvidence) -> None:
    answer(READY_Q, vector())
    answer(ALERTS_Q, vector())

    evidence = health(prom)

    assert evidence.verdict == "unknown"
    assert "readiness data" in evidence.detail and "at only 0 of 20" in evidence.detail


@responses.activate
def test_readiness_data_for_part_of_the_window_is_unknown(prom: PrometheusEvidence) -> None:
    answer(READY_Q, readiness("1", "12"))
    answer(ALERTS_Q, vector())

    evidence = health(prom)

    assert evidence.verdict == "unknown"
    assert "at only 12 of 20 30s steps" in evidence.detail


@responses.activate
def test_unready_pods_in_a_partly_covered_window_are_still_unhealthy(
    prom: PrometheusEvidence,
) -> None:
    answer(READY_Q, readiness("0", "5"))

    evidence = health(prom)

    assert evidence.verdict == "unhealthy"
    assert "at worst 0% ready" in evidence.detail


@responses.activate
def test_firing_alert_is_unhealthy_even_without_readiness_data(prom: PrometheusEvidence) -> None:
    answer(READY_Q, vector())
    answer(ALERTS_Q, vector(({"alertname": "PodOOMKilled", "rollback_trigger": "oomkilled"}, "1")))

    assert health(prom).verdict == "unhealthy"


@responses.activate
def test_prometheus_5xx_is_retried_boundedly_then_unknown(
    prom: PrometheusEvidence,
    sleeps: list[float],
) -> None:
    responses.get(
        QUERY_URL,
        status=503,
        json={"status": "error", "errorType": "unavailable", "error": "TSDB not ready"},
    )

    evidence = health(prom)

    assert evidence.verdict == "unknown"
    assert "failed after 3 attempts: HTTP 503: TSDB not ready" in evidence.detail
    assert len(responses.calls) == 3  # retries=2; the library's own 1s-backoff retries are off
    assert sleeps == [0.2, 0.4]
    # Prometheus is down: the alerts question is not asked, the failure is not paid twice.
    assert evidence.queries == (READY_Q,)


@responses.activate
def test_transient_5xx_then_answer_is_healthy(prom: PrometheusEvidence) -> None:
    responses.get(QUERY_URL, status=502, body="bad gateway")
    answer(READY_Q, readiness("1", "21"))
    answer(ALERTS_Q, vector())

    assert health(prom).verdict == "healthy"
    assert len(responses.calls) == 3


@pytest.mark.parametrize(
    ("error", "phrase"),
    [
        (requests.exceptions.ReadTimeout("read timed out"), "no answer within 5s"),
        (requests.exceptions.ConnectTimeout("connect timed out"), "connecting timed out after 5s"),
        (requests.exceptions.ConnectionError("refused"), "connection failed"),
    ],
)
@responses.activate
def test_timeouts_and_connection_errors_after_retries_are_unknown(
    prom: PrometheusEvidence,
    error: Exception,
    phrase: str,
) -> None:
    responses.get(QUERY_URL, body=error)

    evidence = health(prom)

    assert evidence.verdict == "unknown"
    assert f"failed after 3 attempts: {phrase}" in evidence.detail
    assert len(responses.calls) == 3
    # responses keeps the keyword arguments requests passed to the adapter.
    assert [getattr(c.request, "req_kwargs", {}).get("timeout") for c in responses.calls] == [5] * 3


@responses.activate
def test_bad_request_is_not_retried(prom: PrometheusEvidence) -> None:
    # Prometheus 2.42's own answer to a query that does not parse.
    responses.get(
        QUERY_URL,
        status=400,
        json={
            "status": "error",
            "errorType": "bad_data",
            "error": 'invalid parameter "query": 1:6: parse error: unexpected end of input',
        },
    )

    evidence = health(prom)

    assert evidence.verdict == "unknown"
    assert (
        'answered HTTP 400: invalid parameter "query": 1:6: parse error: unexpected end of input'
    ) in evidence.detail
    assert len(responses.calls) == 1


@responses.activate
def test_non_prometheus_answer_is_unknown(prom: PrometheusEvidence) -> None:
    responses.get(QUERY_URL, body="<html>login</html>", content_type="text/html")

    evidence = health(prom)

    assert evidence.verdict == "unknown"
    assert "unreadable answer" in evidence.detail


@responses.activate
def test_window_ending_after_now_is_unknown_without_querying(prom: PrometheusEvidence) -> None:
    evidence = health(prom, start=NOW - timedelta(minutes=5), end=NOW + timedelta(minutes=5))

    assert evidence.verdict == "unknown"
    assert evidence.queries == ()
    assert len(responses.calls) == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"replicaset": ""}, "non-empty replicaset"),
        ({"namespace": ""}, "non-empty namespace"),
        ({"start": datetime(2026, 11, 21, 11, 40)}, "start must be timezone-aware"),
        ({"start": END}, "window must be at least 1s"),
    ],
)
def test_bad_arguments_are_rejected_by_name(
    prom: PrometheusEvidence,
    overrides: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        health(prom, **overrides)


@responses.activate
def test_headers_go_with_every_query() -> None:
    responses.get(QUERY_URL, json=vector())
    prom = PrometheusEvidence(PROM, clock=lambda: NOW, headers={"Authorization": "Bearer t0k"})

    health(prom)

    assert [c.request.headers["Authorization"] for c in responses.calls] == ["Bearer t0k"] * 2


@responses.activate
def test_url_credentials_authenticate_but_stay_out_of_details() -> None:
    responses.get("http://prometheus.test:9090/prom/api/v1/query", status=503, body="")
    prom = PrometheusEvidence(
        "http://user:pw@prometheus.test:9090/prom/", retries=0, clock=lambda: NOW
    )

    evidence = health(prom)

    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")
    assert "Prometheus at http://prometheus.test:9090/prom failed after 1 attempt:" in (
        evidence.detail
    )
    assert "pw" not in evidence.detail


@pytest.mark.parametrize(
    ("url", "timeout", "retries", "message"),
    [
        ("prometheus:9090", 5, 2, "url must be http"),
        (PROM, 0, 2, "timeout_seconds must be > 0"),
        (PROM, 5, -1, "retries must be >= 0"),
    ],
)
def test_bad_settings_are_rejected_by_name(
    url: str,
    timeout: float,
    retries: int,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        PrometheusEvidence(url, timeout_seconds=timeout, retries=retries)
