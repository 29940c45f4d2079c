"""Pipeline benchmark (not a test): time from a bad rollout to its rollback write, through the
real sandbox -> prometheus -> alertmanager -> receiver pipeline, against the floor that the
configuration sets.

Per trigger, in one pipeline and at the same time (each in its own namespace):
- measured: from applying the bad revision to the moment the Deployment's template is back on
  v1 in the sandbox's store (polled every 20 ms);
- floor: the time the sandbox's behaviour model needs before the rule's condition can hold
  (restart_rate: both pods' second restart, RESTART_PERIOD_SECONDS, or with rules that want one
  container's third, 2 x RESTART_PERIOD_SECONDS; p99_latency: the rules' minimum
  traffic of 1 request/s over rate(...[5m]), which a young revision of 4 pods at 10 requests/s
  reaches after 300 s / 40 = 7.5 s; oomkilled: none) + scrape interval + evaluation interval +
  `for:` + group_wait (Timing.floor_seconds(), the issue's definition). Scrape and evaluation
  are counted whole, as if the phases lined up worst; a lucky alignment can beat the floor by
  up to those two intervals, so a ratio a little under 1 is possible;
- ratio measured/floor and overhead measured - floor in seconds;
- over_minimum: measured - (condition delay + `for:` + group_wait), the true lower bound (zero
  phase waits): what scrape and evaluation phases, notification batching, HTTP, the decision
  and the write add together.

With `--shipped`, the timings are the shipped ones instead: a 30 s scrape (the interval the
README assumes; kube-prometheus-stack's default), each rule group's shipped evaluation interval,
each alert's shipped `for:`, the shipped route's group_wait/group_interval/repeat_interval, all
read from the checkout's rules/ as it is when the benchmark runs. The latency alert's baseline
is the replaced revision's recorded P99, so the run waits (10 min at most) for that revision to
have one before the regression: history to exist, not part of how fast one is noticed. Triggers
whose shipped timings differ run in pipelines of their own, at the same time.

Run: python3 -m benchmarks.pipeline [--rounds 1] [--for 3] [--shipped] [--json]
Needs prometheus and prometheus-alertmanager on PATH (Debian packages).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.receiver import decisions_to_devnull
from lab.pipeline import TRIGGER_FAULTS, Pipeline, Timing, Workload, wait_until
from lab.pipeline.configs import ALERTMANAGER_FRAGMENT, RULES_MANIFEST, rules_dir
from rules import extract
from sandbox.pods import REQUESTS_PER_SECOND, RESTART_PERIOD_SECONDS
from webhook.config import parse_duration

V1, V2 = "registry.local/bench:1", "registry.local/bench:2"
POLL_SECONDS = 0.02
TIMEOUT_SECONDS = 180.0
# The latency rules use rate(...[5m]) and want >= 1 request/s; a new revision's series is as
# old as its pods, so its rate is (requests so far) / 300 s until the window fills.
RATE_WINDOW_SECONDS = 300.0
REPLICAS = {"p99_latency": 4}
# --shipped: the scrape interval the README assumes, and the longest wait for the latency
# baseline (the replaced revision's P99 recorded) before the regression starts.
SHIPPED_SCRAPE_SECONDS = 30.0
SHIPPED_BASELINE_OFFSET_SECONDS = 600.0


def shipped_timings(folder: Path | None = None) -> dict[str, Timing]:
    """Each trigger's timings as shipped: its group's interval, its alert's `for:`, the shipped
    route's waits (rules/ read as it is now), a 30 s scrape, the baseline offset shortened."""
    folder = folder or rules_dir()
    route = yaml.safe_load((folder / ALERTMANAGER_FRAGMENT).read_text())["routes"][0]
    waits = {
        key: float(parse_duration(route[key], key=f"route.{key}"))
        for key in ("group_wait", "group_interval", "repeat_interval")
    }
    timings: dict[str, Timing] = {}
    for group in extract.extract_groups(folder / RULES_MANIFEST)["groups"]:
        # Prometheus' own default when a group names no interval: the global one, 1m.
        interval = parse_duration(group.get("interval", "1m"), key="interval")
        for rule in group["rules"]:
            trigger = (rule.get("labels") or {}).get("rollback_trigger")
            if "alert" in rule and trigger in TRIGGER_FAULTS:
                timings[trigger] = Timing(
                    scrape_interval=SHIPPED_SCRAPE_SECONDS,
                    evaluation_interval=float(interval),
                    for_seconds=float(parse_duration(rule.get("for", "0s"), key="for")),
                    baseline_offset=SHIPPED_BASELINE_OFFSET_SECONDS,
                    **waits,
                )
    return timings


