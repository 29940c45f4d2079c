"""Receiver benchmark (not a test): throughput ratio and Kubernetes API requests per decision.

1. Throughput, served the way `serve` serves: `python -m webhook serve --config FILE` (gunicorn,
   its worker class and settings, access log, decision lines on stdout) for the receiver, and
   the same `serve` code path with the app swapped for a bare Flask handler that only parses the
   JSON (`--child bare`: serve's run() with runtime.build_app replaced, so both get exactly the
   gunicorn configuration serve sets, not a copy of it). Clients keep their connections alive
   (http.client, one connection per client thread). Payloads are resolved-only Alertmanager
   payloads (every alert decided `resolved`, the raw payload and each decision stored in the
   SQLite audit); rounds alternate between the two servers. Target: ratio >= 0.8. After the
   run, every payload the receiver acknowledged with 200 must be in the audit (durable).
   `--threaded` also measures the old comparison (both apps on werkzeug's threaded server in
   this process, which answers `Connection: close` every time), printed beside it.
2. Kubernetes API requests per decision, counted at the sandbox's request record: a
   `rolled_back` decision (target <= 5) and a skip that needs the cluster,
   `not_current_revision` (target <= 2).

Run: nice python3 -m benchmarks.receiver [--seconds 3] [--rounds 5] [--clients 4] [--threaded]
     [--store sqlite|postgresql]  (postgresql: a server of its own, started and stopped here)
     [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sqlite3
import statistics
import subprocess
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
import yaml
from flask import Flask, jsonify, request

from lab.pipeline.processes import free_port
from lab.pipeline.receiver import AppServer
from lab.receiver_harness import SERVICE_TOKEN, TOKEN, Harness, pods_of
from sandbox.testing import SandboxHandle

REPO = Path(__file__).resolve().parents[1]
RATIO_TARGET = 0.8
STORES = ("sqlite", "postgresql")


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


def threaded_throughput(url: str, body: str, *, seconds: float, clients: int = 4) -> float:
    """Requests per second from `clients` sessions for `seconds` (the old comparison; the
    threaded server closes every connection, so each request reconnects)."""
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


class Served:
    """One `serve` process (receiver or bare), its port and its gunicorn workers."""

    def __init__(self, kind: str, config: Path, workdir: Path) -> None:
        self.kind = kind
        self.port = free_port()
        command = [sys.executable, "-m", "webhook", "serve"]
        if kind == "bare":
            command = [sys.executable, str(Path(__file__).resolve()), "--child", "bare"]
        env = {k: v for k, v in os.environ.items() if k not in {"ROLLBACK_WEBHOOK_CONFIG"}}
        env.update({"PYTHONPATH": str(REPO), "HOME": str(workdir)})
        with open(os.devnull, "wb") as sink, (workdir / f"{kind}.stderr").open("wb") as err:
            # stdout (the decision lines) is written, and thrown away: its cost is measured.
            self.process = subprocess.Popen(
                [*command, "--config", str(config), "--port", str(self.port)],
                cwd=REPO,
                env=env,
                stdout=sink,
                stderr=err,
            )
        self.stderr = workdir / f"{kind}.stderr"
        self.acknowledged = 0

    def wait_ready(self, body: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited:\n{self.stderr.read_text()[-3000:]}")
            try:
                status, _ = post(self.connect(), body)
                if status == 200:
                    self.acknowledged += 1
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.kind} not serving after {timeout}s")

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def workers(self) -> list[int]:
        return children_of(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def post(connection: http.client.HTTPConnection, body: str) -> tuple[int, bytes]:
    """One keep-alive POST of `body`; (status, answer)."""
    connection.request(
        "POST",
        "/api/v1/alerts",
        body=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    response = connection.getresponse()
    return response.status, response.read()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of `pids` so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def keepalive_round(
    served: Served, body: str, *, seconds: float, clients: int
) -> tuple[float, float]:
    """(requests per second, worker CPU ms per request) from `clients` keep-alive clients."""
    stop = time.monotonic() + seconds
    counts = [0] * clients
    failures: list[str] = []
    workers = served.workers()
    cpu_before = cpu_seconds(workers)

    def run(i: int) -> None:
        connection = served.connect()
        try:
            while time.monotonic() < stop:
                status, answer = post(connection, body)
                if status != 200:
                    failures.append(f"HTTP {status} {answer[:200]!r}")
                    return
                counts[i] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{served.kind}: {failures[0]}")
    served.acknowledged += sum(counts)
    cpu_ms = (cpu_seconds(workers) - cpu_before) * 1000 / max(1, sum(counts))
    return sum(counts) / seconds, cpu_ms


def serve_config(workdir: Path, sandbox: SandboxHandle, *, store: str) -> Path:
    """A config for `serve`: the harness' token file, the sandbox, tracker off, this store."""
    audit: dict[str, Any] = {"path": str(workdir / "audit.sqlite")}
    if store == "postgresql":
        audit = postgresql_audit(workdir)
    config = {
        "audit": audit,
        "auth": {
            "receiver": {"bearer_token_file": str(workdir / "token")},
            "oncall_tokens_file": str(workdir / "oncall"),
        },
        "kubernetes": {"kubeconfig": str(sandbox.kubeconfig), "timeout_seconds": 5},
        "server": {"host": "127.0.0.1"},
        "tracker": {"enabled": False},
    }
    path = workdir / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def postgresql_audit(workdir: Path) -> dict[str, Any]:
    """`--store postgresql`: a PostgreSQL server of its own (lab/postgres.py, fsync on, as in
    production), stopped at exit; the DSN in a file, as the postgresql overlay mounts it."""
    import atexit

    from lab.postgres import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("--store postgresql: no initdb/postgres (Debian package postgresql)")
    server = PostgresServer.start(bindir=bindir, durable=True)
    atexit.register(server.stop)
    dsn = server.create_database("bench")
    (workdir / "audit-dsn").write_text(dsn)
    return {"backend": "postgresql", "dsn_file": str(workdir / "audit-dsn")}


