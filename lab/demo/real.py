"""The demo on the real pipeline: sandbox -> prometheus -> alertmanager -> receiver."""

from __future__ import annotations

import json
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from lab.demo.explore import keep_exploring, oncall_tokens
from lab.demo.report import Printer
from lab.demo.scenario import FAULT, NEXT_STEP, V1, V2, WORKLOAD, set_the_scene, show_outcome
from lab.pipeline import Pipeline, Timing
from lab.pipeline.workloads import wait_until
from sandbox.pods import RESTART_PERIOD_SECONDS
from webhook import contract

POLL_SECONDS = 0.5


@dataclass
class _Watch:
    """What the terminal has been told so far, so each change is printed once."""

    restarts: int = -1
    alerts: str = ""
    decisions: int = 0
    alertmanager: bool = False


def _tick(printer: Printer, pipeline: Pipeline, bad_rs: str, seen: _Watch) -> None:
    restarts = WORKLOAD.pod_restarts(pipeline.sandbox, bad_rs)
    # Only growth is news: after the rollback the v2 pods are gone and the count reads 0.
    if restarts > seen.restarts:
        seen.restarts = restarts
        printer.step(
            f"v2 pods ({bad_rs}) crash-looping: {restarts} restart(s) so far "
            "(the rule wants, in 10 minutes, 2 restarts in each of two pods or 3 of one container)"
        )
    try:
        states = pipeline.alert_states(WORKLOAD.namespace, WORKLOAD.name)
        held = [
            a
            for a in pipeline.alertmanager_alerts()
            if a.get("labels", {}).get("namespace") == WORKLOAD.namespace
        ]
    except (OSError, urllib.error.URLError, RuntimeError) as exc:
        printer.step(f"(could not ask prometheus/alertmanager: {exc})")
        return
    text = ", ".join(f"{name} {state}" for name, state in sorted(states.items()))
    if text != seen.alerts:
        seen.alerts = text
        if text:
            printer.step(f"prometheus: {text}")
    if held and not seen.alertmanager:
        seen.alertmanager = True
        printer.step(
            f"alertmanager: received {held[0]['labels'].get('alertname')}, waits group_wait "
            f"({pipeline.timing.group_wait:g}s) and posts it to the receiver"
        )
    rows = pipeline.receiver.service.audit.query(
        namespace=WORKLOAD.namespace, deployment=WORKLOAD.name, limit=50
    )
    for row in reversed(rows[: len(rows) - seen.decisions]):
        printer.step(
            f"receiver: {row['outcome']}"
            + (f" ({row['reason']})" if row["reason"] else "")
            + f" for {row['alertname']}: {row['detail']}"
        )
    seen.decisions = len(rows)


def run_real(
    printer: Printer,
    *,
    workdir: Path,
    timeout: float,
    record_payload: Path | None = None,
    explore: bool = False,
) -> int:
    """Tell the story through the real pipeline; returns the exit status."""
    timing = Timing()
    printer.step(
        f"starting the pipeline in {workdir} ({timing.describe()}; shipped rules rendered "
        "by rules/extract.py, the shipped Alertmanager route)"
    )
    tokens, mine = oncall_tokens(workdir)
    with Pipeline.start(
        workdir=workdir,
        timing=timing,
        progress=printer.step,
        receiver_settings={"auth": {"oncall_tokens_file": str(tokens)}},
    ) as pipeline:
        sandbox = pipeline.sandbox
        set_the_scene(printer, sandbox)
        rolled_out = WORKLOAD.roll_out(sandbox, image=V2, fault=FAULT)
        bad_rs = WORKLOAD.replicaset_for(sandbox, V2)["metadata"]["name"]
        printer.step(f"v2: rolling out {V2}; its pods crash-loop (sandbox fault {FAULT})")
        seen = _Watch()
        back = wait_until(
            lambda: WORKLOAD.images(sandbox) == [V1],
            timeout=timeout,
            interval=POLL_SECONDS,
            on_tick=lambda: _tick(printer, pipeline, bad_rs, seen),
        )
        if not back:
            printer.step(f"no rollback after {timeout:.0f}s: see {workdir}/*.log")
            _tick(printer, pipeline, bad_rs, seen)
            return 1
        took = time.time() - rolled_out
        _tick(printer, pipeline, bad_rs, seen)
        printer.step(
            f"rolled back: {WORKLOAD.namespace}/{WORKLOAD.name} runs {V1} again, {took:.1f}s "
            f"after v2 rolled out (the floor: {RESTART_PERIOD_SECONDS:g}s until both pods' second "
            f"restart in the sandbox + {timing.floor_seconds():g}s of scrape, evaluation, for: "
            "and group_wait)"
        )
        # The resolved notification follows within group_interval: show it in the audit too.
        wait_until(
            lambda: (
                len(
                    pipeline.receiver.service.audit.query(
                        namespace=WORKLOAD.namespace, deployment=WORKLOAD.name
                    )
                )
                >= 2
            ),
            timeout=10 * timing.group_interval,
            interval=POLL_SECONDS,
        )
        _tick(printer, pipeline, bad_rs, seen)
        show_outcome(printer, pipeline.receiver.service)
        if record_payload is not None:
            _record(pipeline, record_payload)
            printer.step(f"recorded the Alertmanager payload that caused it in {record_payload}")
        if explore:
            keep_exploring(
                printer,
                pipeline.receiver,
                pipeline.sandbox,
                workdir=workdir,
                oncall=mine,
                prometheus_url=pipeline.prometheus_url,
            )
        printer.step("stopping prometheus, alertmanager, the receiver and the sandbox")
    printer.step("done: every process the demo started has exited")
    if not explore:
        printer.step(NEXT_STEP)
    return 0


def _record(pipeline: Pipeline, path: Path) -> None:
    """Save the payload behind the rollback (the fallback demo's asset)."""
    audit = pipeline.receiver.service.audit
    rolled = audit.query(outcome=contract.ROLLED_BACK, limit=1)
    stored = audit.payload(str(rolled[0]["payload_id"])) if rolled else None
    if stored is None:
        raise RuntimeError("no rolled_back decision with a stored payload to record")
    path.write_text(json.dumps(json.loads(stored.body), indent=2) + "\n")
