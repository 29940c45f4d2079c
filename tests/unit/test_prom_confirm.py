"""Confirmation (webhook/prom.py confirm): the alert's generatorURL expression re-evaluated at
decision time against the stubbed Prometheus of tests/unit/prom_stub.py."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import responses

from tests.unit.prom_stub import NOW, QUERY_URL, answer, sent_params, vector
from webhook.prom import PrometheusEvidence
from webhook.promql import expr_from_generator_url

EXPR = 'rate(kube_pod_container_status_restarts_total{namespace!~"kube-.*"}[5m]) > 0.1'
GENERATOR_URL = f"http://prom-0:9090/graph?g0.expr={quote(EXPR, safe='')}&g0.tab=1"
ALERT_LABELS = {
    "alertname": "KubePodRestarting",
    "rollback_trigger": "restart_rate",
    "namespace": "shop",
    "pod": "web-7d9f-abcde",
    "severity": "critical",
}


@responses.activate
def test_confirm_reevaluates_the_generator_expression_at_decision_time(
    prom: PrometheusEvidence,
) -> None:
    answer(EXPR, vector(({"namespace": "shop", "pod": "web-7d9f-abcde"}, "0.4")))

    confirmation = prom.confirm(generator_url=GENERATOR_URL, at=NOW)

    assert confirmation.verdict == "confirmed"
    assert confirmation.expr == EXPR
    assert sent_params(0)["query"] == EXPR
    assert float(sent_params(0)["time"]) == NOW.timestamp()
    # Only the configured Prometheus is asked, never the host in the payload's URL.
    assert responses.calls[0].request.url.startswith(QUERY_URL)  # type: ignore[union-attr]


@responses.activate
def test_confirm_empty_vector_is_not_confirmed(prom: PrometheusEvidence) -> None:
    answer(EXPR, vector())

    confirmation = prom.confirm(generator_url=GENERATOR_URL, at=NOW)

    assert confirmation.verdict == "not_confirmed"
    assert "no longer confirms" in confirmation.detail


@responses.activate
def test_confirm_with_alert_labels_ignores_other_workloads_series(
    prom: PrometheusEvidence,
) -> None:
    answer(EXPR, vector(({"namespace": "shop", "pod": "cart-55c4-xyz"}, "0.9")))

    confirmation = prom.confirm(generator_url=GENERATOR_URL, at=NOW, labels=ALERT_LABELS)

    assert confirmation.verdict == "not_confirmed"


@responses.activate
def test_confirm_with_alert_labels_counts_the_alerts_own_series(
    prom: PrometheusEvidence,
) -> None:
    answer(
        EXPR,
        vector(
            ({"namespace": "shop", "pod": "cart-55c4-xyz"}, "0.9"),
            ({"namespace": "shop", "pod": "web-7d9f-abcde"}, "0.4"),
        ),
    )

    confirmation = prom.confirm(generator_url=GENERATOR_URL, at=NOW, labels=ALERT_LABELS)

    assert confirmation.verdict == "confirmed"
    assert "1 series matching the alert's labels" in confirmation.detail


@pytest.mark.parametrize(
    "url",
    [
        "",
        "not a url",
        "http://prom:9090/graph?g0.tab=1",
        "http://prom:9090/graph?g0.expr=",
        "http://[::1/graph?g0.expr=up",
    ],
)
@responses.activate
def test_confirm_without_an_expression_is_unknown_and_sends_nothing(
    prom: PrometheusEvidence,
    url: str,
) -> None:
    confirmation = prom.confirm(generator_url=url, at=NOW)

    assert confirmation.verdict == "unknown"
    assert confirmation.expr is None
    assert "generatorURL has no g0.expr" in confirmation.detail
    assert len(responses.calls) == 0


@responses.activate
def test_confirm_prometheus_5xx_is_unknown(prom: PrometheusEvidence) -> None:
    responses.get(
        QUERY_URL, status=500, json={"status": "error", "errorType": "internal", "error": "boom"}
    )

    confirmation = prom.confirm(generator_url=GENERATOR_URL, at=NOW)

    assert confirmation.verdict == "unknown"
    assert confirmation.expr == EXPR
    assert "HTTP 500: boom" in confirmation.detail
    assert len(responses.calls) == 3


@responses.activate
def test_confirm_proxy_error_page_is_retried_then_unknown(prom: PrometheusEvidence) -> None:
    responses.get(QUERY_URL, status=502, body="<html>Bad Gateway</html>", content_type="text/html")

    confirmation = prom.confirm(generator_url=GENERATOR_URL, at=NOW)

    assert confirmation.verdict == "unknown"
    assert "failed after 3 attempts: HTTP 502: <html>Bad Gateway</html>" in confirmation.detail


@responses.activate
def test_confirm_scalar_expression_is_unknown(prom: PrometheusEvidence) -> None:
    responses.get(
        QUERY_URL,
        json={"status": "success", "data": {"resultType": "scalar", "result": [1.0, "1"]}},
    )

    confirmation = prom.confirm(generator_url="http://p/graph?g0.expr=1", at=NOW)

    assert confirmation.verdict == "unknown"
    assert "instant vector" in confirmation.detail


def test_generator_url_with_plus_and_spaces_decodes_like_prometheus_encodes() -> None:
    url = "http://p:9090/graph?g0.expr=sum+by+%28pod%29+%28up%29+%3E+0&g0.tab=1"
    assert expr_from_generator_url(url) == "sum by (pod) (up) > 0"
