"""On-call replay: re-run a stored alert (by decision id) or a given payload through the decider.

A replay is a decision like any other: its payload is stored first (source `replay`, the on-call
person as actor), then `Service.decide_payload` decides, records, logs and counts it. Only the
`Overrides` (recent window, cooldown) can be waived; opt-out, namespace deny, bad marks, paused
and the circuit breaker are policy the decider applies regardless, so a replay that meets them is
skipped with that reason and the answer says plainly that it was refused and why.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from webhook import contract, jsontext
from webhook.alerts import PayloadError, parse_payload, parse_time
from webhook.ask import Overrides, Request
from webhook.audit import AuditStore
from webhook.contract import SkipReason, Source
from webhook.decision import Decision
from webhook.service import Service

log = logging.getLogger(__name__)

OVERRIDE_KEYS = ("ignore_recent_window", "ignore_cooldown")
# Skip reasons an override can get past, and the override that does.
OVERRIDABLE: dict[str, str] = {
    SkipReason.NO_RECENT_ROLLOUT: "ignore_recent_window",
    SkipReason.COOLDOWN: "ignore_cooldown",
}
MAX_REASON_CHARS = 2000
_BODY_KEYS = ("audit_id", "payload", "dry_run", "reason", "overrides")


class ReplayError(Exception):
    """The replay cannot be run; `status` is the HTTP status, the message names what was wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ReplayAsk:
    """A validated replay request: exactly one of `audit_id` and `payload`."""

    reason: str
    audit_id: str | None = None
    payload: dict[str, Any] | None = None
    dry_run: bool = True
    overrides: Overrides = field(default_factory=Overrides)


def parse_overrides(value: Any) -> Overrides:
    """`{"ignore_recent_window": true, ...}` -> Overrides; any other key is a ReplayError(400)."""
    if value is None:
        return Overrides()
    if not isinstance(value, dict):
        raise ReplayError(400, "overrides: expected an object of booleans")
    for key, flag in value.items():
        if key not in OVERRIDE_KEYS:
            raise ReplayError(
                400,
                f"overrides.{key}: not overridable (only {', '.join(OVERRIDE_KEYS)}; opt-out, "
                "namespace deny, bad marks, paused and the circuit breaker never are)",
            )
        if not isinstance(flag, bool):
            raise ReplayError(400, f"overrides.{key}: expected true or false")
    return Overrides(**{k: bool(v) for k, v in value.items()})


def parse_ask(body: Any) -> ReplayAsk:
    """Validate a `POST /api/v1/replay` body; ReplayError(400) names the offending field."""
    if not isinstance(body, dict):
        raise ReplayError(400, "body: expected a JSON object")
    for key in body:
        if key not in _BODY_KEYS:
            raise ReplayError(400, f"{key}: unknown field (expected {', '.join(_BODY_KEYS)})")
    audit_id, payload = body.get("audit_id"), body.get("payload")
    if (audit_id is None) == (payload is None):
        raise ReplayError(400, "audit_id or payload: give exactly one of them")
    if audit_id is not None and (not isinstance(audit_id, str) or not audit_id.strip()):
        raise ReplayError(400, "audit_id: expected a decision id string")
    if payload is not None and not isinstance(payload, dict):
        raise ReplayError(400, "payload: expected an Alertmanager webhook payload object")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ReplayError(400, "reason: required, say why this alert is replayed")
    if len(reason) > MAX_REASON_CHARS:
        raise ReplayError(400, f"reason: longer than {MAX_REASON_CHARS} characters")
    dry_run = body.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise ReplayError(400, "dry_run: expected true or false")
    return ReplayAsk(
        reason=reason.strip(),
        audit_id=audit_id.strip() if isinstance(audit_id, str) else None,
        payload=payload,
        dry_run=dry_run,
        overrides=parse_overrides(body.get("overrides")),
    )


def refusal(decision: Decision, *, note: str = "") -> dict[str, Any] | None:
    """Why a replayed decision did not (or would not) roll back, or None when it did (would).

    `note` is the replay's own prefix of the detail (Request.note), left out here.
    """
    if decision.outcome in (contract.ROLLED_BACK, contract.DRY_RUN):
        return None
    detail = decision.detail.removeprefix(f"{note} | ") if note else decision.detail
    reason = decision.reason or decision.outcome
    override = OVERRIDABLE.get(reason or "")
    if decision.outcome == contract.FAILED:
        message = f"failed: {reason}: {detail}"
    elif override and override not in decision.overrides:
        message = f"skipped: {reason}: {detail} (a replay may set overrides.{override})"
    else:
        message = f"refused: {reason}: {detail} (never overridable by a replay)"
    return {
        "outcome": decision.outcome,
        "reason": reason,
        "overridable_with": override,
        "message": message,
    }


