"""The real `rollback-webhook serve`: 200 slow clients (a header line every 2 s, never
finishing) leave /healthz answering within a second and deliveries well within the header
deadline a starved request would wait for, and chunked bodies are capped there exactly as
Content-Length ones are."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lab.receiver_harness import Harness, hours, minutes, template_images
from sandbox.testing import SandboxHandle
from tests.hostile.serving import Served, serve
from webhook.commands.serve import HEADER_SECONDS

SLOW_CLIENTS = 200
DRIP_SECONDS = 2.0
LIMIT = 4096
T = TypeVar("T")


class SlowClients:
    """SLOW_CLIENTS connections that each send a request line, then one header line every
    DRIP_SECONDS and never the blank line; one the server closes is opened again at once."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.sockets = [self._open() for _ in range(count)]
        self.sent = 0
        self.cut_off = 0  # connections the server closed (its header deadline)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(b"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        return sock

    def _drip(self) -> None:
        n = 0
        while not self._stop.wait(DRIP_SECONDS):
            n += 1
            for i, sock in enumerate(self.sockets):
                try:
                    sock.sendall(f"X-Slow-{n}: {'a' * 20}\r\n".encode())
                    self.sent += 1
                except OSError:
                    self.cut_off += 1
                    sock.close()
                    self.sockets[i] = self._open()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def served(sandbox: SandboxHandle, harness: Harness, tmp_path: Path) -> Iterator[Served]:
    with serve(sandbox, tmp_path, server={"max_body_bytes": LIMIT}) as running:
        yield running


def timed(call: Callable[..., T], *args: Any) -> tuple[T, float]:
    start = time.monotonic()
    result = call(*args)
    return result, time.monotonic() - start


def test_slow_clients_do_not_starve_deliveries_or_healthz(served: Served, harness: Harness) -> None:
    _, rs2 = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    slow = SlowClients(served.port, SLOW_CLIENTS)
    healthz: list[float] = []
    deliveries: list[float] = []
    try:
        deadline = time.monotonic() + 12  # past the header deadline: clients cut and back
        while time.monotonic() < deadline:
            (status, _), took = timed(served.request, "GET", "/healthz")
            assert status == 200
            healthz.append(took)
            other = Harness.alert(namespace="shop", deployment="web", alertname="NotATrigger")
            other["labels"].pop("rollback_trigger")
            (status, body), took = timed(served.post_alerts, Harness.payload(other))
            assert status == 200, body
            deliveries.append(took)
            time.sleep(0.5)
        alert = Harness.alert(namespace="shop", deployment="web", replicaset=rs2)
        (status, body), took = timed(served.post_alerts, Harness.payload(alert))
        assert status == 200, body
        assert body["decisions"][0]["outcome"] == "rolled_back", body
        deliveries.append(took)
        assert slow.sent >= SLOW_CLIENTS * 4, slow.sent
    finally:
        slow.close()
    assert max(healthz) < 1.0, healthz
    # A starved delivery waits for a slow client's header deadline (HEADER_SECONDS); a rollback
    # delivery also makes its API requests to the sandbox in this process beside 200 dripping
    # sockets (0.16 s here at load 1, ten times that on two cores at load 25): half the deadline.
    assert max(deliveries) < HEADER_SECONDS / 2, deliveries
    assert len(healthz) >= 10
    # The server ended the drips at its header deadline; the clients came straight back.
    assert slow.cut_off >= SLOW_CLIENTS, slow.cut_off
    assert template_images(harness.deployment("shop", "web")) == ["web:1"]


def sized(size: int) -> bytes:
    alert = Harness.alert(namespace="shop", deployment="nothing-here")
    base = len(json.dumps(Harness.payload(alert)).encode())
    alert["annotations"]["padding"] = "x" * (size - base - len(', "padding": ""'))
    body = json.dumps(Harness.payload(alert)).encode()
    assert len(body) == size
    return body


def test_chunked_bodies_are_capped_like_content_length_ones(served: Served) -> None:
    exact, over = sized(LIMIT), sized(LIMIT + 1)
    status, body = served.post_chunked(exact)
    assert status == 200, body
    assert len(body["decisions"]) == 1
    status, body = served.post_chunked(over)
    assert status == 413, body
    assert f"({LIMIT} bytes)" in body["error"]
    status, _ = served.post_chunked(b"[" + b"0," * 2_000_000 + b"0]", chunk=65536)
    assert status == 413
    headers = {"Authorization": "Bearer receiver-secret-token", "Content-Type": "application/json"}
    assert served.request("POST", "/api/v1/alerts", over, headers=headers)[0] == 413
    assert served.request("POST", "/api/v1/alerts", exact, headers=headers)[0] == 200
