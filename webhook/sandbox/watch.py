"""Watch streams: newline-delimited JSON `WatchEvent`s, as the apiserver writes them.

A watch without a resourceVersion first sends synthetic ADDED events for what exists
("start at most recent"); then every committed change after the start resourceVersion that
matches the resource, namespace and selectors, until the timeout, the client leaving or the
server stopping. A start that left the history answers one ERROR event with 410 Expired.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from webhook.sandbox.errors import gone
from webhook.sandbox.reads import WatchPlan, with_kind
from webhook.sandbox.store import Expired, Store

# How often a quiet watch re-checks for its timeout and for server shutdown.
POLL_SECONDS = 0.5


def _event(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def stream(
    store: Store, plan: WatchPlan, *, write: Callable[[bytes], None], stopping: threading.Event
) -> None:
    """Write the events of `plan` with `write` until the watch ends. Raises OSError when
    the client went away (the caller just stops)."""
    deadline = time.monotonic() + plan.timeout
    render = plan.render or (lambda obj: obj)
    for obj in plan.initial:
        write(_event("ADDED", render(obj)))
    if plan.extra.get("send_initial") and plan.bookmarks:
        marker = {
            "kind": plan.info.kind,
            "apiVersion": plan.info.api_version,
            "metadata": {
                "resourceVersion": str(plan.start_rv),
                "annotations": {"k8s.io/initial-events-end": "true"},
            },
        }
        write(_event("BOOKMARK", marker))
    last = plan.start_rv
    while not stopping.is_set() and time.monotonic() < deadline:
        try:
            changes = store.changes_since(last)
        except Expired as error:
            write(_event("ERROR", gone(str(error)).status()))
            return
        for change in changes:
            last = int(change.obj["metadata"]["resourceVersion"])
            if change.resource != plan.info.resource:
                continue
            namespace = change.obj["metadata"].get("namespace")
            if plan.namespace is not None and namespace != plan.namespace:
                continue
            if not plan.matches(change.obj):
                continue
            write(_event(change.type, render(with_kind(plan.info, dict(change.obj)))))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        store.wait_for_change(last, min(POLL_SECONDS, remaining))
