"""The Alertmanager webhook payload (version 4): parse and validate into typed alerts.

Validation is a JSON schema, compiled once by fastjsonschema (the receiver's hot path: several
times faster than interpreting it), so a 400 names the field (`alerts[1]: must contain
['startsAt'] properties`). Unknown fields are ignored: Alertmanager adds fields over versions.

Hostile input is a 400 too, never a 5xx (Alertmanager retries those forever): a string that
cannot be stored as UTF-8 (a lone surrogate escape), a count beyond a 64-bit column, a time
outside EARLIEST..LATEST or one that has no UTC equivalent, nesting deeper than the decoder
goes. Times are converted to UTC here, so everything downstream compares and writes UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fastjsonschema

from webhook import jsontext

# The audit stores counts in 64-bit integer columns (SQLite INTEGER, PostgreSQL bigint).
MAX_COUNT = 2**63 - 1
# Times outside this range are refused: nothing real is that old or that far ahead, and the
# decision adds and subtracts windows from them (year 1 minus an hour has no datetime).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

PAYLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "status", "alerts"],
    "properties": {
        "version": {"type": "string", "enum": ["4"]},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "receiver": {"type": "string"},
        "groupLabels": _STRING_MAP,
        "commonLabels": _STRING_MAP,
        "commonAnnotations": _STRING_MAP,
        "externalURL": {"type": "string"},
        "alerts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["status", "labels", "startsAt"],
                "properties": {
                    "status": {"type": "string", "enum": ["firing", "resolved"]},
                    "labels": _STRING_MAP,
                    "annotations": _STRING_MAP,
                    "startsAt": {"type": "string"},
                    "endsAt": {"type": "string"},
                    "generatorURL": {"type": "string"},
                    "fingerprint": {"type": "string"},
                },
            },
        },
    },
}

_VALIDATE = fastjsonschema.compile(PAYLOAD_SCHEMA)


class PayloadError(ValueError):
    """The payload is not a valid Alertmanager webhook message; the message names the field."""


@dataclass(frozen=True)
class Alert:
    """One alert of a payload, as the decision needs it."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    fingerprint: str
    index: int = 0

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class Payload:
    """A whole webhook message."""

    status: str
    receiver: str
    group_key: str
    truncated_alerts: int
    alerts: tuple[Alert, ...] = field(default_factory=tuple)


def _describe(error: fastjsonschema.JsonSchemaValueException) -> str:
    """`data.alerts[0] must contain [...]` -> `alerts[0]: must contain [...]`."""
    name = error.name or "data"
    message = error.message
    if message.startswith(name):
        message = message[len(name) :].strip()
    where = name.removeprefix("data").lstrip(".") or "payload"
    return f"{where}: {message}"


def parse_time(text: str, *, where: str) -> datetime:
    """An RFC 3339 time as Alertmanager writes it (nanoseconds and `Z` included), in UTC.

    The offset is applied, not dropped: `05:04:41-10:00` is `15:04:41Z`. PayloadError names
    `where` for text that is no such time, has no timezone or falls outside EARLIEST..LATEST.
    """
    parsed = _parse_offset_time(text, where=where)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:
        raise PayloadError(f"{where}: out of range: {text!r} has no UTC equivalent") from None
    if not EARLIEST <= utc < LATEST:
        raise PayloadError(
            f"{where}: out of range: {text!r} (expected {EARLIEST.year} to {LATEST.year - 1})"
        )
    return utc


def _parse_offset_time(text: str, *, where: str) -> datetime:
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    # Python parses at most microseconds: cut longer fractions (Go writes nanoseconds).
    if "." in value:
        head, _, rest = value.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = head + "." + rest[: min(digits, 6)] + rest[digits:]
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PayloadError(f"{where}: not an RFC 3339 time: {text!r}") from exc
    if parsed.tzinfo is None:
        raise PayloadError(f"{where}: time has no timezone: {text!r}")
    return parsed


def _optional_end(text: str | None, *, where: str) -> datetime | None:
    if not text:
        return None
    # Alertmanager sends 0001-01-01T00:00:00Z for "no end" (any offset on year 1 means it too).
    if _parse_offset_time(text, where=where).year <= 1:
        return None
    return parse_time(text, where=where)


def parse_payload(document: Any) -> Payload:
    """Validate a decoded JSON document and return the typed payload."""
    try:
        _VALIDATE(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise PayloadError(_describe(exc)) from None
    except RecursionError:
        raise PayloadError("payload: nested too deeply") from None
    try:
        jsontext.require_encodable(document)
    except jsontext.JsonTextError as exc:
        raise PayloadError(str(exc)) from None
    alerts = []
    for i, raw in enumerate(document["alerts"]):
        where = f"alerts[{i}]"
        alerts.append(
            Alert(
                status=raw["status"],
                labels=dict(raw["labels"]),
                annotations=dict(raw.get("annotations") or {}),
                starts_at=parse_time(raw["startsAt"], where=f"{where}.startsAt"),
                ends_at=_optional_end(raw.get("endsAt"), where=f"{where}.endsAt"),
                generator_url=raw.get("generatorURL", ""),
                fingerprint=raw.get("fingerprint", ""),
                index=i,
            )
        )
    return Payload(
        status=document["status"],
        receiver=document.get("receiver", ""),
        group_key=document.get("groupKey", ""),
        truncated_alerts=int(document.get("truncatedAlerts", 0)),
        alerts=tuple(alerts),
    )


def parse_body(body: bytes) -> tuple[Any, Payload]:
    """Decode JSON bytes; return the raw document and the payload (PayloadError on bad input)."""
    try:
        document = jsontext.loads(body)
    except jsontext.JsonTextError as exc:
        raise PayloadError(str(exc)) from None
    return document, parse_payload(document)
