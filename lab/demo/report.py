"""What the demo prints: timed progress lines, the `history` table and the audit."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from webhook.commands.audit import DECISION_HEADER, decision_rows, render_table
from webhook.evidence import EvidenceSource
from webhook.history import build_history
from webhook.history import render_table as history_table
from webhook.service import Service, evidence_sources

DETAIL_WIDTH = 90


class Printer:
    """Progress lines stamped with the seconds since the demo started, flushed at once."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def step(self, message: str) -> None:
        """One timed progress line."""
        self.stream.write(f"[{self.elapsed():6.1f}s] {message}\n")
        self.stream.flush()

    def section(self, title: str, body: str = "") -> None:
        """A titled block (tables)."""
        self.stream.write(f"\n== {title}\n")
        if body:
            self.stream.write(body.rstrip("\n") + "\n")
        self.stream.flush()


def history_text(
    service: Service,
    *,
    namespace: str,
    name: str,
    sources: list[EvidenceSource] | None = None,
) -> str:
    """What `rollback-webhook history NS/DEPLOY` prints, from the demo's own receiver."""
    history = build_history(
        cluster=service.cluster,
        settings=service.settings,
        namespace=namespace,
        name=name,
        sources=sources if sources is not None else evidence_sources(service.prometheus),
    )
    return history_table(history)


def audit_text(service: Service, *, namespace: str, name: str) -> str:
    """The Deployment's decisions as `rollback-webhook audit --deployment NAME` prints them
    (same columns, newest first), then each one's detail."""
    rows: list[dict[str, Any]] = service.audit.query(namespace=namespace, deployment=name, limit=50)
    if not rows:
        return "no decisions match"
    lines = [render_table(decision_rows(rows), DECISION_HEADER)]
    for row in rows:
        detail = str(row["detail"])
        if len(detail) > DETAIL_WIDTH:
            detail = detail[: DETAIL_WIDTH - 3] + "..."
        lines.append(f"  {row['id']}: {detail}")
    return "\n".join(lines)
