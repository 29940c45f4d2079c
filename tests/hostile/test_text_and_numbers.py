"""Text and numbers a store or a datetime cannot hold are a 400 naming the field, never a 5xx
(Alertmanager retries 5xx forever) and never a cluster write; every refusal is counted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lab.receiver_harness import Harness, hours, minutes, template_images
from tests.hostile.support import cluster_writes, console_login, payloads_counted
from tests.oncall.support import OnCall


@pytest.fixture
def shop(harness: Harness) -> Harness:
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.sandbox.controls.clear_requests()
    return harness


def payload_text(harness: Harness, **alert_fields: Any) -> str:
    """A valid one-alert payload for shop/web as JSON text, some alert fields replaced."""
    alert = harness.alert(namespace="shop", deployment="web")
    alert.update(alert_fields)
    return json.dumps(harness.payload(alert))


def assert_refused(harness: Harness, body: str, names: str) -> None:
    before = payloads_counted(harness, endpoint="alerts", code="400")
    response = harness.post(body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert names in response.get_json()["error"]
    assert payloads_counted(harness, endpoint="alerts", code="400") == before + 1
    assert cluster_writes(harness) == []
    assert template_images(harness.deployment("shop", "web")) == ["web:2"]


def test_lone_surrogate_in_alertname_is_refused_before_any_write(shop: Harness) -> None:
    # The escape is plain ASCII on the wire; decoded, no UTF-8 store can hold it.
    body = payload_text(shop).replace('"RollbackRestartRate"', '"Rollback\\ud800"', 1)
    assert "\\ud800" in body
    assert_refused(shop, body, "alerts[0].labels.alertname: not text the audit can store")
    # The raw payload is kept (as sent, escapes and all), no decision row is.
    assert shop.service.audit.query(limit=5) == []


def test_lone_surrogate_in_a_label_key_or_annotation_is_refused(shop: Harness) -> None:
    body = payload_text(shop, annotations={"summary": "ok", "desc\\udfff": "x"})
    body = body.replace("desc\\\\udfff", "desc\\udfff")
    assert_refused(shop, body, "alerts[0].annotations")
    body = payload_text(shop).replace('"test"', '"\\udc00 tail"', 1)
    assert_refused(shop, body, "alerts[0].annotations.summary")


def test_surrogate_in_group_key_is_refused_and_the_raw_body_stored(shop: Harness) -> None:
    document = shop.payload(shop.alert(namespace="shop", deployment="web"))
    body = json.dumps(document).replace('"{}:{', '"\\ud83d{}:{', 1)
    assert_refused(shop, body, "groupKey: not text the audit can store")


@pytest.mark.parametrize(
    ("truncated", "names"),
    [
        ("9223372036854775808", "truncatedAlerts: must be smaller than or equal to"),
        ("1e400", "truncatedAlerts: not a JSON number (1e400 is too large for a number)"),
        ("-1", "truncatedAlerts: must be bigger than or equal to 0"),
    ],
)
def test_out_of_range_counts_are_refused(shop: Harness, truncated: str, names: str) -> None:
    body = payload_text(shop).replace('"truncatedAlerts": 0', f'"truncatedAlerts": {truncated}')
    assert truncated in body
    assert_refused(shop, body, names)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("startsAt", "0001-01-01T00:00:00+01:00"),
        ("startsAt", "9999-12-31T23:59:59-01:00"),
        ("startsAt", "0001-01-01T00:00:00Z"),
        ("startsAt", "1969-12-31T23:59:59Z"),
        ("startsAt", "9999-12-31T23:59:59Z"),
        ("endsAt", "9999-12-31T23:59:59-01:00"),
    ],
)
def test_out_of_range_times_are_refused(shop: Harness, field: str, value: str) -> None:
    assert_refused(shop, payload_text(shop, **{field: value}), f"alerts[0].{field}: out of range")


def test_year_one_end_in_any_offset_means_no_end(shop: Harness) -> None:
    body = payload_text(shop, endsAt="0001-01-01T00:00:00+01:00")
    response = shop.post(body)
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("depth", [65, 5_000, 200_000])
def test_deep_nesting_is_refused(shop: Harness, depth: int) -> None:
    assert_refused(shop, "[" * depth + "]" * depth, "body: nested deeper than 64 levels")
    inner = "[" * depth + "]" * depth
    body = payload_text(shop)[:-1] + f', "extra": {inner}}}'
    assert_refused(shop, body, "body: nested deeper than 64 levels")


def test_the_deepest_body_taken_is_served_back_by_the_audit(oncall: OnCall) -> None:
    """A body just within the limit is decided, stored, and its decision's audit detail (which
    wraps the body a few levels deeper) answers 200, not a RecursionError's 500."""
    h = oncall.h
    inner = "[" * 63 + "]" * 63  # 64 levels with the payload's own object
    body = json.dumps(h.payload(h.alert(namespace="shop", deployment="nope")))
    response = h.post(body[:-1] + f', "extra": {inner}}}')
    assert response.status_code == 200, response.get_json()
    [decision] = response.get_json()["decisions"]
    detail = oncall.audit(f"/{decision['id']}")
    assert detail.status_code == 200
    assert detail.get_json()["payload"]["body"]["extra"] == json.loads(inner)


