"""The Deployments in scope, read from the cluster: for the health tracker and the circuit
breaker's view of every replica's rollbacks."""

from __future__ import annotations

from collections.abc import Callable

from webhook.config import Namespaces
from webhook.kube import Cluster, KubeError
from webhook.scope import namespace_refusal
from webhook.views import Obj


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
