"""Transport benchmark (not a test): the CPU of one Kubernetes API request as the service sends it.

webhook.kube.Cluster sends each request on the API server's urllib3 connection pool directly;
the baseline is the same Cluster sending through the client's REST layer (ApiClient.call_api,
which finds that pool again through its PoolManager on every request): what it did before, and
what it still does behind a proxy. Both read the same Deployment and list the same ReplicaSets
of a sandbox (in this process: the sandbox serves on a thread of its own, so only the calling
thread's CPU is counted), alternating rounds; prints CPU and Python calls per request and the
ratio. A rollback is five requests and a repeat alert two, so this is most of a decision's cost.

Run: nice python3 -m benchmarks.transport [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.receiver import decisions_to_devnull
from lab.receiver_harness import Harness, hours, minutes
from sandbox.testing import SandboxHandle
from webhook.kube import Cluster


def _cluster(sandbox: SandboxHandle, *, direct: bool) -> Cluster:
    cluster = Cluster(sandbox.api_client(), timeout_seconds=10)
    if not direct:
        cluster._pool = None  # the REST layer's path (a proxied PoolManager takes it too)
    return cluster


def _work(cluster: Cluster, requests: int) -> None:
    for _ in range(requests // 2):
        cluster.get_deployment("shop", "web")
        cluster.list_replicasets("shop", label_selector="app=web")


def _cpu_per_request(cluster: Cluster, requests: int) -> float:
    start = time.thread_time()
    _work(cluster, requests)
    return (time.thread_time() - start) / requests


def _calls_per_request(cluster: Cluster, requests: int) -> float:
    profile = cProfile.Profile()
    profile.enable()
    _work(cluster, requests)
    profile.disable()
    entries = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return sum(entry[1] for entry in entries.values()) / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {"direct": [], "rest layer": []}
    calls: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, decisions_to_devnull():
        sandbox = SandboxHandle.start(workdir=Path(tmp))
        try:
            Harness(sandbox, Path(tmp), tracker={"enabled": False}).deploy(
                "web", [("web:1", hours(2)), ("web:2", minutes(3))]
            )
            clusters = {
                "direct": _cluster(sandbox, direct=True),
                "rest layer": _cluster(sandbox, direct=False),
            }
            for name, cluster in clusters.items():
                _work(cluster, 100)  # warm: connections open, code paths loaded
                calls[name] = _calls_per_request(cluster, 200)
            for _ in range(args.rounds):
                for name, cluster in clusters.items():
                    cpu[name].append(_cpu_per_request(cluster, args.requests))
        finally:
            sandbox.stop()
    for name in cpu:
        runs = ", ".join(f"{value * 1e6:.0f}" for value in cpu[name])
        print(
            f"{name:10s}: {statistics.median(cpu[name]) * 1e6:.0f} us CPU per request "
            f"(rounds: {runs}), {calls[name]:.0f} Python calls",
            file=sys.stderr,
        )
    ratio = statistics.median(cpu["direct"]) / statistics.median(cpu["rest layer"])
    print(
        f"direct / rest layer: {ratio:.2f} of the CPU, "
        f"{calls['direct'] / calls['rest layer']:.2f} of the calls; "
        f"load {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
