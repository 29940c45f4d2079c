"""Who asks for the decisions of one payload, and how: the decision's inputs besides the alert."""

from __future__ import annotations

from dataclasses import dataclass, field

from webhook.contract import Source


@dataclass(frozen=True)
class Overrides:
    """What an on-call replay may waive. Nothing else is ever overridable."""

    ignore_recent_window: bool = False
    ignore_cooldown: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class Request:
    """Who asks for the decisions of one payload, and how."""

    source: Source = Source.ALERTMANAGER
    actor: str = ""
    payload_id: str | None = None
    group_key: str = ""
    dry_run: bool | None = None  # None: the configured dry_run
    overrides: Overrides = field(default_factory=Overrides)
    replay_of: str | None = None
    note: str = ""  # prefixed to every decision's detail (a replay's actor and reason)
    truncated_alerts: int = 0  # Alertmanager's count of alerts left out of the payload
