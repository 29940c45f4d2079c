"""Audit queries shared by the on-call API and the console: filters, pages, one decision's detail.

Query parameters are validated here (FilterError names the parameter); no HTTP framework.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from webhook import contract, jsontext
from webhook.alerts import parse_time
from webhook.audit import AuditStore
from webhook.audit.rows import LoginOutcome
from webhook.config import ConfigError, DurationTooLong, parse_duration

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_FILTER_KEYS = ("namespace", "deployment", "outcome", "since", "limit", "before")
_LOGIN_KEYS = ("outcome", "since", "limit")


class FilterError(ValueError):
    """A query parameter of the audit API is invalid; the message names it."""


@dataclass(frozen=True)
class AuditFilters:
    """What `GET /api/v1/audit` (and the console list) filter and page by."""

    namespace: str | None = None
    deployment: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    before: str | None = None
    limit: int = DEFAULT_LIMIT


def parse_since(text: str, *, now: datetime) -> datetime:
    """RFC 3339 time, or a duration (`90s`, `30m`, `2h`, `1h30m`) meaning that long before now."""
    try:
        return now - timedelta(seconds=parse_duration(text, key="since"))
    except DurationTooLong:
        raise FilterError(f"since: duration {text!r} reaches before any stored time") from None
    except ConfigError:
        pass
    try:
        return parse_time(text, where="since")
    except ValueError as exc:
        if "out of range" in str(exc):
            raise FilterError(str(exc)) from None
        raise FilterError(
            f"since: expected an RFC 3339 time or a duration like 2h, got {text!r}"
        ) from None


def parse_filters(args: Mapping[str, str], *, now: datetime, strict: bool = True) -> AuditFilters:
    """Query parameters -> AuditFilters; FilterError names a bad or (when strict) unknown one."""
    if strict:
        _known(args, _FILTER_KEYS)
    outcome = (args.get("outcome") or "").strip() or None
    if outcome and outcome not in contract.OUTCOMES:
        raise FilterError(f"outcome: {outcome!r} is not one of {', '.join(contract.OUTCOMES)}")
    since_text = (args.get("since") or "").strip()
    return AuditFilters(
        namespace=(args.get("namespace") or "").strip() or None,
        deployment=(args.get("deployment") or "").strip() or None,
        outcome=outcome,
        since=parse_since(since_text, now=now) if since_text else None,
        before=(args.get("before") or "").strip() or None,
        limit=_limit(args),
    )


def _known(args: Mapping[str, str], keys: tuple[str, ...]) -> None:
    for key in args:
        if key not in keys:
            raise FilterError(f"{key}: unknown parameter (expected {', '.join(keys)})")


def _limit(args: Mapping[str, str]) -> int:
    limit_text = (args.get("limit") or "").strip()
    if not limit_text:
        return DEFAULT_LIMIT
    # Only ASCII digits: str.isdigit() also accepts '²', which int() refuses.
    if not re.fullmatch(r"[0-9]{1,6}", limit_text) or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise FilterError(f"limit: expected 1 to {MAX_LIMIT}, got {limit_text!r}")
    return int(limit_text)


def login_attempts(
    audit: AuditStore, args: Mapping[str, str], *, now: datetime
) -> list[dict[str, Any]]:
    """`GET /api/v1/logins`: the console's login attempts through every replica on the store,
    newest first, filtered by outcome (ok, failed, rate_limited) and since; FilterError names
    a bad parameter."""
    _known(args, _LOGIN_KEYS)
    outcome = (args.get("outcome") or "").strip() or None
    if outcome and outcome not in tuple(LoginOutcome):
        expected = ", ".join(LoginOutcome)
        raise FilterError(f"outcome: {outcome!r} is not one of {expected}")
    since_text = (args.get("since") or "").strip()
    since = parse_since(since_text, now=now) if since_text else None
    return audit.login_attempts(outcome=outcome, since=since, limit=_limit(args))


def audit_page(audit: AuditStore, filters: AuditFilters) -> tuple[list[dict[str, Any]], str | None]:
    """One page of decisions, newest first, and the `before` cursor of the next page (or None)."""
    if filters.before and audit.get(filters.before) is None:
        raise FilterError(f"before: no decision {filters.before!r}")
    rows = audit.query(
        namespace=filters.namespace,
        deployment=filters.deployment,
        outcome=filters.outcome,
        since=filters.since,
        before_id=filters.before,
        limit=filters.limit + 1,  # one more tells whether a next page exists
    )
    page = rows[: filters.limit]
    more = len(rows) > filters.limit
    return page, (page[-1]["id"] if more and page else None)


def decision_detail(audit: AuditStore, decision_id: str) -> dict[str, Any] | None:
    """The decision, its stored payload (body parsed when it is JSON) and the replays of it."""
    row = audit.get(decision_id)
    if row is None:
        return None
    payload: dict[str, Any] | None = None
    stored = audit.payload(row["payload_id"]) if row["payload_id"] else None
    if stored is not None:
        try:  # as the receiver reads it: a body it would refuse (stored before) stays text
            body: Any = jsontext.loads(stored.body)
        except ValueError:
            body = stored.body
        payload = {
            "id": stored.id,
            "received_at": stored.received_at,
            "source": stored.source,
            "actor": stored.actor,
            "group_key": stored.group_key,
            "truncated_alerts": stored.truncated_alerts,
            "body": body,
        }
    return {"decision": row, "payload": payload, "replays": audit.replays_of(decision_id)}
