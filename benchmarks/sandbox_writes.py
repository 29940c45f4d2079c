"""Sandbox write cost (not a test): one ReplicaSet PATCH at 10, 100 and 500 Deployments.

The product's hottest sandbox write is the annotation PATCH on a ReplicaSet (the
`auto-rollback/alerted-at` mark); each such write runs the controllers inside it. Its cost
must depend on the object written (its Deployment, its ReplicaSets, their pods), not on how
many other Deployments share the namespace. For each size this script builds one namespace
with N two-replica Deployments, then PATCHes ReplicaSets of a few of them through the API
layer (in process, no HTTP, so the figure is the store's and controllers' own) and prints:
- calls: Python function calls per PATCH, counted with cProfile (deterministic: unaffected by
  the load of a shared machine, so this is the column to compare);
- clones: deep copies per PATCH (`store.clone` top-level calls: of objects, and since the
  patch code copies with clone too, of the patch document and its values);
- ms: wall time per PATCH, median of the rounds (indicative only on a shared machine).

Run: nice python3 -m benchmarks.sandbox_writes [--sizes 10,100,500] [--patches 50] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from typing import Any

from sandbox import api
from sandbox.apply import ensure_namespace
from sandbox.controller import Controller
from sandbox.objects import apply_defaults
from sandbox.routing import parse_request
from sandbox.store import Store

NAMESPACE = "storm"


def _deployment(index: int) -> dict[str, Any]:
    name = f"app-{index:04d}"
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": f"shop/{name}:1"}]},
            },
        },
    }


def build(size: int) -> tuple[Store, list[str]]:
    """A store with its controller and `size` Deployments (each with one ReplicaSet and two
    pods) in one namespace; returns the ReplicaSet names."""
    store = Store()
    Controller(store)
    ensure_namespace(store, NAMESPACE)
    for index in range(size):
        obj = _deployment(index)
        apply_defaults("deployments", obj)
        store.create("deployments", obj)
    items, _ = store.list("replicasets", NAMESPACE)
    return store, [rs["metadata"]["name"] for rs in items]


def patch(store: Store, name: str, value: str) -> None:
    """The alerted-at mark as the product writes it: a merge PATCH of one annotation."""
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets/{name}"
    body = json.dumps({"metadata": {"annotations": {"auto-rollback/alerted-at": value}}})
    reply = api.handle(
        store,
        parse_request("PATCH", path),
        method="PATCH",
        body=body.encode(),
        content_type="application/merge-patch+json",
    )
    assert getattr(reply, "status", 200) == 200, reply


def measure(size: int, patches: int) -> dict[str, Any]:
    """Calls, clones and milliseconds per ReplicaSet PATCH with `size` Deployments."""
    store, names = build(size)
    targets = [names[i * len(names) // patches] for i in range(patches)]
    for name in targets[:3]:  # warm the code paths
        patch(store, name, "warm")
    profile = cProfile.Profile()
    profile.enable()
    for index, name in enumerate(targets):
        patch(store, name, f"p{index}")
    profile.disable()
    stats = pstats.Stats(profile)
    calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
    clones = sum(
        entry[0]  # primitive calls only: one per top-level copy, not per nested value
        for func, entry in stats.stats.items()  # type: ignore[attr-defined]
        if func[0].endswith("store.py") and func[2] == "clone"
    )
    times = []
    for index, name in enumerate(targets):
        start = time.perf_counter()
        patch(store, name, f"t{index}")
        times.append(time.perf_counter() - start)
    return {
        "deployments": size,
        "replicasets": len(names),
        "calls_per_patch": round(calls / patches),
        "clones_per_patch": round(clones / patches, 1),
        "ms_per_patch": round(statistics.median(times) * 1000, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,500")
    parser.add_argument("--patches", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [measure(int(size), args.patches) for size in args.sizes.split(",")]
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"{'deployments':>11} {'calls/patch':>12} {'clones/patch':>13} {'ms/patch':>9}")
        for row in rows:
            print(
                f"{row['deployments']:>11} {row['calls_per_patch']:>12} "
                f"{row['clones_per_patch']:>13} {row['ms_per_patch']:>9}"
            )
    first, last = rows[0]["calls_per_patch"], rows[-1]["calls_per_patch"]
    flat = last <= 1.2 * first
    print(
        f"calls/patch at {rows[-1]['deployments']} vs {rows[0]['deployments']}: "
        f"{last / first:.2f}x ({'flat' if flat else 'NOT FLAT'})"
    )
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
