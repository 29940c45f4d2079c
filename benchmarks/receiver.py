"""Receiver benchmark (not a test): throughput ratio and Kubernetes API requests per decision.

1. Throughput: resolved-only Alertmanager payloads (every alert is decided `resolved`, the raw
   payload and each decision stored in the SQLite audit) posted to the real receiver, against a
   bare Flask handler that only parses the JSON, both served by the same threaded WSGI server
   in this process, measured alternately in the same run. Target: ratio >= 0.7.
2. Kubernetes API requests per decision, counted at the sandbox's request record: a
   `rolled_back` decision (target <= 5) and a skip that needs the cluster,
   `not_current_revision` (target <= 2).

Run: python3 benchmarks/receiver.py [--seconds 3] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from flask import Flask, jsonify, request

from lab.pipeline.receiver import AppServer
from lab.receiver_harness import SERVICE_TOKEN, TOKEN, Harness, pods_of
from sandbox.testing import SandboxHandle


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """Serve `app` on the same threaded server the pipeline uses (quiet: no access log)."""
    server = AppServer(app, name="benchmark")
    server.start()
    try:
        yield server.base_url
    finally:
        server.stop()


@contextmanager
def decisions_to_devnull() -> Iterator[None]:
    """The receiver still writes its JSON decision lines (their cost is measured), but not into
    this script's own output, which stays readable (and parseable with --json)."""
    saved = sys.stdout
    with open(os.devnull, "w") as sink:
        sys.stdout = sink
        try:
            yield
        finally:
            sys.stdout = saved


def bare_app() -> Flask:
    app = Flask("bare")

    @app.post("/api/v1/alerts")
    def alerts() -> Any:
        document = json.loads(request.get_data())
        return jsonify({"decisions": [{"outcome": "ok"} for _ in document["alerts"]]})

    return app


def throughput(url: str, body: str, *, seconds: float, clients: int = 4) -> float:
    """Requests per second from `clients` keep-alive sessions for `seconds`."""
    stop = time.monotonic() + seconds
    counts = [0] * clients

    def run(i: int) -> None:
        session = requests.Session()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
        while time.monotonic() < stop:
            response = session.post(f"{url}/api/v1/alerts", data=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {response.status_code} {response.text[:200]}")
            counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def resolved_payload(alerts: int = 3) -> str:
    now = datetime.now(UTC)
    return json.dumps(
        Harness.payload(
            *[
                {
                    **Harness.alert(status="resolved", namespace="shop", deployment=f"app{i}"),
                    "startsAt": (now - timedelta(minutes=5)).isoformat(),
                }
                for i in range(alerts)
            ]
        )
    )


def requests_per_decision(harness: Harness) -> dict[str, int]:
    """Kubernetes API requests (the service's own token) for each kind of decision."""
    controls = harness.sandbox.controls
    counts: dict[str, int] = {}

    def measure(name: str, alert: dict[str, Any], expected: str) -> None:
        controls.clear_requests()
        [decision] = harness.post_alerts(alert)
        got = decision["reason"] or decision["outcome"]
        assert got == expected, (name, decision)
        counts[name] = len([r for r in controls.requests() if r["token"] == SERVICE_TOKEN])

    rs = harness.deploy("web", [("web:1", timedelta(hours=2)), ("web:2", timedelta(minutes=3))])
    measure(
        "rolled_back (deployment + replicaset labels, as the rules send)",
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1]),
        "rolled_back",
    )
    measure(
        "not_current_revision (the same alert again)",
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1]),
        "not_current_revision",
    )
    measure(
        "rollback_of_rollback, first delivery (records alerted-at once)",
        harness.alert(
            namespace="shop", deployment="web", replicaset=rs[0], started_ago=timedelta()
        ),
        "rollback_of_rollback",
    )
    measure(
        "rollback_of_rollback, repeated",
        harness.alert(
            namespace="shop", deployment="web", replicaset=rs[0], started_ago=timedelta()
        ),
        "rollback_of_rollback",
    )
    api = harness.deploy("api", [("api:1", timedelta(hours=2)), ("api:2", timedelta(minutes=3))])
    pod = pods_of(harness, api[1])[0]
    measure(
        "rolled_back (pod label only: resolved through ownerReferences)",
        harness.alert(namespace="shop", pod=pod),
        "rolled_back",
    )
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, decisions_to_devnull():
        sandbox = SandboxHandle.start(workdir=Path(tmp))
        try:
            harness = Harness(sandbox, Path(tmp))
            counts = requests_per_decision(harness)
            body = resolved_payload()
            ours, bare = [], []
            with served(harness.app) as ours_url, served(bare_app()) as bare_url:
                throughput(ours_url, body, seconds=0.5)  # warm-up
                throughput(bare_url, body, seconds=0.5)
                for _ in range(args.rounds):
                    ours.append(throughput(ours_url, body, seconds=args.seconds))
                    bare.append(throughput(bare_url, body, seconds=args.seconds))
        finally:
            sandbox.stop()
    ratio = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
    result = {
        "receiver_rps": round(statistics.median(ours), 1),
        "bare_flask_rps": round(statistics.median(bare), 1),
        "ratio": round(ratio, 3),
        "ratio_target": 0.7,
        "k8s_requests": counts,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            if key != "k8s_requests":
                print(f"{key:45} {value}")
        print("Kubernetes API requests per decision:")
        for name, count in counts.items():
            print(f"  {count}  {name}")
    rollback = counts["rolled_back (deployment + replicaset labels, as the rules send)"]
    skip = counts["not_current_revision (the same alert again)"]
    ok = ratio >= 0.7 and rollback <= 5 and skip <= 2
    print("targets met" if ok else "TARGETS MISSED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
