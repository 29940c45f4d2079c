"""The Alertmanager webhook payload (version 4): parse and validate into typed alerts.

Validation is a JSON schema, compiled once by fastjsonschema (the receiver's hot path: several
times faster than interpreting it), so a 400 names the field (`alerts[1]: must contain
['startsAt'] properties`). Unknown fields are ignored: Alertmanager adds fields over versions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import fastjsonschema

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

PAYLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "status", "alerts"],
    "properties": {
        "version": {"type": "string", "enum": ["4"]},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer", "minimum": 0},
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
    """An RFC 3339 time as Alertmanager writes it (nanoseconds and `Z` included)."""
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
    end = parse_time(text, where=where)
    # Alertmanager sends 0001-01-01T00:00:00Z for "no end".
    return None if end.year <= 1 else end


def parse_payload(document: Any) -> Payload:
    """Validate a decoded JSON document and return the typed payload."""
    try:
        _VALIDATE(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise PayloadError(_describe(exc)) from None
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
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body: not valid JSON ({exc})") from exc
    return document, parse_payload(document)
