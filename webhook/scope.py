"""Which namespaces the service acts in (`namespaces.allow` / `namespaces.deny`), one rule for
the receiver, the health tracker and the circuit breaker's view of the cluster. Pure."""

from __future__ import annotations

from webhook.config import Namespaces


def namespace_refusal(namespace: str, policy: Namespaces) -> str | None:
    """Why `namespace` is out of scope, or None when it is in."""
    if namespace in policy.deny:
        return f"namespace {namespace} is in namespaces.deny"
    if policy.allow and namespace not in policy.allow:
        return f"namespace {namespace} is not in namespaces.allow"
    return None
