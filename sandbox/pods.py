"""Pods of the sandbox: the kubelet's part (starting pods, the status they report) and pod
behaviours (crash loop, OOMKilled, slow) that drive the metrics. The ReplicaSet controller
that creates and deletes pods is `replicasets`.

A pod's behaviour comes from its annotations, which it inherits from the pod template:
`sandbox.auto-rollback/fault` = `crashloop` | `oomkilled` | `slow`, and for `slow`
`sandbox.auto-rollback/latency-seconds` (default 1.5). `set_behaviour`, or a new value of
those annotations on a running pod, changes it from then on. A started pod keeps its
behaviours in `sandbox.auto-rollback/behaviour-history`, so restart counts and request
counters are pure functions of the stored pod and the clock and never go backwards.

Timing model: a crashing container crashes as it starts, so
its restart count is 1 at once and grows by one every RESTART_PERIOD_SECONDS (or every
`sandbox.auto-rollback/restart-period-seconds`, to speed up end-to-end runs); it is never
ready. Healthy and slow pods are Running and ready as soon as they are created and serve
REQUESTS_PER_SECOND requests, at 0.5/0.8/1/1.3/1.8 times their latency for
50/30/15/4/1 % of them (healthy latency 0.05 s). Crashing pods serve nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sandbox.store import Store, clone, format_time, parse_time

FAULT_ANNOTATION: Final = "sandbox.auto-rollback/fault"
LATENCY_ANNOTATION: Final = "sandbox.auto-rollback/latency-seconds"
RESTART_PERIOD_ANNOTATION: Final = "sandbox.auto-rollback/restart-period-seconds"
HISTORY_ANNOTATION: Final = "sandbox.auto-rollback/behaviour-history"
FAULTS: Final = ("crashloop", "oomkilled", "slow")
CRASHING: Final = frozenset({"crashloop", "oomkilled"})

RESTART_PERIOD_SECONDS: Final = 20.0
REQUESTS_PER_SECOND: Final = 10.0
HEALTHY_LATENCY_SECONDS: Final = 0.05
DEFAULT_SLOW_LATENCY_SECONDS: Final = 1.5
NODE_NAME: Final = "sandbox-node"
HOST_IP: Final = "10.0.0.10"

# Latency of a request as a multiple of the pod's latency, and the share of requests at each
# (per mille), so the histogram has a spread and a P99 above the typical value.
LATENCY_SHAPE: Final = ((0.5, 500), (0.8, 300), (1.0, 150), (1.3, 40), (1.8, 10))

# Safe alphabet of k8s.io/apimachinery/pkg/util/rand (no vowels, no confusable characters).
SAFE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Segment:
    """One period of a pod's life with one behaviour."""

    since: datetime
    fault: str | None
    latency_seconds: float
    restart_period: float = 20.0


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: map each byte onto the safe alphabet."""
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in text.encode())


def fnv32a(data: bytes) -> int:
    """32-bit FNV-1a, the hash the Deployment controller names ReplicaSets with."""
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def _check_fault(fault: str | None, latency_seconds: float | None) -> float:
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown pod fault {fault!r}: expected one of {', '.join(FAULTS)}")
    if latency_seconds is not None and (
        not isinstance(latency_seconds, int | float) or not latency_seconds > 0
    ):
        raise ValueError(f"latency_seconds must be a positive number, got {latency_seconds!r}")
    if latency_seconds is not None:
        return float(latency_seconds)
    return DEFAULT_SLOW_LATENCY_SECONDS if fault == "slow" else HEALTHY_LATENCY_SECONDS


def behaviour_from_annotations(annotations: dict[str, str] | None) -> tuple[str | None, float]:
    """The (fault, latency) a pod template or pod asks for; unknown values count as healthy."""
    annotations = annotations or {}
    fault: str | None = annotations.get(FAULT_ANNOTATION) or None
    if fault not in FAULTS:
        fault = None
    latency: float | None = None
    try:
        if LATENCY_ANNOTATION in annotations:
            latency = float(annotations[LATENCY_ANNOTATION])
    except ValueError:
        latency = None
    if latency is not None and latency <= 0:
        latency = None
    if fault != "slow" and latency is None:
        return fault, HEALTHY_LATENCY_SECONDS
    return fault, _check_fault(fault, latency)


def segments(pod: dict[str, Any]) -> list[Segment]:
    """The pod's behaviour over its life, oldest first."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    raw = annotations.get(HISTORY_ANNOTATION)
    if raw:
        try:
            entries = json.loads(raw)
            return [
                Segment(
                    parse_time(e["since"]),
                    e.get("fault"),
                    float(e["latency_seconds"]),
                    float(e.get("restart_period_seconds", RESTART_PERIOD_SECONDS)),
                )
                for e in entries
            ]
        except (ValueError, KeyError, TypeError):
            pass  # a hand-edited history: fall back to the current annotations
    start = (pod.get("status") or {}).get("startTime") or meta.get("creationTimestamp") or ""
    fault, latency = behaviour_from_annotations(annotations)
    return [Segment(parse_time(start), fault, latency, restart_period(annotations))]


