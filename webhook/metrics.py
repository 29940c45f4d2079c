"""Prometheus metrics of the service, on a registry per app instance (never the global one)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from webhook import __version__, contract
from webhook.decision import Decision

_ACTED = frozenset({contract.ROLLED_BACK, contract.DRY_RUN})


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    decisions: Counter
    rollbacks: Counter
    payloads: Counter
    decision_seconds: Histogram
    dry_run: Gauge

    @classmethod
    def create(cls, *, dry_run: bool) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        info = Gauge(
            "rollback_webhook_build_info", "Build information", ["version"], registry=registry
        )
        info.labels(version=__version__).set(1)
        gauge = Gauge(
            "rollback_webhook_dry_run",
            "1 when the service only records rollbacks",
            registry=registry,
        )
        gauge.set(1 if dry_run else 0)
        return cls(
            registry=registry,
            decisions=Counter(
                "rollback_webhook_decisions",
                "Decisions by outcome, reason and trigger",
                ["outcome", "reason", "trigger", "source"],
                registry=registry,
            ),
            # Which Deployments: one series per Deployment rolled back (or, in dry-run, that
            # would have been) since the process started. Its names come from the cluster, never
            # from a payload, so the series are bounded by the Deployments in scope.
            rollbacks=Counter(
                "rollback_webhook_rollbacks",
                "Rollbacks written (rolled_back) or, in dry-run, announced (dry_run)",
                ["deployment_namespace", "deployment", "outcome", "trigger"],
                registry=registry,
            ),
            payloads=Counter(
                "rollback_webhook_payloads",
                "Payloads received, by HTTP status answered",
                ["endpoint", "code"],
                registry=registry,
            ),
            decision_seconds=Histogram(
                "rollback_webhook_decision_duration_seconds",
                "Time to decide one alert, cluster calls included",
                registry=registry,
            ),
            dry_run=gauge,
        )

    def observe(self, decision: Decision) -> None:
        # Bound the label's values: any other trigger an alert carries counts as "other".
        known = decision.trigger in contract.TRIGGERS or not decision.trigger
        trigger = decision.trigger if known else "other"
        self.decisions.labels(
            outcome=decision.outcome,
            reason=decision.reason or "",
            trigger=trigger,
            source=decision.source,
        ).inc()
        if decision.outcome in _ACTED and decision.deployment:
            self.rollbacks.labels(
                deployment_namespace=decision.namespace,
                deployment=decision.deployment,
                outcome=decision.outcome,
                trigger=trigger,
            ).inc()
        self.decision_seconds.observe(decision.duration_ms / 1000)
