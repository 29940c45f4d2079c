"""Hot-path profile (not a test): where the receiver's time goes for one resolved-only payload.

The payload of benchmarks/receiver.py (three resolved alerts: each decided `resolved`, the raw
payload and the decisions stored in the SQLite audit, a JSON line per decision) is posted N
times through the Flask app in this process (WSGI test client: no sockets, so the profile is
the app's own cost), under cProfile. Prints calls and CPU per request and the functions with
the most own time; `--areas` sums own time by module (parsing, schema validation, audit,
logging, metrics, decide...).

Run: nice python3 -m benchmarks.hotpath [--requests 2000] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.receiver import decisions_to_devnull, resolved_payload
from lab.receiver_harness import TOKEN, Harness
from sandbox.testing import SandboxHandle


def area(filename: str) -> str:
    """A module's share of the work, by the file its function lives in."""
    path = Path(filename)
    parts = path.parts
    for root in ("webhook", "flask", "werkzeug", "sqlite3", "logging", "json", "fastjsonschema"):
        if root in parts:
            index = parts.index(root)
            return "/".join(parts[index : index + 2]).removesuffix(".py")
    if "prometheus_client" in parts:
        return "prometheus_client"
    if filename.startswith("<") or filename == "~":
        return "builtins"
    return path.stem


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--areas", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, decisions_to_devnull():
        sandbox = SandboxHandle.start(workdir=Path(tmp))
        try:
            harness = Harness(sandbox, Path(tmp))
            client = harness.app.test_client()
            body = resolved_payload()
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            for _ in range(50):  # warm-up
                client.post("/api/v1/alerts", data=body, headers=headers)
            profile = cProfile.Profile()
            cpu = time.process_time()
            profile.enable()
            for _ in range(args.requests):
                response = client.post("/api/v1/alerts", data=body, headers=headers)
                assert response.status_code == 200, response.get_data()
            profile.disable()
            cpu = time.process_time() - cpu
        finally:
            sandbox.stop()
    stats = pstats.Stats(profile)
    entries = stats.stats  # type: ignore[attr-defined]
    calls = sum(entry[1] for entry in entries.values())
    own = sum(entry[2] for entry in entries.values())
    print(
        f"requests {args.requests}: {calls / args.requests:.0f} calls and "
        f"{cpu * 1000 / args.requests:.3f} ms CPU per request (profiled), "
        f"load {os.getloadavg()[0]:.2f}"
    )
    if args.areas:
        by_area: dict[str, float] = defaultdict(float)
        for func, entry in entries.items():
            by_area[area(func[0])] += entry[2]
        for name, seconds in sorted(by_area.items(), key=lambda item: -item[1])[: args.top]:
            print(f"  {100 * seconds / own:5.1f}%  {name}")
        return 0
    top = sorted(entries.items(), key=lambda item: -item[1][2])[: args.top]
    for (filename, line, name), entry in top:
        print(
            f"  {100 * entry[2] / own:5.1f}%  {entry[1] / args.requests:6.1f}/req  "
            f"{area(filename)}:{line} {name}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
