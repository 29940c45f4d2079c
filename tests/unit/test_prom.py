"""Prometheus evidence and confirmation (webhook/prom.py) against a stubbed HTTP API.

`responses` stands in for Prometheus' /api/v1/query: the tests pin the PromQL that goes on the
wire, the verdicts built from answers, and how failures degrade to "unknown". Two tests use
real components: a loopback socket that never answers (timeouts are really honoured), and
promtool evaluating the PromQL over synthetic series (the queries mean what the code assumes).
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
import responses
import yaml
from responses import matchers

from tests.binaries import require_binary
from webhook.prom import Evidence, PrometheusEvidence
from webhook.promql import alerts_query, expr_from_generator_url, readiness_query

PROM = "http://prometheus.test:9090"
QUERY_URL = f"{PROM}/api/v1/query"
NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
START = NOW - timedelta(minutes=20)
END = NOW - timedelta(minutes=10)

_FRACTION = (
    'sum(max by (namespace, pod) (kube_pod_status_ready{namespace="shop", condition="true"})'
    " * on (namespace, pod) "
    "max by (namespace, pod) (kube_pod_owner{namespace=\"shop\", owner_kind=\"ReplicaSet\", "
    'owner_name="web-7d9f"}))'
    " / count(max by (namespace, pod) (kube_pod_owner{namespace=\"shop\", "
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


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, object]:
    """A Prometheus instant-vector answer."""
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": labels, "value": [END.timestamp(), value]} for labels, value in samples
            ],
        },
    }


def readiness(worst: str, steps: str) -> dict[str, object]:
    """What readiness_query answers: the worst ready fraction and the steps that had data."""
    return vector(({"stat": "worst"}, worst), ({"stat": "steps"}, steps))


def answer(query: str, body: dict[str, object]) -> None:
    responses.get(
        QUERY_URL, json=body, match=[matchers.query_param_matcher({"query": query},
                                                                  strict_match=False)]
    )


def sent_params(call_index: int) -> dict[str, str]:
    request = responses.calls[call_index].request
    assert request.url is not None
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def prom(sleeps: list[float]) -> Iterator[PrometheusEvidence]:
    evidence = PrometheusEvidence(PROM, clock=lambda: NOW, sleep=sleeps.append)
    yield evidence
    evidence.close()


def health(prom: PrometheusEvidence, **overrides: Any) -> Evidence:
    args: dict[str, Any] = {
        "namespace": "shop", "deployment": "web", "replicaset": "web-7d9f",
        "start": START, "end": END,
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
    assert readiness_query(namespace="a", replicaset="b", window_seconds=60,
                           step_seconds=6).count(")[60s:6s])") == 2
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
    answer(ALERTS_Q, vector(({"alertname": "KubePodRestarting",
                              "rollback_trigger": "restart_rate"}, "1")))

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
    answer(ALERTS_Q, vector(({"alertname": "PodOOMKilled", "rollback_trigger": "oomkilled"},
                             "1")))

    assert health(prom).verdict == "unhealthy"


@responses.activate
def test_prometheus_5xx_is_retried_boundedly_then_unknown(
    prom: PrometheusEvidence, sleeps: list[float],
) -> None:
    responses.get(QUERY_URL, status=503, json={
        "status": "error", "errorType": "unavailable", "error": "TSDB not ready"})

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
        (requests.exceptions.ConnectTimeout("connect timed out"),
         "connecting timed out after 5s"),
        (requests.exceptions.ConnectionError("refused"), "connection failed"),
    ],
)
@responses.activate
def test_timeouts_and_connection_errors_after_retries_are_unknown(
    prom: PrometheusEvidence, error: Exception, phrase: str,
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
    responses.get(QUERY_URL, status=400, json={
        "status": "error", "errorType": "bad_data",
        "error": 'invalid parameter "query": 1:6: parse error: unexpected end of input'})

    evidence = health(prom)

    assert evidence.verdict == "unknown"
    assert ('answered HTTP 400: invalid parameter "query": 1:6: parse error: unexpected end of '
            "input") in evidence.detail
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
    prom: PrometheusEvidence, overrides: dict[str, object], message: str,
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
    prom = PrometheusEvidence("http://user:pw@prometheus.test:9090/prom/", retries=0,
                              clock=lambda: NOW)

    evidence = health(prom)

    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")
    assert "Prometheus at http://prometheus.test:9090/prom failed after 1 attempt:" in (
        evidence.detail)
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
    url: str, timeout: float, retries: int, message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        PrometheusEvidence(url, timeout_seconds=timeout, retries=retries)


# --- confirm -------------------------------------------------------------------------------

EXPR = 'rate(kube_pod_container_status_restarts_total{namespace!~"kube-.*"}[5m]) > 0.1'
GENERATOR_URL = f"http://prom-0:9090/graph?g0.expr={quote(EXPR, safe='')}&g0.tab=1"
ALERT_LABELS = {"alertname": "KubePodRestarting", "rollback_trigger": "restart_rate",
                "namespace": "shop", "pod": "web-7d9f-abcde", "severity": "critical"}


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
    answer(EXPR, vector(({"namespace": "shop", "pod": "cart-55c4-xyz"}, "0.9"),
                        ({"namespace": "shop", "pod": "web-7d9f-abcde"}, "0.4")))

    confirmation = prom.confirm(generator_url=GENERATOR_URL, at=NOW, labels=ALERT_LABELS)

    assert confirmation.verdict == "confirmed"
    assert "1 series matching the alert's labels" in confirmation.detail


@pytest.mark.parametrize(
    "url",
    ["", "not a url", "http://prom:9090/graph?g0.tab=1", "http://prom:9090/graph?g0.expr=",
     "http://[::1/graph?g0.expr=up"],
)
@responses.activate
def test_confirm_without_an_expression_is_unknown_and_sends_nothing(
    prom: PrometheusEvidence, url: str,
) -> None:
    confirmation = prom.confirm(generator_url=url, at=NOW)

    assert confirmation.verdict == "unknown"
    assert confirmation.expr is None
    assert "generatorURL has no g0.expr" in confirmation.detail
    assert len(responses.calls) == 0


@responses.activate
def test_confirm_prometheus_5xx_is_unknown(prom: PrometheusEvidence) -> None:
    responses.get(QUERY_URL, status=500, json={
        "status": "error", "errorType": "internal", "error": "boom"})

    confirmation = prom.confirm(generator_url=GENERATOR_URL, at=NOW)

    assert confirmation.verdict == "unknown"
    assert confirmation.expr == EXPR
    assert "HTTP 500: boom" in confirmation.detail
    assert len(responses.calls) == 3


@responses.activate
def test_confirm_proxy_error_page_is_retried_then_unknown(prom: PrometheusEvidence) -> None:
    responses.get(QUERY_URL, status=502, body="<html>Bad Gateway</html>",
                  content_type="text/html")

    confirmation = prom.confirm(generator_url=GENERATOR_URL, at=NOW)

    assert confirmation.verdict == "unknown"
    assert "failed after 3 attempts: HTTP 502: <html>Bad Gateway</html>" in confirmation.detail


@responses.activate
def test_confirm_scalar_expression_is_unknown(prom: PrometheusEvidence) -> None:
    responses.get(QUERY_URL, json={"status": "success",
                                   "data": {"resultType": "scalar", "result": [1.0, "1"]}})

    confirmation = prom.confirm(generator_url="http://p/graph?g0.expr=1", at=NOW)

    assert confirmation.verdict == "unknown"
    assert "instant vector" in confirmation.detail


def test_generator_url_with_plus_and_spaces_decodes_like_prometheus_encodes() -> None:
    url = "http://p:9090/graph?g0.expr=sum+by+%28pod%29+%28up%29+%3E+0&g0.tab=1"
    assert expr_from_generator_url(url) == "sum by (pod) (up) > 0"


# --- real components -----------------------------------------------------------------------


def test_timeouts_are_honoured_on_a_silent_socket() -> None:
    """A Prometheus that accepts and never answers costs at most (retries+1) timeouts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    port = server.getsockname()[1]
    prom = PrometheusEvidence(f"http://127.0.0.1:{port}", timeout_seconds=0.2, retries=1,
                              clock=lambda: NOW, sleep=lambda _: None)
    try:
        began = time.monotonic()
        confirmation = prom.confirm(generator_url="http://p/graph?g0.expr=up", at=NOW)
        elapsed = time.monotonic() - began
        deadline = time.monotonic() + 2
        while len(accepted) < 2 and time.monotonic() < deadline:  # the accept thread may lag
            time.sleep(0.01)
    finally:
        prom.close()
        server.close()
        for conn in accepted:
            conn.close()

    assert confirmation.verdict == "unknown"
    assert "failed after 2 attempts: no answer within 0.2s" in confirmation.detail
    assert len(accepted) == 2  # no hidden retries underneath ours
    # The library's default urllib3 retries (3 more, 1s+ backoff) would blow this bound.
    assert 0.4 <= elapsed < 2.5