def restart_period(annotations: dict[str, str]) -> float:
    """Seconds between restarts of a crashing container (annotation, else the default)."""
    try:
        period = float(annotations.get(RESTART_PERIOD_ANNOTATION, RESTART_PERIOD_SECONDS))
    except ValueError:
        return RESTART_PERIOD_SECONDS
    return period if period > 0 else RESTART_PERIOD_SECONDS


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def _spans(pod: dict[str, Any], now: datetime) -> list[tuple[Segment, float]]:
    parts = segments(pod)
    ends = [p.since for p in parts[1:]] + [now]
    pairs = zip(parts, ends, strict=True)
    return [(part, _seconds(part.since, min(end, now))) for part, end in pairs]


def restart_count(pod: dict[str, Any], now: datetime) -> int:
    """Restarts so far: 1 when a crash segment starts, then one per RESTART_PERIOD_SECONDS."""
    total = 0
    for part, seconds in _spans(pod, now):
        if part.fault in CRASHING and part.since <= now:
            total += 1 + int(seconds // part.restart_period)
    return total


def current_fault(pod: dict[str, Any], now: datetime) -> Segment:
    """The segment in force at `now`."""
    parts = segments(pod)
    current = parts[0]
    for part in parts:
        if part.since <= now:
            current = part
    return current


def last_crash(pod: dict[str, Any], now: datetime) -> tuple[Segment, datetime] | None:
    """The latest crash segment that has started and the time of its latest crash."""
    found: tuple[Segment, datetime] | None = None
    for part, seconds in _spans(pod, now):
        if part.fault in CRASHING and part.since <= now:
            crashes = int(seconds // part.restart_period)
            when = part.since.timestamp() + crashes * part.restart_period
            found = (part, datetime.fromtimestamp(when, tz=part.since.tzinfo))
    return found


def request_buckets(pod: dict[str, Any], now: datetime) -> list[tuple[float, int]]:
    """(latency, count) of the requests served so far: only while not crashing."""
    counts: dict[float, int] = {}
    for part, seconds in _spans(pod, now):
        if part.fault in CRASHING:
            continue
        served = int(seconds * REQUESTS_PER_SECOND)
        for factor, share in LATENCY_SHAPE:
            # floor(served * share) only grows with time, so every bucket is a counter.
            value = round(part.latency_seconds * factor, 6)
            counts[value] = counts.get(value, 0) + served * share // 1000
    return sorted(counts.items())


def _container_id(pod_name: str, container: str, restarts: int) -> str:
    digest = hashlib.sha256(f"{pod_name}/{container}/{restarts}".encode()).hexdigest()
    return f"containerd://{digest}"


def live_status(pod: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The pod's status as the kubelet would report it at `now` (restart counts, states and
    readiness follow the behaviour). Pure: returns a new status dict."""
    meta = pod.get("metadata") or {}
    name = meta.get("name", "")
    status = dict(pod.get("status") or {})
    start = status.get("startTime") or meta.get("creationTimestamp") or format_time(now)
    segment = current_fault(pod, now)
    crashing = segment.fault in CRASHING
    restarts = restart_count(pod, now)
    crash = last_crash(pod, now)
    containers = (pod.get("spec") or {}).get("containers") or []
    statuses = []
    for container in containers:
        cname = container.get("name", "")
        image = container.get("image", "")
        entry: dict[str, Any] = {
            "name": cname,
            "image": image,
            "imageID": f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}",
            "containerID": _container_id(name, cname, restarts),
            "ready": not crashing,
            "started": not crashing,
            "restartCount": restarts,
            "lastState": {},
        }
        if crash is not None:
            crash_segment, crashed_at = crash
            oom = crash_segment.fault == "oomkilled"
            entry["lastState"] = {
                "terminated": {
                    "exitCode": 137 if oom else 1,
                    "reason": "OOMKilled" if oom else "Error",
                    "startedAt": format_time(crash_segment.since),
                    "finishedAt": format_time(crashed_at),
                    "containerID": _container_id(name, cname, max(0, restarts - 1)),
                }
            }
        if crashing:
            uid = meta.get("uid", "")
            entry["state"] = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off 10s restarting failed container={cname} "
                    f"pod={name}_{meta.get('namespace', '')}({uid})",
                }
            }
        else:
            entry["state"] = {"running": {"startedAt": format_time(segment.since)}}
        statuses.append(entry)
    ready = "False" if crashing else "True"
    unready = [c.get("name", "") for c in containers] if crashing else []
    ready_condition: dict[str, Any] = {"type": "Ready", "status": ready}
    containers_ready: dict[str, Any] = {"type": "ContainersReady", "status": ready}
    for condition in (ready_condition, containers_ready):
        condition["lastProbeTime"] = None
        condition["lastTransitionTime"] = format_time(segment.since)
        if unready:
            condition["reason"] = "ContainersNotReady"
            condition["message"] = f"containers with unready status: [{' '.join(unready)}]"
    started = {"lastProbeTime": None, "lastTransitionTime": start, "status": "True"}
    status.update(
        {
            "phase": "Running",
            "conditions": [
                {**started, "type": "PodReadyToStartContainers"},
                {**started, "type": "Initialized"},
                ready_condition,
                containers_ready,
                {**started, "type": "PodScheduled"},
            ],
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "startTime": start,
            "containerStatuses": statuses,
            "qosClass": _qos_class(containers),
        }
    )
    ip = _pod_ip(name)
    status["podIP"] = ip
    status["podIPs"] = [{"ip": ip}]
    return status


def as_served(pod: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The pod as a read at `now` should return it: a copy whose status follows the
    behaviour (restart counts grow between writes). Pods nobody started are returned as is."""
    if not (pod.get("status") or {}).get("containerStatuses"):
        return pod
    served = dict(pod)
    served["status"] = live_status(pod, now)
    return served


def _qos_class(containers: list[dict[str, Any]]) -> str:
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits") and (not r.get("requests") or r.get("requests") == r.get("limits"))
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _pod_ip(name: str) -> str:
    value = fnv32a(name.encode())
    return f"10.244.{(value >> 8) & 0xFF}.{(value & 0xFF) or 1}"


def is_ready(pod: dict[str, Any]) -> bool:
    """Whether the stored pod's Ready condition is True."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def set_behaviour(
    store: Store,
    namespace: str,
    name: str,
    fault: str | None,
    latency_seconds: float | None,
) -> dict[str, Any]:
    """Give one pod a behaviour from now on (None: healthy). Raises ValueError for an unknown
    fault or a non-positive latency, NotFound for a missing pod. Returns the stored pod."""
    latency = _check_fault(fault, latency_seconds)
    with store.lock:
        pod = store.get("pods", namespace, name)
        annotations = pod.setdefault("metadata", {}).setdefault("annotations", {})
        annotations.pop(FAULT_ANNOTATION, None)
        annotations.pop(LATENCY_ANNOTATION, None)
        if fault is not None:
            annotations[FAULT_ANNOTATION] = fault
        if latency_seconds is not None:
            annotations[LATENCY_ANNOTATION] = str(latency)
        _append_segment(pod, fault, latency, store.now())
        return store.update("pods", pod, check_rv=False)


def sync_behaviour(store: Store, pod: dict[str, Any]) -> None:
    """After a write to a pod's annotations (`kubectl annotate pod ...`), start a new
    behaviour segment when they ask for something else than the current one."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if HISTORY_ANNOTATION not in annotations:
        return  # not started by the sandbox yet
    now = store.now()
    current = current_fault(pod, now)
    fault, latency = behaviour_from_annotations(annotations)
    if (fault, latency) != (current.fault, current.latency_seconds):
        pod = clone(pod)  # `pod` may be the stored object (Store.peek)
        _append_segment(pod, fault, latency, now)
        store.update("pods", pod)


def _history(parts: list[Segment]) -> str:
    return json.dumps(
        [
            {
                "since": format_time(s.since),
                "fault": s.fault,
                "latency_seconds": s.latency_seconds,
                "restart_period_seconds": s.restart_period,
            }
            for s in parts
        ],
        separators=(",", ":"),
    )


def _append_segment(pod: dict[str, Any], fault: str | None, latency: float, now: datetime) -> None:
    annotations = pod.setdefault("metadata", {}).setdefault("annotations", {})
    parts = segments(pod) if HISTORY_ANNOTATION in annotations else []
    parts.append(Segment(now, fault, latency, restart_period(annotations)))
    annotations[HISTORY_ANNOTATION] = _history(parts)
    pod["status"] = live_status(pod, now)


def start_containers(pod: dict[str, Any], now: datetime) -> None:
    """The kubelet starting `pod` at `now`: its first behaviour segment (from its annotations)
    and the status it reports, with startTime `now`."""
    _append_segment(pod, *behaviour_from_annotations(pod["metadata"].get("annotations")), now)
    pod["status"]["startTime"] = format_time(now)


def start_pod(store: Store, pod: dict[str, Any]) -> None:
    """The kubelet's part for a pod nobody has started yet (created directly, not by a
    ReplicaSet): bind it to the sandbox node and report it running."""
    if (pod.get("status") or {}).get("containerStatuses") or pod["metadata"].get(
        "deletionTimestamp"
    ):
        return
    pod = clone(pod)  # `pod` may be the stored object (Store.peek)
    pod["spec"]["nodeName"] = pod["spec"].get("nodeName") or NODE_NAME
    pod["status"] = {}
    start_containers(pod, store.now())
    store.update("pods", pod)
