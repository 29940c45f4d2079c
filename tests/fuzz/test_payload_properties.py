"""Property-based tests of the payload parser: whatever the bytes or the document, the parser
answers a Payload or a PayloadError naming a field, never another exception (a 5xx); what it
accepts is UTC-dated, in range and storable as UTF-8."""

from __future__ import annotations

import json
from datetime import UTC, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import PARSER_EXAMPLES, budget
from webhook.alerts import EARLIEST, LATEST, PayloadError, parse_body, parse_payload

# Text as JSON can carry it: any code point, lone surrogates included.
TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
OFFSETS = st.integers(min_value=-24 * 60 + 1, max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
TIMES = st.one_of(
    st.datetimes(timezones=OFFSETS).map(lambda t: t.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-12-01T05:04:41-10:00",
            "2026-12-01T05:04:41.123456789Z",
            "yesterday",
            "",
        ]
    ),
    TEXT,
)
STRING_MAP = st.dictionaries(TEXT, TEXT, max_size=5) | JSON
ALERT = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved"]) | JSON,
        "labels": STRING_MAP,
        "startsAt": TIMES | JSON,
    },
    optional={
        "annotations": STRING_MAP,
        "endsAt": TIMES,
        "generatorURL": TEXT,
        "fingerprint": TEXT,
        "extra": JSON,
    },
)
PAYLOAD = st.fixed_dictionaries(
    {
        "version": st.just("4") | JSON,
        "status": st.sampled_from(["firing", "resolved"]),
        "alerts": st.lists(ALERT, max_size=4),
    },
    optional={
        "truncatedAlerts": st.integers() | st.floats() | JSON,
        "groupKey": TEXT | JSON,
        "receiver": TEXT,
        "commonLabels": STRING_MAP,
    },
)


def assert_storable(payload: Any) -> None:
    """Everything the parser accepted can be written as UTF-8 and is dated in UTC, in range."""
    json.dumps([payload.group_key, payload.receiver], ensure_ascii=False).encode("utf-8")
    for alert in payload.alerts:
        for mapping in (alert.labels, alert.annotations):
            json.dumps(mapping, ensure_ascii=False).encode("utf-8")
        assert alert.starts_at.utcoffset() == timedelta(0)
        assert alert.starts_at.tzinfo is UTC
        assert EARLIEST <= alert.starts_at < LATEST
        if alert.ends_at is not None:
            assert alert.ends_at.utcoffset() == timedelta(0)
    assert 0 <= payload.truncated_alerts < 2**63


@budget(PARSER_EXAMPLES)
@given(st.binary(max_size=300) | JSON.map(lambda d: json.dumps(d).encode()))
def test_any_body_is_a_payload_or_a_payload_error(body: bytes) -> None:
    try:
        _, payload = parse_body(body)
    except PayloadError as exc:
        assert ":" in str(exc)  # `where: what`
        return
    assert_storable(payload)


@budget(PARSER_EXAMPLES)
@given(PAYLOAD)
def test_near_valid_documents_are_parsed_or_refused_naming_a_field(document: Any) -> None:
    try:
        payload = parse_payload(document)
    except PayloadError as exc:
        where = str(exc).split(":", 1)[0]
        assert where and (where.split("[")[0].split(".")[0] in document or where == "payload")
        return
    assert_storable(payload)


@budget(PARSER_EXAMPLES)
@given(PAYLOAD)
def test_what_parses_as_a_document_parses_the_same_as_its_json_text(document: Any) -> None:
    try:
        expected = parse_payload(document)
    except PayloadError:
        return
    text = json.dumps(document).encode()  # ASCII escapes, as Alertmanager may send
    assert parse_body(text)[1] == expected
