"""`rollback-webhook serve` as it runs in the pod: a subprocess under gunicorn, a config file,
a kubeconfig, real HTTP. One alert rolls a Deployment back; SIGTERM ends it cleanly, with the
tracker's Lease released and no worker left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.pipeline.processes import free_port
from lab.receiver_harness import TOKEN, Harness, hours, minutes, template_images
from sandbox.testing import SandboxHandle
from tests.serve.support import popen_serve
from tests.tracker.support import (
    LEASE_NAME,
    LEASE_NAMESPACE,
    create_lease_namespace,
    wait_for,
)

LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{LEASE_NAME}"


def processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, the /proc stat fields after the command) for every live, non-zombie process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The command is parenthesised and may hold spaces: split after its closing paren.
        fields = stat.rsplit(")", 1)[1].split()  # state, ppid, pgrp, session, ...
        if fields[0] != "Z":
            yield int(entry.name), fields


def children_of(pid: int) -> list[int]:
    """Live direct children of `pid` (gunicorn's workers are its master's children)."""
    return [child for child, fields in processes() if int(fields[1]) == pid]


def in_session(sid: int) -> list[int]:
    """Live processes of session `sid`: whatever `serve` started, however deep."""
    return [pid for pid, fields in processes() if int(fields[3]) == sid]


class Served:
    """The `serve` subprocess: its base URL, its stdout/stderr files, its process."""

    def __init__(self, process: subprocess.Popen[bytes], *, url: str, workdir: Path) -> None:
        self.process = process
        self.url = url
        self.workdir = workdir

    @property
    def stdout(self) -> str:
        return (self.workdir / "stdout").read_text()

    @property
    def stderr(self) -> str:
        return (self.workdir / "stderr").read_text()

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()
        except OSError:
            return 0, {}, b""  # not listening yet

    def post_alerts(self, payload: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        request = urllib.request.Request(
            self.url + "/api/v1/alerts",
            data=json.dumps(payload).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), json.loads(response.read())


@pytest.fixture
def served(sandbox: SandboxHandle, harness: Harness, tmp_path: Path) -> Iterator[Served]:
    """`python -m webhook serve --config FILE` against the test's sandbox."""
    # The harness fixture wrote the receiver token and on-call tokens files into tmp_path.
    workdir = tmp_path / "serve"
    home = workdir / "home"
    home.mkdir(parents=True)
    create_lease_namespace(sandbox)
    port = free_port()
    config = {
        "audit": {"path": str(workdir / "audit.sqlite")},
        "auth": {
            "receiver": {"bearer_token_file": str(tmp_path / "token")},
            "oncall_tokens_file": str(tmp_path / "oncall"),
        },
        "kubernetes": {"kubeconfig": str(sandbox.kubeconfig), "timeout_seconds": 5},
        "server": {"host": "127.0.0.1", "port": port, "threads": 4},
        "tracker": {
            "resync_seconds": 1,
            "lease_namespace": LEASE_NAMESPACE,
            "lease_duration_seconds": 3,
        },
    }
    process = popen_serve(workdir, config)
    server = Served(process, url=f"http://127.0.0.1:{port}", workdir=workdir)
    try:
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def lease_spec(harness: Harness) -> dict[str, Any]:
    spec: dict[str, Any] = harness.read("GET", LEASE_PATH)["spec"]
    return spec


def test_serve_rolls_back_over_http_and_stops_cleanly_on_sigterm(
    served: Served, harness: Harness
) -> None:
    _, rs2 = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])

    def ready() -> bool:
        if served.process.poll() is not None:
            raise AssertionError(
                f"serve exited early ({served.process.returncode}):\n{served.stderr}"
            )
        return served.get("/readyz")[0] == 200

    wait_for(ready, seconds=20, what="/readyz answered 200")
    workers = children_of(served.process.pid)
    assert workers, "gunicorn's master has no worker process"
    assert set(workers) < set(in_session(served.process.pid)), "the session check sees them"

    alert = Harness.alert(namespace="shop", deployment="web", replicaset=rs2)
    status, headers, body = served.post_alerts(Harness.payload(alert))
    assert status == 200, body
    [decision] = body["decisions"]
    assert decision["outcome"] == "rolled_back", decision
    # Served by gunicorn, not by Flask's development server (Werkzeug).
    assert headers["Server"].startswith("gunicorn"), headers
    assert "Booting worker with pid" in served.stderr

    assert template_images(harness.deployment("shop", "web")) == ["web:1"]

    _, _, metrics = served.get("/metrics")
    counted = [
        line
        for line in metrics.decode().splitlines()
        if line.startswith("rollback_webhook_decisions_total{")
        and 'outcome="rolled_back"' in line
        and 'source="alertmanager"' in line
    ]
    assert len(counted) == 1 and counted[0].endswith(" 1.0"), counted

    def decision_line() -> dict[str, Any] | None:
        # Only whole lines: the worker may be writing the last one as we read the file.
        for line in served.stdout.split("\n")[:-1]:
            if line.startswith("{"):
                record: dict[str, Any] = json.loads(line)
                if record.get("id") == decision["id"]:
                    return record
        return None

    logged = wait_for(decision_line, seconds=5, what="the decision's JSON line on stdout")
    # stdout is the decision stream: every line is one JSON decision (access log on stderr).
    lines = [line for line in served.stdout.splitlines() if line.strip()]
    assert all(json.loads(line)["event"] == "decision" for line in lines), lines
    assert "POST /api/v1/alerts" in served.stderr
    assert logged["outcome"] == "rolled_back" and logged["deployment"] == "web"

    holder = wait_for(
        lambda: lease_spec(harness).get("holderIdentity"), seconds=10, what="the Lease held"
    )
    # Logged by the tracker process once its loop runs (the Lease may be taken first).
    wait_for(
        lambda: f"health tracker started as {holder} " in served.stderr,
        seconds=10,
        what="the master's tracker naming the Lease holder",
    )

    # Each worker (not the master) reads every replica's rollbacks for the circuit breaker.
    started = re.search(r"circuit breaker: reading .* in worker pid (\d+)", served.stderr)
    assert started and int(started.group(1)) != served.process.pid, served.stderr

    served.process.send_signal(signal.SIGTERM)
    try:
        # gunicorn's graceful_timeout is 20 s; an idle worker should not need it.
        code = served.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"serve still running 20 s after SIGTERM:\n{served.stderr}") from None
    assert code == 0, served.stderr
    assert not lease_spec(harness).get("holderIdentity"), "the Lease was not released"
    assert not in_session(served.process.pid), "a process of serve outlived it"
    # The control socket is off: nothing written under HOME, no warning about it.
    assert not (served.workdir / "home" / ".gunicorn").exists()
    assert "control socket" not in served.stderr.lower()
    assert "Traceback" not in served.stderr, served.stderr
