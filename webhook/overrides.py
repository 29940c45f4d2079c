"""The settings as they apply to one Deployment: its `auto-rollback/*` annotation overrides.

One rule for the receiver, the health tracker and `history`; pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook import contract
from webhook.config import ConfigError, Settings, parse_duration


@dataclass(frozen=True)
class Policy:
    """The settings as they apply to one Deployment (annotation overrides included)."""

    min_healthy_seconds: int
    recent_rollout_window: int
    cooldown: int
    notes: tuple[str, ...] = ()


_KEYS = {
    "min_healthy_seconds": contract.ANNOTATION_MIN_HEALTHY_SECONDS,
    "recent_rollout_window": contract.ANNOTATION_RECENT_ROLLOUT_WINDOW,
    "cooldown": contract.ANNOTATION_COOLDOWN,
}


def policy_for(settings: Settings, deployment: Mapping[str, Any]) -> Policy:
    """Settings with the Deployment's `auto-rollback/*` overrides; bad values ignored, noted."""
    annotations = (deployment.get("metadata") or {}).get("annotations") or {}
    values = {
        "min_healthy_seconds": int(settings.min_healthy_seconds),
        "recent_rollout_window": int(settings.recent_rollout_window),
        "cooldown": int(settings.cooldown),
    }
    notes = []
    for name, key in _KEYS.items():
        if key in annotations:
            try:
                values[name] = parse_duration(annotations[key], key=key)
            except ConfigError as exc:
                notes.append(f"ignored {exc}")
    return Policy(**values, notes=tuple(notes))
