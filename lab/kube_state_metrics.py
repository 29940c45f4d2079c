"""`KubeStateMetrics`: the real kube-state-metrics (v2.20, built by scripts/build-go.sh) run as a
child against a kubeconfig, for tests that let it judge what the sandbox's /metrics imitates.

    ksm = KubeStateMetrics.start(binary=..., kubeconfig=plane.kubeconfig, workdir=tmp,
                                 namespaces=("t-1234",))
    text = ksm.scrape()  # Prometheus text exposition, as Prometheus would scrape it
    ksm.stop()

It listens on 127.0.0.1 (metrics and telemetry ports free at start) and watches only the
resources the rules read. Ready means its metrics server answers /healthz; its informers fill in
a moment later, so a caller waits for the series it needs (`wait_for`).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lab.pipeline.processes import ManagedProcess, free_port

# What rules/rollback-rules.yaml and the receiver's Prometheus evidence read (pods, ReplicaSets,
# Deployments), plus namespaces.
RESOURCES: tuple[str, ...] = ("pods", "replicasets", "deployments", "namespaces")
READY_TIMEOUT_SECONDS = 30.0
HTTP_TIMEOUT_SECONDS = 10.0

T = TypeVar("T")


@dataclass
class KubeStateMetrics:
    """A running kube-state-metrics; `stop()` ends it (SIGTERM, then SIGKILL)."""

    url: str  # http://127.0.0.1:<port>: the metrics server, whose /metrics Prometheus scrapes
    telemetry_url: str
    process: ManagedProcess

    @classmethod
    def start(
        cls,
        *,
        binary: str,
        kubeconfig: Path,
        workdir: Path,
        namespaces: Sequence[str] = (),
        resources: Sequence[str] = RESOURCES,
        name: str = "kube-state-metrics",
    ) -> KubeStateMetrics:
        """Start it with default metric selection (no allow/deny/opt-in lists: what a stock
        install exports for `resources`), watching `namespaces` (all when empty)."""
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        telemetry = free_port()
        while telemetry == port:
            telemetry = free_port()
        argv = [
            binary,
            f"--kubeconfig={kubeconfig}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--telemetry-host=127.0.0.1",
            f"--telemetry-port={telemetry}",
            f"--resources={','.join(resources)}",
        ]
        if namespaces:
            argv.append(f"--namespaces={','.join(namespaces)}")
        process = ManagedProcess(name, argv, log_path=workdir / f"{name}.log")
        ksm = cls(
            url=f"http://127.0.0.1:{port}",
            telemetry_url=f"http://127.0.0.1:{telemetry}",
            process=process,
        )
        try:
            process.wait_ready(f"{ksm.url}/healthz", timeout=READY_TIMEOUT_SECONDS)
        except BaseException:
            process.stop()
            raise
        return ksm

    @property
    def target(self) -> str:
        """host:port for a Prometheus static_config."""
        return self.url.removeprefix("http://")

    def scrape(self) -> str:
        """GET /metrics as text (the 0.0.4 exposition format)."""
        request = urllib.request.Request(f"{self.url}/metrics", headers={"Accept": "text/plain"})
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            text: str = response.read().decode()
        return text

    def wait_for(self, what: str, probe: Callable[[str], T | None], *, timeout: float = 60.0) -> T:
        """Scrape until `probe(text)` returns something truthy; AssertionError naming `what`
        and the end of the log after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe(self.scrape())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"kube-state-metrics: timed out after {timeout:.0f}s waiting for {what}; "
                    f"its output ({self.process.log_path}):\n{self.process.log_tail()}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop the process (safe to repeat)."""
        self.process.stop()
