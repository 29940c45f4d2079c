"""Opt-in (README, safety policy): one rule for the receiver and the health tracker.

The Deployment's own `auto-rollback/enabled` annotation decides when it has one; otherwise its
namespace's label of the same name; otherwise `require_opt_in`. Only "true" opts in: any other
value present ("false", "False", "no") opts out, even with require_opt_in: false.
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
    if value is not None:
        return _said(value, f"{key} is")
    label = namespace_label()
    if label is not None:
        return _said(label, f"namespace {namespace} has {key}:")
    if not require_opt_in:
        return True, "require_opt_in is false"
    return False, f'neither the Deployment nor namespace {namespace} has {key}: "true"'


def _said(value: str, where: str) -> tuple[bool, str]:
    """What a value that is present says: only "true" opts in. "False", "no" or " false" are
    read as the opt-out someone meant, never passed over to the next rule (which, with
    require_opt_in: false, would act on a Deployment its owner tried to exclude)."""
    if value == "true":
        return True, f'{where} "true"'
    if value == "false":
        return False, f'{where} "false"'
    return False, f'{where} {value[:100]!r}, which is not "true": read as "false"'
