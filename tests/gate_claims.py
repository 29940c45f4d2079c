"""A claim on the gate (webhook.gate.Claim) for a rollback of shop/DEPLOYMENT from DEPLOYMENT-2:
what the gate, ledger and reconciler tests admit."""

from __future__ import annotations

from datetime import UTC, datetime

from webhook.gate import Claim


def claim(
    decision_id: str, deployment: str = "web", *, at: datetime | None = None, dry_run: bool = False
) -> Claim:
    return Claim(
        namespace="shop",
        deployment=deployment,
        from_replicaset=f"{deployment}-2",
        decision_id=decision_id,
        at=at or datetime.now(UTC),
        dry_run=dry_run,
        counts_dry_run=dry_run,
        record={"source": "alertmanager"},
    )
