"""A kubelet stand-in for the real control plane (scripts/controlplane.sh): one Node, no
containers, pod status written as a kubelet writes it.

It registers a Node, binds every unscheduled pod to it (there is no scheduler), and reports
each bound pod's status from the pod alone and the clock, with the sandbox's pod behaviours
(`sandbox.auto-rollback/fault: crashloop | oomkilled | slow` on the pod template, see
sandbox/pods.py):

- healthy and slow pods: phase Running at once, Ready once the readiness probe's
  `initialDelaySeconds` has passed (at once without a probe);
- crashloop / oomkilled pods: the container fails as it starts (exit 1 `Error`, or 137
  `OOMKilled`), is never ready, and is restarted after the kubelet's back-off of 10 s, 20 s,
  40 s ... capped at 300 s (`--backoff-scale` shrinks them for tests); between restarts it
  waits with reason `CrashLoopBackOff`, `lastState.terminated` holds the last failure and
  `restartCount` the restarts so far;
- a pod being deleted (deletionTimestamp) is removed at once, as a kubelet does once its
  containers stopped, so graceful deletion completes.

The status is a pure function of the pod and `now` (`pod_status`), so what it reports never
depends on when it polled; the loop writes it whenever it changes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.pods import CRASHING, behaviour_from_annotations

log = logging.getLogger("kubelet")

Obj = dict[str, Any]
BACKOFF_INITIAL_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 300.0
NODE_NAME = "standin-node"
HOST_IP = "10.0.0.20"
KUBELET_VERSION = "v1.35.4"


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def backoff(failures: int, scale: float) -> float:
    """The kubelet's delay before the restart that follows the `failures`-th failure (1-based)."""
    return min(BACKOFF_INITIAL_SECONDS * 2 ** (failures - 1), BACKOFF_MAX_SECONDS) * scale


@dataclass(frozen=True)
class CrashState:
    """Where a crash-looping container is at one instant."""

    restarts: int  # restarts done so far
    last_failure: datetime  # when the latest run failed (it fails as it starts)
    waiting_seconds: float  # the back-off it is waiting out now


def crash_state(started: datetime, now: datetime, scale: float) -> CrashState:
    """Run k (k = 0, 1, ...) starts and fails at once; run k+1 starts backoff(k+1) later."""
    failed_at = started
    restarts = 0
    while True:
        delay = backoff(restarts + 1, scale)
        next_start = failed_at + timedelta(seconds=delay)
        if next_start > now:
            return CrashState(restarts, failed_at, delay)
        failed_at = next_start
        restarts += 1


def readiness_delay(container: Obj) -> float:
    """Seconds from start to Ready: the readiness probe's initialDelaySeconds, 0 without one."""
    probe = container.get("readinessProbe") or {}
    return float(probe.get("initialDelaySeconds") or 0) if probe else 0.0


def _container_id(pod_uid: str, name: str, run: int) -> str:
    digest = hashlib.sha256(f"{pod_uid}/{name}/{run}".encode()).hexdigest()
    return f"containerd://{digest}"


def pod_ip(uid: str) -> str:
    value = zlib.crc32(uid.encode())
    return f"10.244.{(value >> 8) % 250 + 1}.{value % 250 + 2}"


def _condition(kind: str, ok: bool, since: str, reason: str = "", message: str = "") -> Obj:
    condition: Obj = {
        "type": kind,
        "status": "True" if ok else "False",
        "lastProbeTime": None,
        "lastTransitionTime": since,
    }
    if reason:
        condition["reason"], condition["message"] = reason, message
    return condition


def pod_status(pod: Obj, now: datetime, *, scale: float) -> Obj:
    """The status fields a kubelet reports for `pod` at `now` (it must have a startTime)."""
    meta = pod["metadata"]
    uid, name, namespace = meta.get("uid", ""), meta["name"], meta.get("namespace", "")
    started = parse_time(pod["status"]["startTime"])
    fault, _latency = behaviour_from_annotations(meta.get("annotations"))
    crashing = fault in CRASHING
    oom = fault == "oomkilled"
    statuses = []
    ready_since: list[datetime] = []
    for container in pod["spec"].get("containers") or []:
        cname, image = container["name"], container.get("image", "")
        entry: Obj = {
            "name": cname,
            "image": image,
            "imageID": f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}",
        }
        if crashing:
            state = crash_state(started, now, scale)
            entry.update(
                {
                    "containerID": _container_id(uid, cname, state.restarts),
                    "ready": False,
                    "started": False,
                    "restartCount": state.restarts,
                    "state": {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {state.waiting_seconds:g}s restarting failed "
                            f"container={cname} pod={name}_{namespace}({uid})",
                        }
                    },
                    "lastState": {
                        "terminated": {
                            "exitCode": 137 if oom else 1,
                            "reason": "OOMKilled" if oom else "Error",
                            "startedAt": format_time(state.last_failure),
                            "finishedAt": format_time(state.last_failure),
                            "containerID": _container_id(uid, cname, state.restarts),
                        }
                    },
                }
            )
        else:
            ready_at = started + timedelta(seconds=readiness_delay(container))
            ready = now >= ready_at
            if ready:
                ready_since.append(ready_at)
            entry.update(
                {
                    "containerID": _container_id(uid, cname, 0),
                    "ready": ready,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": format_time(started)}},
                    "lastState": {},
                }
            )
        statuses.append(entry)
    unready = [s["name"] for s in statuses if not s["ready"]]
    start = format_time(started)
    if unready:
        since = start
        why = ("ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
    else:
        since = format_time(max(ready_since, default=started))
        why = ("", "")
    ip = pod_ip(uid)
    return {
        "phase": "Running",
        "conditions": [
            _condition("PodReadyToStartContainers", True, start),
            _condition("Initialized", True, start),
            _condition("Ready", not unready, since, *why),
            _condition("ContainersReady", not unready, since, *why),
            _condition("PodScheduled", True, start),
        ],
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": start,
        "containerStatuses": statuses,
    }


def node_manifest(name: str, now: datetime) -> Obj:
    stamp = format_time(now)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
        },
        "status": node_status(now, since=stamp),
    }