def durable_payloads(workdir: Path) -> int:
    """Payloads in the receiver's audit (read after serve stopped)."""
    if (workdir / "audit-dsn").exists():
        import psycopg

        with psycopg.connect((workdir / "audit-dsn").read_text()) as conn:
            row = conn.execute("SELECT COUNT(*) FROM payloads").fetchone()
        return int(row[0]) if row else 0
    with sqlite3.connect(workdir / "audit.sqlite") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM payloads").fetchone()
    return int(count)


def run_child(kind: str, argv: list[str]) -> int:
    """`--child bare`: serve's own run(), with the app it builds swapped for the bare one."""
    assert kind == "bare"
    from webhook import runtime
    from webhook.cli import main as cli_main

    runtime.build_app = lambda service, **_: bare_app()
    return cli_main(["serve", *argv])


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


def gunicorn_ratio(
    tmp: Path, sandbox: SandboxHandle, body: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Receiver and bare handler, each under `serve`, keep-alive clients, alternate rounds."""
    config = serve_config(tmp, sandbox, store=args.store)
    ours, bare = Served("receiver", config, tmp), Served("bare", config, tmp)
    try:
        ours.wait_ready(body)
        bare.wait_ready(body)
        keepalive_round(ours, body, seconds=0.5, clients=args.clients)  # warm-up
        keepalive_round(bare, body, seconds=0.5, clients=args.clients)
        rounds = []
        for _ in range(args.rounds):
            rounds.append(
                (
                    keepalive_round(ours, body, seconds=args.seconds, clients=args.clients),
                    keepalive_round(bare, body, seconds=args.seconds, clients=args.clients),
                )
            )
    finally:
        ours.stop()
        bare.stop()
    durable = durable_payloads(tmp)
    return {
        "receiver_rps": round(statistics.median(o[0] for o, _ in rounds), 1),
        "bare_flask_rps": round(statistics.median(b[0] for _, b in rounds), 1),
        "ratio": round(statistics.median(o[0] / b[0] for o, b in rounds), 3),
        "ratios": [round(o[0] / b[0], 3) for o, b in rounds],
        "receiver_worker_cpu_ms_per_request": round(statistics.median(o[1] for o, _ in rounds), 2),
        "bare_worker_cpu_ms_per_request": round(statistics.median(b[1] for _, b in rounds), 2),
        "acknowledged": ours.acknowledged,
        "durable": durable,
    }


def threaded_ratio(harness: Harness, body: str, args: argparse.Namespace) -> dict[str, Any]:
    """The old figure: both apps on werkzeug's threaded server in this process."""
    ours, bare = [], []
    with decisions_to_devnull(), served(harness.app) as ours_url, served(bare_app()) as bare_url:
        threaded_throughput(ours_url, body, seconds=0.5)  # warm-up
        threaded_throughput(bare_url, body, seconds=0.5)
        for _ in range(args.rounds):
            ours.append(threaded_throughput(ours_url, body, seconds=args.seconds))
            bare.append(threaded_throughput(bare_url, body, seconds=args.seconds))
    return {
        "receiver_rps": round(statistics.median(ours), 1),
        "bare_flask_rps": round(statistics.median(bare), 1),
        "ratio": round(statistics.median(o / b for o, b in zip(ours, bare, strict=True)), 3),
    }


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return run_child(sys.argv[2], sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--store", choices=STORES, default="sqlite")
    parser.add_argument("--threaded", action="store_true", help="also the old threaded figure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sandbox = SandboxHandle.start(workdir=workdir)
        try:
            with decisions_to_devnull():
                (workdir / "harness").mkdir()
                harness = Harness(sandbox, workdir / "harness")
                counts = requests_per_decision(harness)
            body = resolved_payload()
            for name in ("token", "oncall"):
                (workdir / name).write_text((workdir / "harness" / name).read_text())
            result: dict[str, Any] = {
                "gunicorn_keepalive": gunicorn_ratio(workdir, sandbox, body, args)
            }
            if args.threaded:
                result["threaded_server"] = threaded_ratio(harness, body, args)
        finally:
            sandbox.stop()
    result["ratio_target"] = RATIO_TARGET
    result["k8s_requests"] = counts
    result["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for section in ("gunicorn_keepalive", "threaded_server"):
            if section in result:
                print(f"{section}:")
                for key, value in result[section].items():
                    print(f"  {key:40} {value}")
        print(f"ratio target                             {RATIO_TARGET}")
        print(f"load average (1 min) before, after       {result['load_average_before_after']}")
        print("Kubernetes API requests per decision:")
        for name, count in counts.items():
            print(f"  {count}  {name}")
    measured = result["gunicorn_keepalive"]
    rollback = counts["rolled_back (deployment + replicaset labels, as the rules send)"]
    skip = counts["not_current_revision (the same alert again)"]
    durable = measured["durable"] >= measured["acknowledged"]
    if not durable:
        print(
            f"NOT DURABLE: {measured['acknowledged']} acknowledged, {measured['durable']} stored",
            file=sys.stderr,
        )
    ok = measured["ratio"] >= RATIO_TARGET and rollback <= 5 and skip <= 2 and durable
    print("targets met" if ok else "TARGETS MISSED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
