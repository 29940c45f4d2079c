"""ONE real pipeline per module and generation (prometheus + alertmanager + receivers +
sandbox), with every scenario in its own namespace rolled out at the same time, so the module
costs about as long as its slowest trigger (the restart rate needs three restarts: ~40 s of the
sandbox's model), once on Prometheus 2.42 + Alertmanager 0.25 (Debian) and once on Prometheus
3.x + Alertmanager 0.3x (built from their Go modules by scripts/build-go.sh).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lab.pipeline import Generation, Pipeline, Timing, Workload, wait_until
from lab.pipeline.processes import BUILT_ALERTMANAGER, BUILT_PROMETHEUS
from tests.binaries import require_binary, require_built

# Generous: the slowest scenario needs ~50 s on an idle machine; CI runs on 2 busy cores.
OUTCOME_TIMEOUT = 120.0
V1, V2 = "registry.local/web:1.0", "registry.local/web:2.0"
V1_5 = "registry.local/web:1.5"  # pl-oom only: healthy, but current for three minutes

TRIGGER_WORKLOADS = {
    "restart_rate": Workload("pl-restart", "web"),
    "oomkilled": Workload("pl-oom", "web"),
    # Four pods reach the rule's >= 1 request/s over rate(...[2m]) in 3 s (120 s / 40 rps).
    "p99_latency": Workload("pl-p99", "web", replicas=4),
}
HEALTHY = Workload("pl-healthy", "web")
NOT_OPTED_IN = Workload("pl-optout", "web", opted_in=False)
DRY_RUN = Workload("pl-dryrun", "web")
RETRY = Workload("pl-retry", "web")
# Four rollbacks in this module (three triggers and the retry): under the receiver's default
# circuit breaker of 5 an hour, which stays on as shipped. A sixth would be circuit_open.
# The receiver's first read of the Deployment in pl-retry gets a 500 once.
RETRY_FAULT_PATH = rf"^/apis/apps/v1/namespaces/{RETRY.namespace}/deployments/{RETRY.name}$"


@dataclass
class Run:
    """The running pipeline and what was rolled out in it."""

    pipeline: Pipeline
    rollout_times: dict[str, float] = field(default_factory=dict)

    def decisions(self, workload: Workload, *, dry_run: bool = False) -> list[dict[str, Any]]:
        """The workload's decisions in the (dry-run) receiver's audit, oldest first."""
        receiver = self.pipeline.dry_run_receiver if dry_run else self.pipeline.receiver
        assert receiver is not None
        rows = receiver.service.audit.query(
            namespace=workload.namespace, deployment=workload.name, limit=500
        )
        return list(reversed(rows))

    def wait_for(self, what: str, condition: Any) -> None:
        if not wait_until(condition, timeout=OUTCOME_TIMEOUT, interval=0.2):
            logs = "\n".join(p.log_tail()[-800:] for p in self.pipeline.processes)
            pytest.fail(f"timed out after {OUTCOME_TIMEOUT:.0f}s waiting for {what}\n{logs}")


def require_generation(generation: Generation) -> None:
    """Skip (or fail under CI=true) without the generation's binaries."""
    if generation is Generation.DEBIAN:
        require_binary("prometheus")
        require_binary("prometheus-alertmanager", "alertmanager")
    else:
        require_built(BUILT_PROMETHEUS)
        require_built(BUILT_ALERTMANAGER)


@pytest.fixture(scope="module", params=list(Generation), ids=lambda g: f"{g}-generation")
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    generation: Generation = request.param
    require_generation(generation)
    timing = Timing()
    pipeline = Pipeline.start(
        workdir=tmp_path_factory.mktemp(f"pipeline-{generation}"),
        timing=timing,
        dry_run_namespaces=(DRY_RUN.namespace,),
        generation=generation,
    )
    with pipeline:
        sandbox = pipeline.sandbox
        everyone = [*TRIGGER_WORKLOADS.values(), HEALTHY, NOT_OPTED_IN, DRY_RUN, RETRY]
        for workload in everyone:
            workload.deploy_v1(sandbox, image=V1)
        sandbox.controls.fault(method="GET", path=RETRY_FAULT_PATH, status=500, count=1)
        result = Run(pipeline)
        times = result.rollout_times
        times["restart_rate"] = TRIGGER_WORKLOADS["restart_rate"].roll_out(
            sandbox, image=V2, fault="crashloop"
        )
        # Last healthy, not previous: in pl-oom a healthy-looking V1_5 ran only three minutes
        # before the bad V2, so nothing proves it; the rollback must skip it for V1.
        oom = TRIGGER_WORKLOADS["oomkilled"]
        sandbox.controls.apply(
            oom.manifest(image=V1_5), as_of=datetime.now(UTC) - timedelta(minutes=3)
        )
        times["oomkilled"] = oom.roll_out(sandbox, image=V2, fault="oomkilled")
        times["healthy"] = HEALTHY.roll_out(sandbox, image=V2)
        for workload in (NOT_OPTED_IN, DRY_RUN, RETRY):
            times[workload.namespace] = workload.roll_out(sandbox, image=V2, fault="oomkilled")
        # The latency alert compares with the replaced revision's typical P99: roll the slow
        # revision out only once Prometheus has recorded it for the healthy one.
        p99 = TRIGGER_WORKLOADS["p99_latency"]
        if not wait_until(
            lambda: pipeline.latency_baseline_ready(p99.namespace, p99.name),
            timeout=timing.baseline_offset + 60,
        ):
            pytest.fail("Prometheus never recorded the latency baseline of pl-p99")
        times["p99_latency"] = p99.roll_out(sandbox, image=V2, fault="slow")
        yield result