@pytest.mark.promtool
def test_queries_mean_what_the_verdicts_assume_under_promtool(tmp_path: Path) -> None:
    """promtool evaluates the exact PromQL over kube-state-metrics-shaped series."""
    promtool = require_binary("promtool")
    owner = ('kube_pod_owner{{namespace="shop", pod="{pod}", owner_kind="ReplicaSet", '
             'owner_name="{rs}", instance="{inst}"}}')
    ready = ('kube_pod_status_ready{{namespace="shop", pod="{pod}", condition="true", '
             'instance="{inst}"}}')
    series = []
    # 30s samples over 40 minutes; the window is minutes 20..30, evaluated at 30m.
    for rs, pods in {"good": ["g1", "g2"], "flaky": ["f1", "f2"], 'we"ird': ["w1"]}.items():
        for pod in pods:
            for inst in ("ksm-0", "ksm-1"):  # two kube-state-metrics replicas
                esc = rs.replace('"', '\\"')
                series.append({"series": owner.format(pod=pod, rs=esc, inst=inst),
                               "values": "1x80"})
                values = "1x44 0x4 1x31" if pod == "f2" else "1x80"
                series.append({"series": ready.format(pod=pod, inst=inst), "values": values})
    # "gap": owner data only from minute 25 on; "none": nothing at all.
    series.append({"series": owner.format(pod="p1", rs="gap", inst="ksm-0"),
                   "values": "_x49 1x30"})
    series.append({"series": ready.format(pod="p1", inst="ksm-0"), "values": "_x49 1x30"})
    alert = ('ALERTS{{alertname="{name}", alertstate="{state}", namespace="shop", '
             'replicaset="{rs}"{trigger}}}')
    series += [
        {"series": alert.format(name="KubePodRestarting", state="firing", rs="flaky",
                                trigger=', rollback_trigger="restart_rate"'),
         "values": "_x44 1x4"},
        {"series": alert.format(name="KubePodRestarting", state="pending", rs="good",
                                trigger=', rollback_trigger="restart_rate"'), "values": "1x80"},
        {"series": alert.format(name="Unrelated", state="firing", rs="good", trigger=""),
         "values": "1x80"},
    ]

    def readiness(rs: str) -> str:
        return readiness_query(namespace="shop", replicaset=rs, window_seconds=600,
                               step_seconds=30)

    def alerts(rs: str) -> str:
        return alerts_query(namespace="shop", replicaset=rs, window_seconds=600)

    def stats(worst: float, steps: int) -> list[dict[str, object]]:
        return [{"labels": '{stat="worst"}', "value": worst},
                {"labels": '{stat="steps"}', "value": steps}]

    # Prometheus 2.x subqueries include the window's left edge: 21 steps of 30s in 600s.
    tests = [
        {"expr": readiness("good"), "eval_time": "30m", "exp_samples": stats(1, 21)},
        {"expr": readiness("flaky"), "eval_time": "30m", "exp_samples": stats(0.5, 21)},
        {"expr": readiness('we"ird'), "eval_time": "30m", "exp_samples": stats(1, 21)},
        {"expr": readiness("gap"), "eval_time": "30m", "exp_samples": stats(1, 12)},
        {"expr": readiness("none"), "eval_time": "30m", "exp_samples": []},
        {"expr": alerts("good"), "eval_time": "30m", "exp_samples": []},
        {"expr": alerts("flaky"), "eval_time": "30m", "exp_samples": [
            {"labels": '{alertname="KubePodRestarting", rollback_trigger="restart_rate"}',
             "value": 1}]},
    ]
    rules = tmp_path / "empty.rules.yml"
    rules.write_text("groups: []\n")
    spec = tmp_path / "prom_test.yml"
    spec.write_text(yaml.safe_dump({
        "rule_files": [rules.name],
        "evaluation_interval": "30s",
        "tests": [{"interval": "30s", "input_series": series, "promql_expr_test": tests}],
    }, width=1000))

    run = subprocess.run([promtool, "test", "rules", spec.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)

    assert run.returncode == 0, run.stdout + run.stderr