def manifest_state(folder: Path | None = None) -> str:
    """Which rules the run used: the manifest's digest, and whether it differs from HEAD."""
    path = (folder or rules_dir()) / RULES_MANIFEST
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    inside = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"],
        cwd=path.parent,
        check=False,
        capture_output=True,
    ).returncode
    changed = subprocess.run(
        ["git", "diff", "--quiet", "HEAD", "--", str(path)],
        cwd=path.parent,
        check=False,
        capture_output=True,
    ).returncode
    state = "as committed" if changed == 0 else "uncommitted changes"
    if inside != 0:
        state = "not in a git checkout"
    return f"{path.name} sha256 {digest} ({state})"


def restarts_on_two_pods_count(folder: Path | None = None) -> bool:
    """Whether the restart rule also fires on one restart in each of two pods (a rules version
    that does: the condition then holds at the first crash of a two-replica revision)."""
    text = ((folder or rules_dir()) / RULES_MANIFEST).read_text()
    return "revision_restarting_pods" in text


def floor_parts(trigger: str, timing: Timing) -> str:
    """What sets the floor, term by term."""
    condition = condition_delay(trigger, timing)
    rate = REQUESTS_PER_SECOND * REPLICAS.get(trigger, 2)
    why = {
        "restart_rate": f"both pods' 2nd restart at {RESTART_PERIOD_SECONDS:.0f} s (sandbox)"
        if restarts_on_two_pods_count()
        else f"3rd restart at 2 x {RESTART_PERIOD_SECONDS:.0f} s (sandbox's period)",
        "oomkilled": "OOMKilled at the first start",
        "p99_latency": f"min. traffic: {rate_window():.0f} s window / {rate:.0f} req/s",
    }[trigger]
    return (
        f"{condition:.1f} s {why} + scrape {timing.scrape_interval:.0f} + evaluation "
        f"{timing.evaluation_interval:.0f} + for {timing.for_seconds:.0f} + group_wait "
        f"{timing.group_wait:.0f}"
    )


def condition_delay(trigger: str, timing: Timing) -> float:
    """Seconds the sandbox model needs, after the rollout, before the rule's condition holds."""
    if trigger == "restart_rate":
        # A young pod's restart counter counts as is: 1 at its first crash (at once), 2 one
        # period later. The rule wants 2 each in two pods, or 3 in one container.
        if restarts_on_two_pods_count():
            return RESTART_PERIOD_SECONDS
        return 2 * RESTART_PERIOD_SECONDS
    if trigger == "p99_latency":
        return rate_window() / (REQUESTS_PER_SECOND * REPLICAS[trigger])
    return 0.0


def rate_window(folder: Path | None = None) -> float:
    """The latency rules' rate window: 2m in rules that record `..._p99_rate2m`, else 5m."""
    text = ((folder or rules_dir()) / RULES_MANIFEST).read_text()
    return 120.0 if "p99_rate2m" in text else RATE_WINDOW_SECONDS


def one_round(
    pipeline: Pipeline, round_no: int, triggers: list[str], *, timeout: float = TIMEOUT_SECONDS
) -> dict[str, float]:
    """Roll out one bad revision per trigger at once; seconds until each is rolled back."""
    sandbox = pipeline.sandbox
    workloads = {
        t: Workload(f"bench-{round_no}-{t.replace('_', '-')}", "app", replicas=REPLICAS.get(t, 2))
        for t in triggers
    }
    for workload in workloads.values():
        workload.deploy_v1(sandbox, image=V1)
    if "p99_latency" in workloads:
        # Its baseline is the replaced revision's recorded P99: wait for it (baseline_offset).
        slow = workloads["p99_latency"]

        def baseline_ready() -> bool:
            try:
                return bool(pipeline.latency_baseline_ready(slow.namespace, slow.name))
            except OSError:  # a busy Prometheus timed out: ask again
                return False

        if not wait_until(
            baseline_ready,
            # That history, plus the rate window's first samples and the recording's ticks.
            timeout=pipeline.timing.baseline_offset
            + rate_window()
            + 5 * (pipeline.timing.scrape_interval + pipeline.timing.evaluation_interval),
        ):
            raise RuntimeError("prometheus never recorded the latency baseline")
    started = {
        t: w.roll_out(sandbox, image=V2, fault=TRIGGER_FAULTS[t]) for t, w in workloads.items()
    }
    done: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(workloads) and time.monotonic() < deadline:
        now = time.time()
        for trigger, workload in workloads.items():
            if trigger not in done and workload.images(sandbox) == [V1]:
                done[trigger] = now - started[trigger]
        time.sleep(POLL_SECONDS)
    missing = sorted(set(workloads) - set(done))
    if missing:
        raise RuntimeError(
            f"round {round_no}: no rollback within {timeout:.0f}s for "
            f"{', '.join(missing)} (logs in {pipeline.workdir})"
        )
    return done


