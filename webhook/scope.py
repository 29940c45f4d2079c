"""Which namespaces the service acts in (`namespaces.allow` / `namespaces.deny`), one rule for
the receiver, the health tracker and the circuit breaker's view of the cluster."""

from __future__ import annotations

from collections.abc import Callable

from webhook.config import Namespaces
from webhook.kube import Cluster, KubeError, Obj


def namespace_refusal(namespace: str, policy: Namespaces) -> str | None:
    """Why `namespace` is out of scope, or None when it is in."""
    if namespace in policy.deny:
        return f"namespace {namespace} is in namespaces.deny"
    if policy.allow and namespace not in policy.allow:
        return f"namespace {namespace} is not in namespaces.allow"
    return None


def deployments_in_scope(
    cluster: Cluster,
    policy: Namespaces,
    *,
    on_error: Callable[[str, KubeError], None] | None = None,
) -> list[Obj]:
    """The Deployments of every namespace in scope.

    With an allow list, one LIST per allowed namespace: a namespaced install may not list
    cluster-wide. A failed LIST raises, unless `on_error(scope, error)` takes it.
    """
    scopes: list[str | None] = list(policy.allow) if policy.allow else [None]
    found: list[Obj] = []
    for scope in scopes:
        try:
            found.extend(cluster.list_deployments(scope))
        except KubeError as exc:
            if on_error is None:
                raise
            on_error(scope or "all namespaces", exc)
    return [d for d in found if namespace_refusal(d["metadata"]["namespace"], policy) is None]
