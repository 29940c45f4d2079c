"""Opt-in (README, safety policy): one rule for the receiver and the health tracker.

The Deployment's own `auto-rollback/enabled` annotation decides when it has one ("false" always
wins); otherwise its namespace's label of the same name ("false" opts out even with
require_opt_in: false); otherwise `require_opt_in`.
"""

from __future__ import annotations

from collections.abc import Callable

from webhook import contract


def opt_in(
    annotations: dict[str, str],
    namespace_label: Callable[[], str | None],
    *,
    namespace: str,
    require_opt_in: bool,
) -> tuple[bool, str]:
    """(acts, why). `namespace_label` is only called when the Deployment says nothing."""
    key = contract.ANNOTATION_ENABLED
    value = annotations.get(key)
    if value == "false":
        return False, f'{key} is "false"'
    if value == "true":
        return True, f'{key} is "true"'
    label = namespace_label()
    if label == "false":
        return False, f'namespace {namespace} has {key}: "false"'
    if label == "true":
        return True, f'namespace {namespace} has {key}: "true"'
    if not require_opt_in:
        return True, "require_opt_in is false"
    return False, f'neither the Deployment nor namespace {namespace} has {key}: "true"'