def run_pipelines(plans: list[tuple[Timing, list[str]]], rounds: int) -> dict[str, list[float]]:
    """Each (timing, triggers) in a pipeline of its own, all at the same time."""
    samples: dict[str, list[float]] = {t: [] for _, triggers in plans for t in triggers}
    errors: list[Exception] = []

    def run(timing: Timing, triggers: list[str]) -> None:
        floor = max(condition_delay(t, timing) for t in triggers) + timing.floor_seconds()
        try:
            with (
                tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp,
                Pipeline.start(
                    workdir=Path(tmp),
                    timing=timing,
                    # The circuit breaker (5 rollbacks an hour, cluster-wide) would stop round 2.
                    receiver_settings={"max_rollbacks": 1000},
                ) as pipeline,
            ):
                for round_no in range(1, rounds + 1):
                    found = one_round(
                        pipeline, round_no, triggers, timeout=max(TIMEOUT_SECONDS, 3 * floor)
                    )
                    for trigger, seconds in found.items():
                        samples[trigger].append(seconds)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=plan) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        print(f"a pipeline failed: {error!r}", file=sys.stderr)
    if errors and not any(samples.values()):
        raise errors[0]
    return {trigger: values for trigger, values in samples.items() if values}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds, one after the other")
    parser.add_argument(
        "--for",
        dest="for_seconds",
        type=float,
        default=Timing.for_seconds,
        help="the rules' for: in seconds",
    )
    parser.add_argument(
        "--shipped",
        action="store_true",
        help="the shipped timings (30 s scrape, shipped interval, for:, waits)",
    )
    parser.add_argument(
        "--triggers", default=",".join(TRIGGER_FAULTS), help="comma-separated triggers"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    triggers = [t for t in args.triggers.split(",") if t]
    unknown = sorted(set(triggers) - set(TRIGGER_FAULTS))
    if unknown:
        parser.error(f"unknown trigger(s): {', '.join(unknown)}")
    if args.shipped:
        shipped = shipped_timings()
        timings = {t: shipped[t] for t in triggers}
    else:
        timings = {t: Timing(for_seconds=args.for_seconds) for t in triggers}
    plans: list[tuple[Timing, list[str]]] = []
    for trigger, timing in timings.items():
        for planned, members in plans:
            if planned == timing:
                members.append(trigger)
                break
        else:
            plans.append((timing, [trigger]))
    with decisions_to_devnull():  # the receivers' decision lines: not this script's output
        samples = run_pipelines(plans, args.rounds)
    result: dict[str, Any] = {
        "timing": "shipped" if args.shipped else plans[0][0].describe(),
        "rules": manifest_state(),
        "triggers": {},
    }
    for trigger, values in samples.items():
        timing = timings[trigger]
        measured = statistics.median(values)
        floor = condition_delay(trigger, timing) + timing.floor_seconds()
        minimum = condition_delay(trigger, timing) + timing.for_seconds + timing.group_wait
        result["triggers"][trigger] = {
            "timing": timing.describe(),
            "measured_seconds": round(measured, 2),
            "samples": [round(v, 2) for v in values],
            "floor_seconds": round(floor, 2),
            "floor_is": floor_parts(trigger, timing),
            "ratio": round(measured / floor, 2),
            "overhead_seconds": round(measured - floor, 2),
            "over_minimum_seconds": round(measured - minimum, 2),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"pipeline: {result['timing']}; {result['rules']}; median of {args.rounds} round(s)")
    print(
        f"{'trigger':14} {'measured':>9} {'floor':>7} {'ratio':>6} {'overhead':>9} "
        f"{'over minimum':>13}"
    )
    for trigger, row in result["triggers"].items():
        print(
            f"{trigger:14} {row['measured_seconds']:8.2f}s {row['floor_seconds']:6.2f}s "
            f"{row['ratio']:6.2f} {row['overhead_seconds']:+8.2f}s "
            f"{row['over_minimum_seconds']:+12.2f}s"
        )
    print("floors:")
    for trigger, row in result["triggers"].items():
        print(f"  {trigger:14} {row['floor_is']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