@dataclass
class ReplayResult:
    """What one replay decided; `as_dict` is the API answer."""

    payload_id: str
    replay_of: str | None
    actor: str
    reason: str
    dry_run: bool
    decisions: list[Decision]
    note: str = ""  # the prefix Request.note put on each decision's detail

    @cached_property
    def refusals(self) -> list[dict[str, Any]]:
        """The refusal of each decision that did not (or would not) roll back."""
        found = [refusal(d, note=self.note) for d in self.decisions]
        return [r for r in found if r is not None]

    def summary(self) -> str:
        """One line for people: what happened (or would) and, when refused, why."""
        lines = []
        for decision in self.decisions:
            refused = refusal(decision, note=self.note)
            target = f"{decision.namespace}/{decision.deployment}"
            if refused:
                lines.append(f"{target}: {refused['message']}")
            elif decision.outcome == contract.DRY_RUN:
                lines.append(
                    f"{target}: preview: would roll back revision {decision.from_revision} -> "
                    f"revision {decision.to_revision} (nothing changed)"
                )
            else:
                lines.append(
                    f"{target}: rolled back revision {decision.from_revision} -> "
                    f"revision {decision.to_revision}"
                )
        return "; ".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "payload_id": self.payload_id,
            "replay_of": self.replay_of,
            "actor": self.actor,
            "reason": self.reason,
            "dry_run": self.dry_run,
            "refused": bool(self.refusals),
            "summary": self.summary(),
            "refusals": self.refusals,
            "decisions": [d.as_dict() for d in self.decisions],
        }


def find_alert(row: dict[str, Any], document: Any) -> dict[str, Any] | None:
    """The alert of a stored payload that decision `row` was about: the one with its labels and
    fingerprint and, where several have both, its startsAt. A fingerprint alone is whatever
    the sender wrote: two alerts of one payload may carry the same one, and the labels are what
    name the Deployment."""
    alerts = document.get("alerts") if isinstance(document, dict) else None
    candidates = [
        a
        for a in alerts or []
        if isinstance(a, dict)
        and a.get("labels") == row["labels"]
        and (a.get("fingerprint") or "") == (row["fingerprint"] or "")
    ]
    if len(candidates) > 1:
        decided = _time_or_none(row.get("starts_at"))
        for alert in candidates:
            if decided is not None and _time_or_none(alert.get("startsAt")) == decided:
                return alert
    return candidates[0] if candidates else None


def _time_or_none(value: Any) -> datetime | None:
    """A startsAt as stored (text) or sent, as a time; None when it is none."""
    try:
        return parse_time(str(value), where="startsAt") if value else None
    except ValueError:
        return None


def stored_alert_payload(audit: AuditStore, decision_id: str) -> dict[str, Any]:
    """A one-alert payload with the alert decision `decision_id` was about, from its raw payload."""
    row = audit.get(decision_id)
    if row is None:
        raise ReplayError(404, f"audit_id {decision_id}: no such decision")
    if not row["payload_id"]:
        raise ReplayError(409, f"audit_id {decision_id}: no stored payload to replay")
    stored = audit.payload(row["payload_id"])
    if stored is None:
        raise ReplayError(
            409, f"audit_id {decision_id}: payload {row['payload_id']} is gone (retention)"
        )
    try:
        document = jsontext.loads(stored.body, where=f"payload {stored.id}")
    except ValueError as exc:
        raise ReplayError(409, f"payload {stored.id}: stored body is not JSON ({exc})") from exc
    alert = find_alert(row, document)
    if alert is None:
        raise ReplayError(
            409,
            f"audit_id {decision_id}: its alert (fingerprint {row['fingerprint'] or '-'}) is not "
            f"in stored payload {stored.id}",
        )
    return {**document, "alerts": [alert], "truncatedAlerts": 0, "status": alert["status"]}


def run_replay(service: Service, ask: ReplayAsk, *, actor: str) -> ReplayResult:
    """Store the payload, decide it as `actor` with the ask's dry_run and overrides, record why.

    Raises ReplayError (404 unknown audit_id; 409 payload gone, or executing while the server
    runs with dry_run: true; 400 invalid payload) and AuditUnavailable when the store cannot be
    written.
    """
    if not ask.dry_run and service.settings.dry_run:
        # The configured dry_run is the operator's "watch only" switch: a person cannot turn
        # it off for one replay (the service's RBAC may not even allow the write).
        raise ReplayError(
            409,
            "dry_run: the server runs with dry_run: true (watch only), so a replay can only "
            "preview; set dry_run: false in the configuration to act",
        )
    if ask.audit_id is not None:
        document = stored_alert_payload(service.audit, ask.audit_id)
    else:
        document = ask.payload or {}
    try:
        payload = parse_payload(document)
    except PayloadError as exc:
        message = str(exc)  # names the field from the payload's root
        where = message if message.startswith("payload") else f"payload.{message}"
        raise ReplayError(400, where) from exc
    payload_id = service.store(json.dumps(document), source=Source.REPLAY, actor=actor)
    mode = "preview (dry run)" if ask.dry_run else "execute"
    request = Request(
        note=f"replay {mode} by {actor}: {ask.reason}",
        source=Source.REPLAY,
        actor=actor,
        payload_id=payload_id,
        group_key=payload.group_key,
        dry_run=ask.dry_run,
        overrides=ask.overrides,
        replay_of=ask.audit_id,
    )
    decisions = service.decide_payload(payload, request)
    result = ReplayResult(
        payload_id=payload_id,
        replay_of=ask.audit_id,
        actor=actor,
        reason=ask.reason,
        dry_run=ask.dry_run,
        decisions=decisions,
        note=request.note,
    )
    log.info(
        json.dumps(
            {
                "event": "replay",
                "actor": actor,
                "reason": ask.reason[:200],
                "replay_of": ask.audit_id,
                "dry_run": ask.dry_run,
                "overrides": ask.overrides.as_dict(),
                "decisions": [d.id for d in decisions],
                "refused": bool(result.refusals),
            },
            sort_keys=True,
        )
    )
    return result