def node_status(now: datetime, *, since: str) -> Obj:
    return {
        "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
        "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
        "addresses": [{"type": "InternalIP", "address": HOST_IP}],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet stand-in is posting ready status",
                "lastHeartbeatTime": format_time(now),
                "lastTransitionTime": since,
            }
        ],
        "nodeInfo": {
            "kubeletVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
            "containerRuntimeVersion": "standin://0",
        },
    }


class ApiError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status}: {text[:300]}")
        self.status = status


class Kubelet:
    """The loop: bind, report, finish deletions; one poll of all pods per tick."""

    def __init__(
        self,
        api: Any,
        *,
        node: str = NODE_NAME,
        scale: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api  # a kubernetes.client.ApiClient: raw JSON requests through it
        self.node = node
        self.scale = scale
        self.clock = clock
        self._written: dict[str, Obj] = {}
        self._since = format_time(clock())
        self._heartbeat = datetime.min.replace(tzinfo=UTC)

    def _request(
        self, method: str, path: str, body: Obj | None = None, *, patch: bool = False
    ) -> Obj:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = (
                "application/merge-patch+json" if patch else "application/json"
            )
        params = self.api.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*params, _request_timeout=15)
        data = response.read() or b"{}"
        if not 200 <= response.status < 300:
            raise ApiError(response.status, data.decode(errors="replace"))
        result: Obj = json.loads(data)
        return result

    def register(self) -> None:
        try:
            self._request("POST", "/api/v1/nodes", node_manifest(self.node, self.clock()))
        except ApiError as exc:
            if exc.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        now = self.clock()
        if now - self._heartbeat < timedelta(seconds=20):
            return
        self._request(
            "PATCH",
            f"/api/v1/nodes/{self.node}/status",
            {"status": node_status(now, since=self._since)},
            patch=True,
        )
        self._heartbeat = now

    def tick(self) -> None:
        self.heartbeat()
        items = self._request("GET", "/api/v1/pods")["items"]
        live = set()
        for pod in items:
            meta, spec = pod["metadata"], pod["spec"]
            live.add(meta["uid"])
            try:
                if meta.get("deletionTimestamp"):
                    if spec.get("nodeName") == self.node:
                        self._delete(pod)
                elif not spec.get("nodeName"):
                    self._bind(pod)
                elif spec["nodeName"] == self.node:
                    self._report(pod)
            except ApiError as exc:
                # Gone or changed meanwhile (404, 409, a recreated pod's uid): next tick.
                if exc.status not in (404, 409, 422):
                    raise
        self._written = {uid: s for uid, s in self._written.items() if uid in live}

    def _path(self, pod: Obj) -> str:
        meta = pod["metadata"]
        return f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"

    def _bind(self, pod: Obj) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
        }
        self._request("POST", self._path(pod) + "/binding", body)

    def _report(self, pod: Obj) -> None:
        meta = pod["metadata"]
        status = pod.get("status") or {}
        if not status.get("startTime"):
            pod = {**pod, "status": {**status, "startTime": format_time(self.clock())}}
        desired = pod_status(pod, self.clock(), scale=self.scale)
        if self._written.get(meta["uid"]) == desired:
            return
        body = {"metadata": {"uid": meta["uid"]}, "status": desired}
        self._request("PATCH", self._path(pod) + "/status", body, patch=True)
        self._written[meta["uid"]] = desired

    def _delete(self, pod: Obj) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": pod["metadata"]["uid"]},
        }
        self._request("DELETE", self._path(pod), body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.kubelet", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node-name", default=NODE_NAME)
    parser.add_argument(
        "--backoff-scale",
        type=float,
        default=1.0,
        help="multiply the crash back-off (10 s doubling to 300 s) by this, e.g. 0.1 in tests",
    )
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between polls")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="kubelet: %(message)s")

    import kubernetes.config
    from urllib3.exceptions import HTTPError

    api = kubernetes.config.new_client_from_config(config_file=args.kubeconfig)
    kubelet = Kubelet(api, node=args.node_name, scale=args.backoff_scale)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    kubelet.register()
    log.info("node %s registered", args.node_name)
    while not stop.is_set():
        try:
            kubelet.tick()
        except (ApiError, HTTPError, OSError) as exc:
            log.warning("tick failed: %s", exc)
        stop.wait(args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
