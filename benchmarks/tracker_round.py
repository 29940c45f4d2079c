"""Tracker round cost (not a test): audit reads and Python calls of one health-tracker round.

One namespace holds N opted-in Deployments, each on a young revision that is fully available
(so every one of them is a stamp candidate that must be checked against the audit), and the
audit holds R decisions about them (resolved-only payloads posted to the receiver: rows the
round must read, none of which block a stamp). One round (`HealthTracker.resync_once`) is run
under cProfile, its audit queries and rows read are counted. The round should cost
O(Deployments + rows): `calls / (N + R)` stays flat as N grows, and the audit is queried once
per namespace.

Run: nice python3 -m benchmarks.tracker_round [--sizes 10,100,500] [--rows-per-deployment 20]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from benchmarks.receiver import decisions_to_devnull
from lab.receiver_harness import DEPLOYMENT, Harness
from sandbox.testing import SandboxHandle
from webhook.tracker import HealthTracker

NAMESPACE = "fleet"


class CountingAudit:
    """The real audit with its queries and the rows they returned counted."""

    def __init__(self, audit: Any) -> None:
        self.audit = audit
        self.queries = 0
        self.rows = 0

    def query(self, **kwargs: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.audit.query(**kwargs)
        self.queries += 1
        self.rows += len(found)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.audit, name)


def measure(size: int, rows_per_deployment: int, workdir: Path) -> dict[str, Any]:
    sandbox = SandboxHandle.start(workdir=workdir)
    try:
        harness = Harness(sandbox, workdir, dry_run=True, tracker={"enabled": False})
        names = [f"app-{i:04d}" for i in range(size)]
        documents = [
            yaml.safe_load(
                DEPLOYMENT.format(
                    name=name,
                    namespace=NAMESPACE,
                    annotations=json.dumps({"auto-rollback/enabled": "true"}),
                    replicas=1,
                    image=f"registry.local/{name}:1",
                )
            )
            for name in names
        ]
        created = datetime.now(UTC) - timedelta(minutes=3)
        for start in range(0, len(documents), 25):
            sandbox.controls.apply(documents[start : start + 25], as_of=created)
        alerts = [
            harness.alert(status="resolved", namespace=NAMESPACE, deployment=name)
            for name in names
            for _ in range(rows_per_deployment)
        ]
        for start in range(0, len(alerts), 50):
            harness.post(harness.payload(*alerts[start : start + 50]))
        service = harness.service
        audit = CountingAudit(service.audit)
        tracker = HealthTracker(
            service.cluster,
            service.settings,
            audit,  # type: ignore[arg-type]
            clock=lambda: datetime.now(UTC),
        )
        profile = cProfile.Profile()
        profile.enable()
        result = tracker.resync_once()
        profile.disable()
    finally:
        sandbox.stop()
    stats: Any = pstats.Stats(profile)
    calls = sum(entry[1] for entry in stats.stats.values())
    states: dict[str, int] = {}
    for observation in result.observations:
        states[observation.state] = states.get(observation.state, 0) + 1
    rows = len(alerts)
    return {
        "deployments": size,
        "audit_rows": rows,
        "audit_queries": audit.queries,
        "rows_read": audit.rows,
        "calls": calls,
        "calls_per_deployment_plus_row": round(calls / (size + rows), 1),
        "states": states,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,500")
    parser.add_argument("--rows-per-deployment", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(","):
        with tempfile.TemporaryDirectory() as tmp, decisions_to_devnull():
            rows.append(measure(int(size), args.rows_per_deployment, Path(tmp)))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'deployments':>11} {'audit rows':>10} {'queries':>8} {'rows read':>10} "
        f"{'calls':>10} {'calls/(D+R)':>12}  states"
    )
    for row in rows:
        print(
            f"{row['deployments']:>11} {row['audit_rows']:>10} {row['audit_queries']:>8} "
            f"{row['rows_read']:>10} {row['calls']:>10} "
            f"{row['calls_per_deployment_plus_row']:>12}  {row['states']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