@pytest.mark.parametrize(
    ("literal", "names"),
    [
        ("NaN", "extra: not a JSON number (NaN is not a JSON number)"),
        ("-Infinity", "extra: not a JSON number (-Infinity is not a JSON number)"),
        ("1e400", "extra: not a JSON number (1e400 is too large for a number)"),  # Python: inf
        ('[1, {"deep": -1e400}]', "extra[1].deep: not a JSON number (-1e400 is too large"),
        ("1" * 5000, "body: not valid JSON (Exceeds the limit (4300 digits)"),
    ],
    ids=["nan", "infinity", "1e400", "nested-minus-1e400", "5000-digits"],
)
def test_what_json_does_not_allow_is_refused_naming_the_field(
    shop: Harness, literal: str, names: str
) -> None:
    """Python's decoder takes NaN, Infinity and numbers past a float's range (the audit would
    answer them back as no JSON a strict client reads) and raises a plain ValueError for an
    integer of more than 4,300 digits."""
    body = payload_text(shop)[:-1] + f', "extra": {literal}}}'
    assert_refused(shop, body, names)


def test_replay_of_a_surrogate_payload_is_refused_naming_the_field(oncall: OnCall) -> None:
    h = oncall.h
    h.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    h.sandbox.controls.clear_requests()
    payload = json.dumps(h.payload(h.alert(namespace="shop", deployment="web")))
    body = '{"reason": "check", "dry_run": false, "payload": ' + payload + "}"
    body = body.replace('"RollbackRestartRate"', '"x\\ud800"', 1)
    before = payloads_counted(h, endpoint="replay", code="400")
    response = oncall.client.post(
        "/api/v1/replay",
        data=body,
        headers={"Authorization": "Bearer oncall-secret-alice"},
        content_type="application/json",
    )
    assert response.status_code == 400
    named = "payload.alerts[0].labels.alertname: not text the audit can store"
    assert named in response.get_json()["error"]
    assert payloads_counted(h, endpoint="replay", code="400") == before + 1
    # A surrogate in the reason is refused the same way (it would be stored as the reason).
    response = oncall.client.post(
        "/api/v1/replay",
        data='{"reason": "\\ud800", "audit_id": "d-1"}',
        headers={"Authorization": "Bearer oncall-secret-alice"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "reason: not text the audit can store" in response.get_json()["error"]
    deep = "[" * 100_000 + "]" * 100_000
    response = oncall.client.post(
        "/api/v1/replay",
        data=deep,
        headers={"Authorization": "Bearer oncall-secret-alice"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert cluster_writes(h) == []


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"limit": "²"}, "limit: expected 1 to 500"),
        ({"limit": "٣"}, "limit: expected 1 to 500"),
        ({"limit": "9" * 5000}, "limit: expected 1 to 500"),
        ({"since": "99999999999h"}, "since: duration '99999999999h'"),
        ({"since": "²"}, "since: expected an RFC 3339 time"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since: out of range"),
        ({"since": "9999-12-31T23:59:59-01:00"}, "since: out of range"),
    ],
)
def test_audit_api_refuses_bad_parameters_naming_them(
    oncall: OnCall, params: dict[str, str], names: str
) -> None:
    response = oncall.audit(**params)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert names in response.get_json()["error"]
    # The console's list reads the same filters: a 400 page, not a 500.
    page = console_get(oncall, "/", params)
    assert page.status_code == 400
    assert names.split(":")[0] in page.get_data(as_text=True)


def console_get(oncall: OnCall, path: str, params: dict[str, str]) -> Any:
    response = console_login(oncall.client, "oncall-secret-alice")
    assert response.status_code == 302, response.get_data(as_text=True)
    return oncall.client.get(path, query_string=params)


# A NUL character: PostgreSQL text cannot hold one, so stored it would be a 503 on that backend
# and a poison delivery (sent again forever); after a rollback, a write with no record. The
# refusal comes before the store, so it is the same on either backend.
@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("fingerprint", "alerts[0].fingerprint: not text the audit can store"),
        ("alertname", "alerts[0].labels.alertname: not text the audit can store"),
        ("groupKey", "groupKey: not text the audit can store"),
    ],
)
def test_nul_in_an_alert_is_refused_before_any_write(shop: Harness, field: str, names: str) -> None:
    document = shop.payload(shop.alert(namespace="shop", deployment="web"))
    if field == "groupKey":
        document["groupKey"] = "g\x00"
    elif field == "alertname":
        document["alerts"][0]["labels"]["alertname"] = "Rollback\x00"
    else:
        document["alerts"][0]["fingerprint"] = "ab\x00cd"
    body = json.dumps(document)
    assert "\\u0000" in body
    assert_refused(shop, body, names)
    assert shop.service.audit.query(limit=5) == []


def test_a_raw_nul_in_the_body_is_refused_naming_the_body(shop: Harness) -> None:
    assert_refused(shop, payload_text(shop)[:-1] + "\x00}", "body: contains a NUL character")


def test_nul_in_a_path_query_or_form_field_is_a_400_naming_it(oncall: OnCall) -> None:
    response = oncall.audit("/d-1%00")
    assert response.status_code == 400
    assert response.get_json()["error"] == "path: contains a NUL character"
    for params in ({"namespace": "a\x00"}, {"before": "\x00"}):
        response = oncall.audit(**params)
        assert response.status_code == 400, params
        error = response.get_json()["error"]
        assert error == f"{next(iter(params))}: query parameter contains a NUL character"
    response = oncall.client.post("/login", data={"csrf_token": "x", "token": "t", "name": "n\x00"})
    assert response.status_code == 400
    assert "name: form field contains a NUL character" in response.get_data(as_text=True)
