"""Helpers of the hostile-input tests: what the cluster saw, what the metrics counted."""

from __future__ import annotations

from typing import Any

from lab.receiver_harness import Harness

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def cluster_writes(harness: Harness) -> list[dict[str, Any]]:
    """Every write request the sandbox served since the last clear_requests()."""
    return [r for r in harness.sandbox.controls.requests() if r["method"] in WRITES]


def payloads_counted(harness: Harness, *, endpoint: str, code: str) -> float:
    """rollback_webhook_payloads_total for one endpoint and status code."""
    value = harness.service.metrics.registry.get_sample_value(
        "rollback_webhook_payloads_total", {"endpoint": endpoint, "code": code}
    )
    return value or 0.0
