"""The Decision record: one per alert, the same shape in responses, the audit and logs."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any


def new_id(now: datetime) -> str:
    """Sortable unique id: UTC time to the millisecond, then randomness."""
    return (
        f"d-{now.year:04d}{now.month:02d}{now.day:02d}T{now.hour:02d}{now.minute:02d}"
        f"{now.second:02d}{now.microsecond // 1000:03d}-{secrets.token_hex(4)}"
    )


@dataclass
class Decision:
    """What was decided for one alert, and why. Outcome and reason strings: webhook.contract."""

    id: str
    time: datetime
    source: str  # alertmanager | replay
    outcome: str
    reason: str | None = None
    detail: str = ""
    actor: str = ""
    payload_id: str | None = None
    group_key: str = ""
    fingerprint: str = ""
    alertname: str = ""
    trigger: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    namespace: str = ""
    deployment: str = ""
    from_revision: int | None = None
    to_revision: int | None = None
    from_replicaset: str = ""
    to_replicaset: str = ""
    dry_run: bool = False
    overrides: dict[str, bool] = field(default_factory=dict)
    replay_of: str | None = None
    duration_ms: float = 0.0
    # Not stored: whether the failure is worth an Alertmanager retry (5xx to the sender).
    transient: bool = False
    # Not stored: the write's outcome is unknown (a timeout the re-read could not settle); its
    # write-ahead intent stays open for the reconciler instead of a record saying "failed".
    unsettled: bool = False
    # Not stored: rolled back, but the bad-revision mark failed; the reconciler finishes it.
    mark_pending: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as RFC 3339 strings); shallow, so cheap per request."""
        data = {name: getattr(self, name) for name in _PUBLIC_FIELDS}
        data["labels"] = dict(self.labels)
        data["overrides"] = dict(self.overrides)
        data["time"] = self.time.isoformat()
        data["starts_at"] = self.starts_at.isoformat() if self.starts_at else None
        return data


_PUBLIC_FIELDS = tuple(
    f.name for f in fields(Decision) if f.name not in {"transient", "unsettled", "mark_pending"}
)
