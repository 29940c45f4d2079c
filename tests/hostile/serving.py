"""`rollback-webhook serve` as a subprocess against the test's sandbox: the real server, real
sockets (what slow clients and chunked bodies need; the Flask test client has neither)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from lab.pipeline.processes import free_port
from lab.receiver_harness import TOKEN
from sandbox.testing import SandboxHandle

REPO = Path(__file__).resolve().parents[2]


class Served:
    """A running `serve`: its port, its logs."""

    def __init__(self, process: subprocess.Popen[bytes], *, port: int, workdir: Path) -> None:
        self.process = process
        self.port = port
        self.workdir = workdir

    @property
    def stderr(self) -> str:
        return (self.workdir / "stderr").read_text(errors="replace")

    def connection(self, timeout: float = 5) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        timeout: float = 5,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        connection = self.connection(timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def post_alerts(self, payload: Any, *, timeout: float = 5) -> tuple[int, Any]:
        status, body = self.request(
            "POST",
            "/api/v1/alerts",
            json.dumps(payload).encode(),
            timeout=timeout,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        return status, json.loads(body)

    def post_chunked(self, body: bytes, *, chunk: int = 1000) -> tuple[int, Any]:
        """POST /api/v1/alerts with Transfer-Encoding: chunked (no Content-Length)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            head = (
                "POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )
            sock.sendall(head.encode())
            try:
                for start in range(0, len(body), chunk):
                    part = body[start : start + chunk]
                    sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # answered (413) and closed before the whole body was sent
            answer = b""
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                answer += data
        head_text, _, rest = answer.partition(b"\r\n\r\n")
        status = int(head_text.split()[1])
        return status, json.loads(rest) if rest.strip().startswith(b"{") else rest


def command() -> list[str]:
    """The installed console script when there is one, else the same entry point via -m."""
    script = shutil.which("rollback-webhook")
    return [script, "serve"] if script else [sys.executable, "-m", "webhook", "serve"]


@contextmanager
def serve(sandbox: SandboxHandle, tmp_path: Path, **overrides: Any) -> Iterator[Served]:
    """Start `rollback-webhook serve` (tracker off), wait for /readyz, stop it after."""
    workdir = tmp_path / "serve"
    (workdir / "home").mkdir(parents=True)
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "oncall").write_text("alice:oncall-secret-alice\n")
    port = free_port()
    config: dict[str, Any] = {
        "audit": {"path": str(workdir / "audit.sqlite")},
        "auth": {
            "receiver": {"bearer_token_file": str(tmp_path / "token")},
            "oncall_tokens_file": str(tmp_path / "oncall"),
        },
        "kubernetes": {"kubeconfig": str(sandbox.kubeconfig), "timeout_seconds": 5},
        "server": {"host": "127.0.0.1", "port": port},
        "tracker": {"enabled": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    config_file = workdir / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    ignored = {"ROLLBACK_WEBHOOK_CONFIG", "KUBECONFIG", "XDG_RUNTIME_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    env.update({"HOME": str(workdir / "home"), "PYTHONPATH": str(REPO)})
    with (workdir / "stdout").open("wb") as out, (workdir / "stderr").open("wb") as err:
        process = subprocess.Popen(
            [*command(), "--config", str(config_file)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    served = Served(process, port=port, workdir=workdir)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited ({process.returncode}):\n{served.stderr}")
            try:
                if served.request("GET", "/readyz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve never became ready:\n{served.stderr}")
            time.sleep(0.2)
        yield served
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
