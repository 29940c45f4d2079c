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

from sandbox.errors import gone
from sandbox.reads import WatchPlan, with_kind
from sandbox.store import Change, Expired, Store

# How often a quiet watch re-checks for its timeout and for server shutdown.
POLL_SECONDS = 0.5


def _event(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def transition(
    change: Change, matches: Callable[[dict[str, Any]], bool]
) -> tuple[str | None, dict[str, Any]]:
    """The event a filtered watch sends for a change, as the apiserver's watch cache does
    (storage/cacher cacheWatcher.convertToWatchEvent): a modification that makes an object
    match is ADDED, one that makes it stop matching is DELETED (carrying the old object at
    the new resourceVersion); None means the watcher sees nothing."""
    now = matches(change.obj)
    if change.type != "MODIFIED":
        return (change.type if now else None), change.obj
    before = change.old is not None and matches(change.old)
    if now and before:
        return "MODIFIED", change.obj
    if now:
        return "ADDED", change.obj
    if before and change.old is not None:
        gone_obj = dict(change.old)
        gone_obj["metadata"] = dict(
            gone_obj["metadata"], resourceVersion=change.obj["metadata"]["resourceVersion"]
        )
        return "DELETED", gone_obj
    return None, change.obj


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
            kind, obj = transition(change, plan.matches)
            if kind is not None:
                write(_event(kind, render(with_kind(plan.info, dict(obj)))))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        store.wait_for_change(last, min(POLL_SECONDS, remaining))
