"""Pipeline benchmark (not a test): time from a bad rollout to its rollback write, through the
real sandbox -> prometheus -> alertmanager -> receiver pipeline, against the floor that the
configuration sets.

Per trigger, in one pipeline and at the same time (each in its own namespace):
- measured: from applying the bad revision to the moment the Deployment's template is back on
  v1 in the sandbox's store (polled every 20 ms);
- floor: the time the sandbox's behaviour model needs before the rule's condition can hold
  (restart_rate: the third restart, 2 x RESTART_PERIOD_SECONDS; p99_latency: the rules' minimum
  traffic of 1 request/s over rate(...[5m]), which a young revision of 4 pods at 10 requests/s
  reaches after 300 s / 40 = 7.5 s; oomkilled: none) + scrape interval + evaluation interval +
  `for:` + group_wait (Timing.floor_seconds(), the issue's definition). Scrape and evaluation
  are counted whole, as if the phases lined up worst; a lucky alignment can beat the floor by
  up to those two intervals, so a ratio a little under 1 is possible;
- ratio measured/floor and overhead measured - floor in seconds;
- over_minimum: measured - (condition delay + `for:` + group_wait), the true lower bound (zero
  phase waits): what scrape and evaluation phases, notification batching, HTTP, the decision
  and the write add together.

Run: python3 benchmarks/pipeline.py [--rounds 1] [--for 3] [--json]
Needs prometheus and prometheus-alertmanager on PATH (Debian packages).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lab.pipeline import TRIGGER_FAULTS, Pipeline, Timing, Workload, wait_until
from sandbox.pods import REQUESTS_PER_SECOND, RESTART_PERIOD_SECONDS

V1, V2 = "registry.local/bench:1", "registry.local/bench:2"
POLL_SECONDS = 0.02
TIMEOUT_SECONDS = 180.0
# The latency rules use rate(...[5m]) and want >= 1 request/s; a new revision's series is as
# old as its pods, so its rate is (requests so far) / 300 s until the window fills.
RATE_WINDOW_SECONDS = 300.0
REPLICAS = {"p99_latency": 4}


def condition_delay(trigger: str, timing: Timing) -> float:
    """Seconds the sandbox model needs, after the rollout, before the rule's condition holds."""
    if trigger == "restart_rate":
        return 2 * RESTART_PERIOD_SECONDS  # restart 1 at start, 3 after two periods
    if trigger == "p99_latency":
        return RATE_WINDOW_SECONDS / (REQUESTS_PER_SECOND * REPLICAS[trigger])
    return 0.0


def one_round(pipeline: Pipeline, round_no: int, triggers: list[str]) -> dict[str, float]:
    """Roll out one bad revision per trigger at once; seconds until each is rolled back."""
    sandbox = pipeline.sandbox
    workloads = {
        t: Workload(f"bench-{round_no}-{t.replace('_', '-')}", "app", replicas=REPLICAS.get(t, 2))
        for t in triggers
    }
    for workload in workloads.values():
        workload.deploy_v1(sandbox, image=V1)
    if "p99_latency" in workloads:
        # Its baseline is the Deployment's P99 `baseline_offset` ago: wait for that history.
        slow = workloads["p99_latency"]
        if not wait_until(lambda: pipeline.latency_baseline_ready(slow.namespace, slow.name),
                          timeout=pipeline.timing.baseline_offset + 60):
            raise RuntimeError("prometheus never recorded the latency baseline")
    started = {t: w.roll_out(sandbox, image=V2, fault=TRIGGER_FAULTS[t])
               for t, w in workloads.items()}
    done: dict[str, float] = {}
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while len(done) < len(workloads) and time.monotonic() < deadline:
        now = time.time()
        for trigger, workload in workloads.items():
            if trigger not in done and workload.images(sandbox) == [V1]:
                done[trigger] = now - started[trigger]
        time.sleep(POLL_SECONDS)
    missing = sorted(set(workloads) - set(done))
    if missing:
        raise RuntimeError(f"round {round_no}: no rollback within {TIMEOUT_SECONDS:.0f}s for "
                           f"{', '.join(missing)} (logs in {pipeline.workdir})")
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds, one after the other")
    parser.add_argument("--for", dest="for_seconds", type=float, default=Timing.for_seconds,
                        help="the rules' for: in seconds")
    parser.add_argument("--triggers", default=",".join(TRIGGER_FAULTS),
                        help="comma-separated triggers")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    triggers = [t for t in args.triggers.split(",") if t]
    unknown = sorted(set(triggers) - set(TRIGGER_FAULTS))
    if unknown:
        parser.error(f"unknown trigger(s): {', '.join(unknown)}")
    timing = Timing(for_seconds=args.for_seconds)
    samples: dict[str, list[float]] = {t: [] for t in triggers}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp, \
            Pipeline.start(
                workdir=Path(tmp), timing=timing,
                # The circuit breaker (5 rollbacks an hour, cluster-wide) would stop round 2.
                receiver_settings={"max_rollbacks": 1000},
            ) as pipeline:
        for round_no in range(1, args.rounds + 1):
            for trigger, seconds in one_round(pipeline, round_no, triggers).items():
                samples[trigger].append(seconds)
    result: dict[str, Any] = {"timing": timing.describe(), "triggers": {}}
    for trigger, values in samples.items():
        measured = statistics.median(values)
        floor = condition_delay(trigger, timing) + timing.floor_seconds()
        minimum = condition_delay(trigger, timing) + timing.for_seconds + timing.group_wait
        result["triggers"][trigger] = {
            "measured_seconds": round(measured, 2),
            "samples": [round(v, 2) for v in values],
            "floor_seconds": round(floor, 2),
            "ratio": round(measured / floor, 2),
            "overhead_seconds": round(measured - floor, 2),
            "over_minimum_seconds": round(measured - minimum, 2),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"pipeline: {result['timing']}; median of {args.rounds} round(s)")
    print(f"{'trigger':14} {'measured':>9} {'floor':>7} {'ratio':>6} {'overhead':>9} "
          f"{'over minimum':>13}")
    for trigger, row in result["triggers"].items():
        print(f"{trigger:14} {row['measured_seconds']:8.2f}s {row['floor_seconds']:6.2f}s "
              f"{row['ratio']:6.2f} {row['overhead_seconds']:+8.2f}s "
              f"{row['over_minimum_seconds']:+12.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
