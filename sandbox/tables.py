"""Server-side printing: `meta.k8s.io/v1 Table` answers for `kubectl get`.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the columns the
server chooses. Columns and cell formats follow kubernetes/kubernetes
pkg/printers/internalversion/printers.go (printDeployment, printReplicaSet, printPod,
printNamespace, printEvent, printLease); ages use apimachinery's duration.HumanDuration.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sandbox.discovery import ResourceInfo
from sandbox.store import parse_time

Row = list[Any]


def wants_table(accept: str) -> bool:
    """Whether an Accept header asks for a Table."""
    return "as=Table" in accept


def human_duration(age: timedelta) -> str:
    """apimachinery/pkg/util/duration.HumanDuration."""
    seconds = int(age.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // 24 // 365, (hours // 24) % 365
    if hours < 24 * 365 * 8:
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{years}y"


def _ago(stamp: str | None, now: datetime) -> str:
    return human_duration(now - parse_time(stamp)) if stamp else "<unknown>"


def _age(obj: dict[str, Any], now: datetime) -> str:
    return _ago((obj.get("metadata") or {}).get("creationTimestamp"), now)


def _wide_workload(spec: dict[str, Any]) -> Row:
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    selector = spec.get("selector") or {}
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        values = ",".join(expression.get("values") or [])
        parts.append(f"{expression.get('key')} {expression.get('operator', '').lower()} ({values})")
    return [
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
        ",".join(parts) or "<none>",
    ]


def _deployment(obj: dict[str, Any], now: datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(obj, now),
        *_wide_workload(spec),
    ]


def _replicaset(obj: dict[str, Any], now: datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        obj["metadata"]["name"],
        spec.get("replicas", 1),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(obj, now),
        *_wide_workload(spec),
    ]


def _pod(obj: dict[str, Any], now: datetime) -> Row:
    status = obj.get("status") or {}
    containers = (obj.get("spec") or {}).get("containers") or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for entry in statuses if entry.get("ready"))
    restarts = sum(int(entry.get("restartCount", 0)) for entry in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for entry in statuses:  # printPod: a waiting or terminated container names the reason
        state = entry.get("state") or {}
        detail = state.get("waiting") or state.get("terminated")
        if detail and detail.get("reason"):
            reason = detail["reason"]
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return [
        obj["metadata"]["name"],
        f"{ready}/{len(containers)}",
        reason,
        restarts,
        _age(obj, now),
        status.get("podIP") or "<none>",
        (obj.get("spec") or {}).get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


def _namespace(obj: dict[str, Any], now: datetime) -> Row:
    return [
        obj["metadata"]["name"],
        (obj.get("status") or {}).get("phase", "Active"),
        _age(obj, now),
    ]


def _event(obj: dict[str, Any], now: datetime) -> Row:
    involved = obj.get("involvedObject") or {}
    stamp = (
        obj.get("lastTimestamp") or obj.get("eventTime") or obj["metadata"].get("creationTimestamp")
    )
    target = f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
    return [
        _ago(stamp, now),
        obj.get("type", ""),
        obj.get("reason", ""),
        target,
        obj.get("message", ""),
    ]


def _lease(obj: dict[str, Any], now: datetime) -> Row:
    holder = (obj.get("spec") or {}).get("holderIdentity") or "<none>"
    return [obj["metadata"]["name"], holder, _age(obj, now)]


def _default(obj: dict[str, Any], now: datetime) -> Row:
    return [obj["metadata"]["name"], _age(obj, now)]


_NAME = ("Name", "string", "name")
_AGE = ("Age", "string", "")
# Columns only `-o wide` shows (priority 1).
_WIDE_WORKLOAD = (
    ("Containers", "string", "wide"),
    ("Images", "string", "wide"),
    ("Selector", "string", "wide"),
)
_WIDE_POD = (
    ("IP", "string", "wide"),
    ("Node", "string", "wide"),
    ("Nominated Node", "string", "wide"),
    ("Readiness Gates", "string", "wide"),
)
PRINTERS: dict[str, tuple[tuple[tuple[str, str, str], ...], Callable[..., Row]]] = {
    "deployments": (
        (
            _NAME,
            ("Ready", "string", ""),
            ("Up-to-date", "integer", ""),
            ("Available", "integer", ""),
            _AGE,
            *_WIDE_WORKLOAD,
        ),
        _deployment,
    ),
    "replicasets": (
        (
            _NAME,
            ("Desired", "integer", ""),
            ("Current", "integer", ""),
            ("Ready", "integer", ""),
            _AGE,
            *_WIDE_WORKLOAD,
        ),
        _replicaset,
    ),
    "pods": (
        (
            _NAME,
            ("Ready", "string", ""),
            ("Status", "string", ""),
            ("Restarts", "string", ""),
            _AGE,
            *_WIDE_POD,
        ),
        _pod,
    ),
    "namespaces": ((_NAME, ("Status", "string", ""), _AGE), _namespace),
    "events": (
        (
            ("Last Seen", "string", ""),
            ("Type", "string", ""),
            ("Reason", "string", ""),
            ("Object", "string", ""),
            ("Message", "string", ""),
        ),
        _event,
    ),
    "leases": ((_NAME, ("Holder", "string", ""), _AGE), _lease),
}


def _partial(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def table(
    info: ResourceInfo,
    items: list[dict[str, Any]],
    *,
    now: datetime,
    list_meta: dict[str, Any] | None = None,
    include_object: str = "PartialObjectMetadata",
) -> dict[str, Any]:
    """A Table of `items` with the kind's columns (rows carry partial object metadata,
    or the whole object with includeObject=Object, as kubectl asks for -o wide/labels)."""
    columns, printer = PRINTERS.get(info.resource, ((_NAME, _AGE), _default))
    definitions = [
        {
            "name": name,
            "type": kind,
            "format": "" if fmt == "wide" else fmt,
            "description": name,
            "priority": 1 if fmt == "wide" else 0,
        }
        for name, kind, fmt in columns
    ]
    rows = []
    for obj in items:
        row_object: dict[str, Any] | None = obj if include_object == "Object" else _partial(obj)
        if include_object == "None":
            row_object = None
        rows.append({"cells": printer(obj, now), "object": row_object})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": definitions,
        "rows": rows,
    }
