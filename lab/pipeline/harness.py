"""`Pipeline`: sandbox -> prometheus -> alertmanager -> receiver, started and torn down together.

    with Pipeline.start(workdir=tmp, timing=Timing()) as pipeline:
        ...  # pipeline.sandbox, pipeline.receiver.service.audit, pipeline.query("ALERTS")

Everything listens on 127.0.0.1 with free ports. `stop()` (also on leaving the `with`, and when
start-up fails half way) stops the children, the receivers and the sandbox, in that order.
Used by the demo, tests/pipeline and benchmarks/pipeline.py. With `cluster=Cluster(...)` it runs
on a cluster the caller brought instead of the sandbox (tests/controlplane: the real control
plane, scraped through real kube-state-metrics), which the caller also stops.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from lab.pipeline.configs import (
    alertmanager_config,
    prometheus_config,
    render_monitoring_rule_file,
    render_rule_file,
    rules_dir,
    write_yaml,
)
from lab.pipeline.processes import Generation, ManagedProcess, free_port, require_binaries
from lab.pipeline.receiver import ReceiverServer
from lab.pipeline.timing import Timing
from sandbox.testing import SandboxHandle

READY_TIMEOUT_SECONDS = 30.0
HTTP_TIMEOUT_SECONDS = 5.0
# The recording rule in rules/rollback-rules.yaml holding a revision's typical P99, which becomes
# the baseline the P99 latency alert compares the revision replacing it with.
LATENCY_BASELINE_RECORD = "rollback_webhook:revision_latency_seconds:p99_median1h"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Cluster:
    """What a pipeline needs of its cluster: a Kubernetes client for the receiver(s), and the
    host:port of the kube-state-metrics-format /metrics Prometheus scrapes (with honor_labels).
    The sandbox serves both itself."""

    api_client: Callable[[], Any]
    metrics_target: str

    @classmethod
    def of_sandbox(cls, sandbox: SandboxHandle) -> Cluster:
        return cls(
            api_client=sandbox.api_client, metrics_target=sandbox.url.removeprefix("http://")
        )


def _quiet(_: str) -> None:
    return None


@dataclass
class Pipeline:
    """A running pipeline; build it with `Pipeline.start(...)`."""

    workdir: Path
    timing: Timing
    cluster: Cluster
    receiver: ReceiverServer
    dry_run_receiver: ReceiverServer | None = None
    prometheus_url: str = ""
    alertmanager_url: str = ""
    generation: Generation = Generation.DEBIAN
    processes: list[ManagedProcess] = field(default_factory=list)
    # The sandbox this pipeline started (and stops); None on a cluster the caller brought.
    started_sandbox: SandboxHandle | None = None
    _stopped: bool = False

    @property
    def sandbox(self) -> SandboxHandle:
        """The sandbox the pipeline runs on (the default)."""
        if self.started_sandbox is None:
            raise RuntimeError(
                "this pipeline runs on a cluster its caller brought, not the sandbox"
            )
        return self.started_sandbox

    @classmethod
    def start(
        cls,
        *,
        workdir: Path,
        timing: Timing | None = None,
        receiver_settings: dict[str, Any] | None = None,
        dry_run_namespaces: tuple[str, ...] = (),
        generation: Generation = Generation.DEBIAN,
        progress: Progress = _quiet,
        cluster: Cluster | None = None,
    ) -> Pipeline:
        """Start the sandbox, the receiver(s), alertmanager and prometheus, each ready.

        `receiver_settings` are config keys for the receiver (as in the YAML file); by default
        it asks the pipeline's Prometheus for evidence and confirmation, as in production.
        With `dry_run_namespaces`, a second receiver with `dry_run: true` takes those
        namespaces' alerts (see configs.alertmanager_config). Raises PipelineUnavailable when
        the binaries or the rules folder are missing, before starting anything. `generation`
        picks Prometheus 2.42 + Alertmanager 0.25 (Debian) or 3.x + 0.3x (built). `cluster`
        replaces the sandbox with the caller's cluster, which the pipeline never stops.
        """
        timing = timing or Timing()
        prometheus_bin, alertmanager_bin = require_binaries(generation)
        folder = rules_dir()
        workdir.mkdir(parents=True, exist_ok=True)
        prometheus_port, alertmanager_port = free_port(), free_port()
        while alertmanager_port == prometheus_port:
            alertmanager_port = free_port()
        prometheus_url = f"http://127.0.0.1:{prometheus_port}"
        alertmanager_url = f"http://127.0.0.1:{alertmanager_port}"
        sandbox: SandboxHandle | None = None
        if cluster is None:
            progress("starting the sandbox cluster")
            sandbox = SandboxHandle.start(workdir=workdir)
            cluster = Cluster.of_sandbox(sandbox)
        pipeline: Pipeline | None = None
        try:
            settings = {"prometheus": {"url": prometheus_url}, **(receiver_settings or {})}
            receiver = ReceiverServer(
                name="receiver",
                workdir=workdir,
                api_client=cluster.api_client(),
                overrides=settings,
            )
            pipeline = cls(
                workdir=workdir,
                timing=timing,
                cluster=cluster,
                started_sandbox=sandbox,
                receiver=receiver,
                prometheus_url=prometheus_url,
                alertmanager_url=alertmanager_url,
                generation=generation,
            )
            receiver.start()
            if dry_run_namespaces:
                pipeline.dry_run_receiver = ReceiverServer(
                    name="receiver-dry-run",
                    workdir=workdir,
                    api_client=cluster.api_client(),
                    overrides={**settings, "dry_run": True},
                )
                pipeline.dry_run_receiver.start()
            progress(f"receiver listening at {receiver.url}")
            pipeline._start_alertmanager(
                alertmanager_bin,
                port=alertmanager_port,
                folder=folder,
                dry_run_namespaces=dry_run_namespaces,
                progress=progress,
            )
            pipeline._start_prometheus(prometheus_bin, port=prometheus_port, progress=progress)
        except BaseException:
            if pipeline is not None:
                pipeline.stop()
            elif sandbox is not None:
                sandbox.stop()
            raise
        return pipeline

    def _start_alertmanager(
        self,
        binary: str,
        *,
        port: int,
        folder: Path,
        dry_run_namespaces: tuple[str, ...],
        progress: Progress,
    ) -> None:
        config = alertmanager_config(
            receiver=self.receiver.target,
            timing=self.timing,
            dry_run_receiver=self.dry_run_receiver.target if self.dry_run_receiver else None,
            dry_run_namespaces=dry_run_namespaces,
            folder=folder,
        )
        config_path = write_yaml(self.workdir / "alertmanager.yml", config)
        storage = self.workdir / "alertmanager-data"
        storage.mkdir(exist_ok=True)
        process = ManagedProcess(
            "alertmanager",
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url={self.alertmanager_url}/",
                # No HA gossip: it would listen on 0.0.0.0:9094 and wait for peers.
                "--cluster.listen-address=",
            ],
            log_path=self.workdir / "alertmanager.log",
        )
        self.processes.append(process)
        process.wait_ready(f"{self.alertmanager_url}/-/ready", timeout=READY_TIMEOUT_SECONDS)
        progress(f"alertmanager (pid {process.pid}) at {self.alertmanager_url}")

    def _start_prometheus(self, binary: str, *, port: int, progress: Progress) -> None:
        rule_file = self.workdir / "rollback-rules.rendered.yaml"
        rule_file.write_text(render_rule_file(self.timing))
        monitoring = self.workdir / "rollback-webhook-monitoring.rendered.yaml"
        monitoring.write_text(render_monitoring_rule_file(self.timing))
        receivers = [self.receiver, *([self.dry_run_receiver] if self.dry_run_receiver else [])]
        config = prometheus_config(
            sandbox_target=self.cluster.metrics_target,
            alertmanager_target=self.alertmanager_url.removeprefix("http://"),
            rule_file=rule_file,
            timing=self.timing,
            receiver_targets=tuple(
                urllib.parse.urlsplit(receiver.url).netloc for receiver in receivers
            ),
            monitoring_rule_file=monitoring,
        )
        config_path = write_yaml(self.workdir / "prometheus.yml", config)
        storage = self.workdir / "prometheus-data"
        storage.mkdir(exist_ok=True)
        process = ManagedProcess(
            "prometheus",
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url={self.prometheus_url}/",
            ],
            log_path=self.workdir / "prometheus.log",
        )
        self.processes.append(process)
        process.wait_ready(f"{self.prometheus_url}/-/ready", timeout=READY_TIMEOUT_SECONDS)
        progress(f"prometheus (pid {process.pid}) at {self.prometheus_url}")

    # -- asking the running parts -----------------------------------------------------------
    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query against the pipeline's Prometheus; the result vector."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            answer = json.loads(response.read())
        if answer.get("status") != "success":
            raise RuntimeError(f"prometheus query {promql!r} failed: {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def alert_states(self, namespace: str, deployment: str) -> dict[str, str]:
        """alertname -> pending|firing for the Deployment's alerts in Prometheus now."""
        series = self.query(
            f'ALERTS{{namespace="{namespace}",deployment="{deployment}",rollback_trigger!=""}}'
        )
        states: dict[str, str] = {}
        for item in series:
            metric = item["metric"]
            name, state = metric.get("alertname", "?"), metric.get("alertstate", "?")
            if states.get(name) != "firing":
                states[name] = state
        return states

    def latency_baseline_ready(self, namespace: str, deployment: str) -> bool:
        """Whether Prometheus has recorded the typical P99 of the Deployment's running revision,
        the baseline the latency alert compares its successor with: roll a slow revision out
        only after it exists."""
        return bool(
            self.query(
                f'{LATENCY_BASELINE_RECORD}{{namespace="{namespace}",deployment="{deployment}"}}'
            )
        )

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds (API v2)."""
        url = f"{self.alertmanager_url}/api/v2/alerts"
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            alerts: list[dict[str, Any]] = json.loads(response.read())
        return alerts

    def pids(self) -> list[int]:
        """Process ids of the children (prometheus, alertmanager)."""
        return [p.pid for p in self.processes]

    # -- teardown ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop everything; safe to call twice and after a failed start."""
        if self._stopped:
            return
        self._stopped = True
        errors: list[BaseException] = []
        steps: list[Callable[[], None]] = [p.stop for p in reversed(self.processes)]
        steps.append(self.receiver.stop)
        if self.dry_run_receiver is not None:
            steps.append(self.dry_run_receiver.stop)
        if self.started_sandbox is not None:
            steps.append(self.started_sandbox.stop)
        for step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest, then re-raise
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
