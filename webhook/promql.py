"""PromQL the webhook sends, built from validated values: the revision-health queries and the
alert expression carried in an Alertmanager generatorURL.

Pure string building, no I/O; `prom` sends these (and stays the only module that imports
`prometheus_api_client`).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit


def promql_string(value: str) -> str:
    """Quote `value` as a PromQL double-quoted string literal.

    PromQL's lexer accepts Go escapes (\\\\, \\", \\n, \\uXXXX), a superset of JSON's, so JSON
    string encoding is a correct and complete escaper (a quote in a label value cannot end the
    matcher early).
    """
    return json.dumps(value, ensure_ascii=False)


def readiness_query(
    *, namespace: str, replicaset: str, window_seconds: int, step_seconds: int
) -> str:
    """PromQL for the worst ready fraction of a ReplicaSet's pods, and its coverage, over a window.

    Evaluated as an instant query at the window's end. With F, the ready fraction at one step,

        sum(max by (namespace, pod) (kube_pod_status_ready{namespace="shop", condition="true"})
          * on (namespace, pod)
          max by (namespace, pod) (kube_pod_owner{namespace="shop", owner_kind="ReplicaSet",
                                                  owner_name="web-7d9f"}))
        / count(max by (namespace, pod) (kube_pod_owner{...same...}))

    the query (one line on the wire) is

        label_replace(min_over_time((F)[600s:30s]), "stat", "worst", "", "")
        or label_replace(count_over_time((F)[600s:30s]), "stat", "steps", "", "")

    `stat="worst"` is the lowest fraction at any step that had data; `stat="steps"` counts the
    steps that had data, so a gap (kube-state-metrics down, the ReplicaSet not yet scraped) is
    told apart from readiness. `max by (namespace, pod)` folds duplicate kube-state-metrics
    replicas; a pod with no readiness series counts as not ready (a step where no pod has one
    counts as missing).
    """
    owner = (
        f"max by (namespace, pod) (kube_pod_owner{{namespace={promql_string(namespace)}, "
        f'owner_kind="ReplicaSet", owner_name={promql_string(replicaset)}}})'
    )
    ready = (
        f"max by (namespace, pod) (kube_pod_status_ready{{namespace={promql_string(namespace)}, "
        f'condition="true"}})'
    )
    subquery = (
        f"(sum({ready} * on (namespace, pod) {owner}) / count({owner}))"
        f"[{window_seconds}s:{step_seconds}s]"
    )
    return (
        f'label_replace(min_over_time({subquery}), "stat", "worst", "", "") or '
        f'label_replace(count_over_time({subquery}), "stat", "steps", "", "")'
    )


def alerts_query(*, namespace: str, replicaset: str, window_seconds: int) -> str:
    """PromQL for rollback-trigger alerts that fired for a ReplicaSet over a window.

    Evaluated as an instant query at the window's end, e.g.:

        count by (alertname, rollback_trigger) (max_over_time(ALERTS{alertstate="firing",
        rollback_trigger!="", namespace="shop", replicaset="web-7d9f"}[600s]))

    One series per alert that was firing at any evaluation in the window; empty when none.
    """
    selector = (
        f'ALERTS{{alertstate="firing", rollback_trigger!="", '
        f"namespace={promql_string(namespace)}, replicaset={promql_string(replicaset)}}}"
    )
    return f"count by (alertname, rollback_trigger) (max_over_time({selector}[{window_seconds}s]))"


def expr_from_generator_url(generator_url: str) -> str | None:
    """The PromQL expression in an Alertmanager generatorURL, or None if it has none.

    Prometheus builds it as `<external url>/graph?g0.expr=<urlencoded expr>&g0.tab=1`.
    """
    try:
        parts = urlsplit(generator_url.strip())
    except ValueError:
        return None
    exprs = parse_qs(parts.query).get("g0.expr", [])
    expr = exprs[0].strip() if exprs else ""
    return expr or None
