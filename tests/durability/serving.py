"""`rollback-webhook serve` subprocesses against a sandbox, and a client that delivers as
Alertmanager does (a 5xx or a transport error is retried with backoff until a 2xx)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lab.pipeline.processes import free_port
from lab.receiver_harness import TOKEN, Harness, hours, minutes
from sandbox.testing import SandboxHandle
from tests.serve.support import popen_serve
from webhook.audit import AuditStore, SqliteStore
from webhook.audit.postgresql import PostgresStore


class Store:
    """Where the servers' audit is: a SQLite file or a PostgreSQL DSN (in a file)."""

    def __init__(self, *, sqlite: Path | None = None, dsn: str | None = None) -> None:
        self.sqlite, self.dsn = sqlite, dsn

    def config(self, workdir: Path) -> dict[str, Any]:
        if self.dsn:
            dsn_file = workdir / "audit-dsn"
            dsn_file.write_text(self.dsn)
            return {"backend": "postgresql", "dsn_file": str(dsn_file)}
        return {"path": str(self.sqlite)}

    def open(self) -> AuditStore:
        return PostgresStore(self.dsn) if self.dsn else SqliteStore(self.sqlite or "")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


class Served:
    def __init__(self, process: subprocess.Popen[bytes], *, url: str, workdir: Path) -> None:
        self.process, self.url, self.workdir = process, url, workdir

    @property
    def stderr(self) -> str:
        return (self.workdir / "stderr").read_text(errors="replace")

    def workers(self) -> list[int]:
        return children_of(self.process.pid)

    def request(
        self, method: str, path: str, body: Any = None, *, token: str = TOKEN, timeout: float = 30
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, text.decode(errors="replace")

    def deliver(self, payload: dict[str, Any], *, give_up_after: float = 90) -> tuple[int, Any]:
        """POST until a 2xx (or a 4xx), retrying 5xx and transport errors with backoff."""
        deadline = time.monotonic() + give_up_after
        backoff = 0.2
        while True:
            try:
                status, body = self.request("POST", "/api/v1/alerts", payload)
                if status < 500:
                    return status, body
            except OSError:
                pass  # reset, refused, timed out: Alertmanager retries these too
            if time.monotonic() > deadline:
                raise AssertionError(f"no 2xx for {payload['alerts'][0]['labels']} in time")
            time.sleep(backoff * random.uniform(0.5, 1.5))
            backoff = min(backoff * 2, 2.0)

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited ({self.process.returncode}):\n{self.stderr}")
            try:
                if self.request("GET", "/readyz", timeout=3)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve not ready in {seconds}s:\n{self.stderr[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def serve(
    sandbox: SandboxHandle,
    tmp_path: Path,
    store: Store,
    *,
    name: str = "serve",
    workers: int = 2,
    ready_seconds: float = 30,
    **settings: Any,
) -> Served:
    """Start `python -m webhook serve` (tracker off) and wait until it is ready."""
    workdir = tmp_path / name
    home = workdir / "home"
    home.mkdir(parents=True)
    (tmp_path / "token").write_text(TOKEN)
    port = free_port()
    config: dict[str, Any] = {
        "audit": {**store.config(workdir), "reconcile_seconds": 1, "settle_after_seconds": 4},
        "auth": {"receiver": {"bearer_token_file": str(tmp_path / "token")}},
        "kubernetes": {"kubeconfig": str(sandbox.kubeconfig), "timeout_seconds": 3},
        "server": {"host": "127.0.0.1", "port": port, "workers": workers},
        "tracker": {"enabled": False},
    }
    for key, value in settings.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    process = popen_serve(workdir, config)
    served = Served(process, url=f"http://127.0.0.1:{port}", workdir=workdir)
    try:
        served.wait_ready(ready_seconds)
    except BaseException:
        served.stop()
        raise
    return served


def bad_deployments(harness: Harness, count: int) -> dict[str, str]:
    """`count` Deployments in shop (app00...) with a healthy revision 1 and a bad revision 2;
    the bad ReplicaSet's name by Deployment."""
    bad = {}
    for i in range(count):
        name = f"app{i:02d}"
        bad[name] = harness.deploy(name, [(f"{name}:1", hours(2)), (f"{name}:2", minutes(3))])[1]
    return bad


def burst_over(replicas: Sequence[Served], bad: dict[str, str]) -> list[dict[str, Any]]:
    """One alert per bad Deployment, all at once, delivered to the replicas in turn: each
    alert's decision."""
    names = sorted(bad)

    def one_delivery(i: int) -> dict[str, Any]:
        alert = Harness.alert(namespace="shop", deployment=names[i], replicaset=bad[names[i]])
        status, body = replicas[i % len(replicas)].deliver(Harness.payload(alert))
        assert status == 200, body
        decision: dict[str, Any] = body["decisions"][0]
        return decision

    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(one_delivery, range(len(names))))


@contextmanager
def two_replicas(
    sandbox: SandboxHandle, tmp_path: Path, stores: tuple[Store, Store], **settings: Any
) -> Iterator[tuple[Served, Served]]:
    """Two `serve` processes ("one", "two") with `settings`, on these stores (one shared, or
    one each); both stopped after."""
    one = serve(sandbox, tmp_path, stores[0], name="one", **settings)
    try:
        two = serve(sandbox, tmp_path, stores[1], name="two", **settings)
    except BaseException:
        one.stop()
        raise
    try:
        yield one, two
    finally:
        one.stop()
        two.stop()
