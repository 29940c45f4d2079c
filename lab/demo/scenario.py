"""The demo's story, shared by the real pipeline and the recorded fallback: shop/checkout runs
v1 (healthy for two hours), v2 rolls out and crash-loops, the alert fires, it is rolled back."""

from __future__ import annotations

import contextlib
import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

from lab.demo.report import Printer, audit_text, history_text
from lab.pipeline import Workload
from sandbox.testing import SandboxHandle
from webhook.service import DECISION_LOG, Service

WORKLOAD = Workload("shop", "checkout")
V1 = "registry.local/checkout:1.0"
V2 = "registry.local/checkout:1.1"
FAULT = "crashloop"


@contextlib.contextmanager
def decisions_to_file(path: Path) -> Iterator[None]:
    """Send the receiver's one-JSON-line-per-decision log to `path` instead of the terminal
    (the demo prints the story; the lines are still there to read). Restored on exit."""
    logger = logging.getLogger(DECISION_LOG)
    saved = (list(logger.handlers), logger.propagate, logger.level)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        handler.close()
        logger.handlers, logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


def set_the_scene(printer: Printer, sandbox: SandboxHandle) -> None:
    """Deploy v1 (as of two hours ago) and print it."""
    WORKLOAD.deploy_v1(sandbox, image=V1)
    printer.step(
        f"v1: {WORKLOAD.namespace}/{WORKLOAD.name} runs {V1} ({WORKLOAD.replicas} replicas), "
        "opted in with auto-rollback/enabled=true, healthy for the last 2 hours"
    )


WHY_REVISION_3 = (
    "Why v1 is now revision 3, not 1: a Deployment's revisions are its ReplicaSets. The rollback "
    "(like kubectl rollout undo) writes v1's pod template back into the Deployment; the "
    "controller finds v1's ReplicaSet still there (same template hash), scales it up again and "
    "gives it the next number, 3, keeping the old one in its "
    "deployment.kubernetes.io/revision-history annotation: 're-adopted from 1' above. v2 stays "
    "revision 2, marked auto-rollback/bad-revision, so it is never a rollback target."
)

NEXT_STEP = (
    "next: rollback-webhook demo --keep leaves this running to explore by hand (kubectl, "
    "history, audit, replay, the console); docs/tutorial.md walks through it; docs/install.md "
    "installs it in dry-run mode on your cluster"
)


def show_outcome(printer: Printer, service: Service) -> None:
    """The history table (with why v1 is revision 3) and the audit of the demo Deployment."""
    printer.section(
        f"rollback-webhook history {WORKLOAD.namespace}/{WORKLOAD.name}",
        history_text(service, namespace=WORKLOAD.namespace, name=WORKLOAD.name)
        + "\n\n"
        + textwrap.fill(WHY_REVISION_3, width=100),
    )
    printer.section(
        f"rollback-webhook audit --namespace {WORKLOAD.namespace} --deployment {WORKLOAD.name}",
        audit_text(service, namespace=WORKLOAD.namespace, name=WORKLOAD.name),
    )
