"""The stay-put watch's metric, read from the shared audit at scrape time.

The watch runs in the health tracker (its own process under `serve`, leader only), so a counter
it incremented would live in a registry no worker serves. The audit is shared by every process
and replica: each scrape counts the `reverted` records there (one query on the outcome index).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from webhook.audit import AuditUnavailable
from webhook.contract import Outcome

# How far back the gauge counts: reverts are rare and each one wants a human.
WINDOW = timedelta(hours=24)


class RevertsCollector(Collector):
    """`rollback_webhook_reverts_recorded`: reverts the watch recorded in the last 24 h."""

    def __init__(
        self, *, count: Callable[[Iterable[str], datetime], int], clock: Callable[[], datetime]
    ) -> None:
        self._count, self._clock = count, clock

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """What registration asks for, answered without the audit: the Service is built in
        serve's gunicorn master, which must never touch the audit (registering a collector
        without describe() runs collect() there)."""
        yield _family(0.0)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            value = self._count([Outcome.REVERTED], self._clock() - WINDOW)
        except AuditUnavailable:
            return  # a scrape must not fail on the audit: /readyz says it is down
        yield _family(float(value))


def _family(value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "rollback_webhook_reverts_recorded",
        "Rolled-back Deployments whose template came back to a bad-marked revision "
        "(AutoRollbackReverted), recorded in the last 24h by any replica's stay-put watch",
        value=value,
    )
