"""Build promtool test suites from realistic cluster histories instead of hand-typed series.

A `Scenario` is a timeline at the real cadence (30 s scrapes and evaluations) of what
kube-state-metrics v2 and an application export: Deployments, ReplicaSets (created, scaled,
re-adopted), pods with app and init containers whose restart counters follow the kubelet's
CrashLoopBackOff (10 s, 20 s, 40 s ... capped at 300 s), OOMKilled reasons, request-duration
histograms, and scrape gaps (a staleness marker, then missing samples). `suite()` renders it as a
`promtool test rules` file whose assertions ask `ALERTS` and `ALERTS_FOR_STATE`.
t = 0 is the scenario's start; every time is in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

STEP = 30
KSM = {"job": "kube-state-metrics", "instance": "ksm:8080"}
BUCKETS = ("0.05", "0.25", "1", "2.5", "+Inf")
# Back-off between restarts of a crashing container (kubelet: 10 s doubling, 5 min cap).
BACKOFF_START, BACKOFF_CAP = 10.0, 300.0

Values = Callable[[float], float | None]


def crash_times(first_death: float, *, runs_for: float, until: float = 6 * 3600) -> list[float]:
    """When a crash-looping container restarts: it dies at `first_death`, then `runs_for` seconds
    after each restart; the kubelet waits 10 s, 20 s, 40 s ... (capped at 300 s) before each."""
    times: list[float] = []
    died, delay = first_death, BACKOFF_START
    while died + delay <= until:
        restarted = died + delay
        times.append(restarted)
        died, delay = restarted + runs_for, min(delay * 2, BACKOFF_CAP)
    return times


def counter_of(events: Iterable[float], *, base: float = 0.0) -> Values:
    """A counter that counts `events` (times) up to t."""
    ordered = sorted(events)
    return lambda t: base + sum(1 for e in ordered if e <= t)


def const(value: float) -> Values:
    return lambda t: value


def steps(*points: tuple[float, float | None]) -> Values:
    """A value that changes at given times: steps((0, 2), (1200, 0)) is 2 from t=0, 0 from 20m."""
    ordered = sorted(points, key=lambda p: p[0])

    def value(t: float) -> float | None:
        current: float | None = None
        for at, v in ordered:
            if t >= at:
                current = v
        return current

    return value


@dataclass
class Scenario:
    """A cluster history over `minutes`, sampled every 30 s, with the assertions to make on it."""

    minutes: int
    namespace: str = "shop"
    _series: dict[str, Values] = field(default_factory=dict)
    _gaps: list[tuple[float, float, str]] = field(default_factory=list)
    _checks: list[dict[str, Any]] = field(default_factory=list)
    _alert_tests: list[dict[str, Any]] = field(default_factory=list)

    # ---- raw series ------------------------------------------------------------------------------
    def series(
        self, name: str, labels: dict[str, str], values: Values, *, job: str = "ksm"
    ) -> None:
        base = dict(KSM) if job == "ksm" else {"job": job, "instance": f"{job}:8080"}
        all_labels = {**base, **labels}
        text = ",".join(f'{k}="{v}"' for k, v in all_labels.items())
        self._series[f"{name}{{{text}}}"] = values

    def gap(self, start: float, end: float, *, job: str = "kube-state-metrics") -> None:
        """Scrapes of `job` fail in [start, end): a staleness marker, then no samples."""
        self._gaps.append((start, end, job))

    # ---- Kubernetes objects as kube-state-metrics shows them -------------------------------------
    def deployment(self, name: str, replicas: Values, *, ns: str | None = None) -> None:
        ns = ns or self.namespace
        self.series(
            "kube_deployment_spec_replicas", {"namespace": ns, "deployment": name}, replicas
        )

    def replicaset(
        self,
        name: str,
        deployment: str,
        *,
        created: float,
        replicas: Values,
        ns: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        """A ReplicaSet owned by `deployment`; its series exist from its creation on."""
        ns = ns or self.namespace
        labels = {"namespace": ns, "replicaset": name, **(extra or {})}

        def alive(values: Values) -> Values:
            return lambda t: values(t) if t >= created else None

        owner = {
            "owner_kind": "Deployment",
            "owner_name": deployment,
            "owner_is_controller": "true",
        }
        self.series("kube_replicaset_owner", {**labels, **owner}, alive(const(1)))
        self.series("kube_replicaset_created", labels, alive(const(created)))
        self.series("kube_replicaset_spec_replicas", labels, alive(replicas))

    def pod(
        self,
        name: str,
        replicaset: str,
        *,
        created: float,
        until: float = math.inf,
        restarts: dict[str, Values] | None = None,
        init_restarts: dict[str, Values] | None = None,
        oomkilled: dict[str, Values] | None = None,
        init_oomkilled: dict[str, Values] | None = None,
        ns: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        """A pod of `replicaset` from `created` to `until`; by default one healthy app container."""
        ns = ns or self.namespace
        labels = {"namespace": ns, "pod": name, **(extra or {})}

        def alive(values: Values) -> Values:
            return lambda t: values(t) if created <= t < until else None

        owner = {
            "owner_kind": "ReplicaSet",
            "owner_name": replicaset,
            "owner_is_controller": "true",
        }
        self.series("kube_pod_owner", {**labels, **owner}, alive(const(1)))
        self.series("kube_pod_created", labels, alive(const(created)))
        for container, values in (restarts or {"app": const(0)}).items():
            self.series(
                "kube_pod_container_status_restarts_total",
                {**labels, "container": container},
                alive(values),
            )
        for container, values in (init_restarts or {}).items():
            self.series(
                "kube_pod_init_container_status_restarts_total",
                {**labels, "container": container},
                alive(values),
            )
        for container, values in (oomkilled or {}).items():
            self.series(
                "kube_pod_container_status_last_terminated_reason",
                {**labels, "container": container, "reason": "OOMKilled"},
                alive(values),
            )
        for container, values in (init_oomkilled or {}).items():
            self.series(
                "kube_pod_init_container_status_last_terminated_reason",
                {**labels, "container": container, "reason": "OOMKilled"},
                alive(values),
            )

    def latency(
        self,
        pod: str,
        *,
        rps: float,
        slow: Callable[[float], str],
        start: float = 0.0,
        until: float = math.inf,
        ns: str | None = None,
    ) -> None:
        """A request-duration histogram for `pod`: `rps` requests/s, each in bucket `slow(t)`.

        `slow(t)` names the upper bound every request between t - 30 s and t fell into ("0.05" for
        fast, "2.5" for 1-2.5 s); the counters are cumulative as a client library exports them.
        """
        ns = ns or self.namespace
        per_step = rps * STEP

        def counts(t: float) -> dict[str, float]:
            total = dict.fromkeys(BUCKETS, 0.0)
            tick = start + STEP
            while tick <= t:
                bound = BUCKETS.index(slow(tick))
                for le in BUCKETS[bound:]:
                    total[le] += per_step
                tick += STEP
            return total

        def alive(values: Values) -> Values:
            return lambda t: values(t) if start <= t < until else None

        labels = {"namespace": ns, "pod": pod}

        def bucket(le: str) -> Values:
            return lambda t: counts(t)[le]

        for le in BUCKETS:
            self.series(
                "http_request_duration_seconds_bucket",
                {**labels, "le": le},
                alive(bucket(le)),
                job="app",
            )
        self.series(
            "http_request_duration_seconds_count",
            labels,
            alive(lambda t: counts(t)["+Inf"]),
            job="app",
        )

    # ---- assertions ------------------------------------------------------------------------------
    def expect(self, at: float, query: str, value: float | None) -> None:
        """At `at` seconds, `query` returns one sample `value` (None: returns nothing)."""
        samples = [] if value is None else [{"labels": "{}", "value": value}]
        self._checks.append({"expr": query, "eval_time": f"{int(at)}s", "exp_samples": samples})

    def firing(self, at: float, alert: str, replicaset: str, *, yes: bool = True) -> None:
        query = (
            f'count(ALERTS{{alertname="{alert}", alertstate="firing", replicaset="{replicaset}"}})'
        )
        self.expect(at, query, 1 if yes else None)

    def silent(self, at: float, alert: str, replicaset: str) -> None:
        """Neither pending nor firing for `replicaset` at `at`."""
        query = f'count(ALERTS{{alertname="{alert}", replicaset="{replicaset}"}})'
        self.expect(at, query, None)

    def active_since(self, at: float, alert: str, replicaset: str, since: float) -> None:
        """The alert's active-since time (what becomes startsAt) is `since`."""
        query = f'max(ALERTS_FOR_STATE{{alertname="{alert}", replicaset="{replicaset}"}})'
        self.expect(at, query, since)

    def alert_rule_test(self, at: float, alert: str, exp_alerts: list[dict[str, Any]]) -> None:
        self._alert_tests.append(
            {"eval_time": f"{int(at)}s", "alertname": alert, "exp_alerts": exp_alerts}
        )

    # ---- rendering -------------------------------------------------------------------------------
    def _render_values(self, series: str, values: Values) -> str:
        job = series.split('job="', 1)[1].split('"', 1)[0]
        out: list[str] = []
        seen = False
        for i in range(self.minutes * 60 // STEP + 1):
            t = i * STEP
            gap = next((g for g in self._gaps if g[0] <= t < g[1] and g[2] == job), None)
            value = values(t)
            if gap is not None and value is not None:
                # The first failed scrape writes a staleness marker, the rest nothing.
                out.append("stale" if seen and t - STEP < gap[0] else "_")
                continue
            if value is None:
                out.append("stale" if seen and values(t - STEP) is not None else "_")
                continue
            seen = True
            out.append(f"{value:g}")
        return " ".join(out)

    def suite(self, rule_file: str = "rules.yaml") -> dict[str, Any]:
        """The promtool test document (evaluation and scrape interval 30 s)."""
        test: dict[str, Any] = {
            "interval": f"{STEP}s",
            "input_series": [
                {"series": name, "values": self._render_values(name, values)}
                for name, values in self._series.items()
            ],
        }
        if self._checks:
            test["promql_expr_test"] = self._checks
        if self._alert_tests:
            test["alert_rule_test"] = self._alert_tests
        return {"rule_files": [rule_file], "evaluation_interval": f"{STEP}s", "tests": [test]}
