"""Reads: get, list (selectors, limit/continue) and the plan of a watch.

HTTP-agnostic like `sandbox.api`, which dispatches here for GET requests.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox import pods
from sandbox.discovery import ResourceInfo
from sandbox.errors import bad_request, not_found
from sandbox.routing import RequestInfo
from sandbox.selectors import (
    SelectorError,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from sandbox.store import NotFound, Store


@dataclass
class Reply:
    """A complete JSON answer."""

    code: int
    body: dict[str, Any]
    # Sent as `Warning: 299 - "..."` headers (kubectl prints them as "Warning: ...").
    warnings: list[str] = field(default_factory=list)


@dataclass
class WatchPlan:
    """What a watch request asked for; `sandbox.watch.stream` serves it."""

    info: ResourceInfo
    namespace: str | None
    start_rv: int
    initial: list[dict[str, Any]]
    matches: Callable[[dict[str, Any]], bool]
    timeout: float
    bookmarks: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # Turns each event's object into what the client asked for (a Table for kubectl get -w).
    render: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def with_kind(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    """Objects always go out with their kind and apiVersion."""
    obj["kind"] = info.kind
    obj["apiVersion"] = info.api_version
    return obj


def served(info: ResourceInfo, obj: dict[str, Any], now: datetime) -> dict[str, Any]:
    """An object as a read returns it: with kind, and for pods the status their behaviour
    has at `now` (restart counts grow between writes, as a kubelet would report)."""
    if info.resource == "pods":
        obj = pods.as_served(obj, now)
    return with_kind(info, obj)


def selector(request: RequestInfo, info: ResourceInfo) -> Callable[[dict[str, Any]], bool]:
    """The labelSelector and fieldSelector of a request as one predicate (400 if bad)."""
    try:
        requirements = parse_label_selector(request.query.get("labelSelector"))
        by_field = parse_field_selector(request.query.get("fieldSelector"), resource=info.resource)
    except SelectorError as error:
        raise bad_request(str(error)) from error
    return lambda obj: labels_match(requirements, obj) and by_field(obj)


def narrowing(request: RequestInfo) -> tuple[str, str] | None:
    """A (key, value) label every selected object carries (an `=` requirement, or `in` with
    one value), so a namespaced list reads only those; None when the selector has none."""
    try:
        requirements = parse_label_selector(request.query.get("labelSelector"))
    except SelectorError:
        return None  # `selector` answers the 400
    for requirement in requirements:
        if requirement.operator in {"=", "in"} and len(requirement.values) == 1:
            return requirement.key, requirement.values[0]
    return None


def get_object(
    store: Store, info: ResourceInfo, namespace: str | None, name: str
) -> dict[str, Any]:
    """One stored object, or 404 NotFound naming it."""
    try:
        return store.get(info.resource, namespace, name)
    except NotFound as error:
        raise not_found(info, name) from error


def list_objects(store: Store, info: ResourceInfo, request: RequestInfo) -> Reply:
    """A {Kind}List of the matching objects, paged by limit/continue."""
    matches = selector(request, info)
    # Selected inside the store: objects that do not match are not copied out.
    items, list_rv = store.list(
        info.resource, request.namespace, where=matches, label=narrowing(request)
    )
    now = store.now()
    items = [served(info, obj, now) for obj in items]
    meta: dict[str, Any] = {"resourceVersion": list_rv}
    token = request.query.get("continue")
    if token:
        try:
            after = json.loads(base64.urlsafe_b64decode(token.encode()))
            after_key = (after["ns"], after["name"])
        except (ValueError, KeyError, TypeError) as error:
            raise bad_request(f"invalid continue token: {error}") from error
        items = [obj for obj in items if _sort_key(obj) > after_key]
    limit_text = request.query.get("limit", "0") or "0"
    limit = int(limit_text) if limit_text.isdigit() else 0
    if 0 < limit < len(items):
        last = items[limit - 1]
        ns, name = _sort_key(last)
        meta["continue"] = base64.urlsafe_b64encode(
            json.dumps({"ns": ns, "name": name, "rv": list_rv}).encode()
        ).decode()
        meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    body = {
        "kind": f"{info.kind}List",
        "apiVersion": info.api_version,
        "metadata": meta,
        "items": items,
    }
    return Reply(200, body)


def _sort_key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def watch_plan(store: Store, info: ResourceInfo, request: RequestInfo) -> WatchPlan:
    """What a watch request asks for; `sandbox.watch.stream` serves it."""
    matches = selector(request, info)
    if request.name is not None:  # legacy /watch/.../{name}
        name = request.name
        base = matches
        matches = lambda obj: base(obj) and obj["metadata"].get("name") == name  # noqa: E731
    rv_text = request.query.get("resourceVersion", "")
    initial: list[dict[str, Any]] = []
    send_initial = request.query.get("sendInitialEvents") == "true"
    if rv_text in {"", "0"} or send_initial:
        # "Start at most recent": synthetic ADDED events for what exists now.
        items, list_rv = store.list(info.resource, request.namespace, where=matches)
        now = store.now()
        initial = [served(info, obj, now) for obj in items]
        start = int(list_rv)
    elif rv_text.isdigit():
        start = int(rv_text)
    else:
        raise bad_request(f"invalid resourceVersion {rv_text!r}")
    timeout_text = request.query.get("timeoutSeconds", "")
    timeout = float(timeout_text) if timeout_text.isdigit() else 1800.0
    return WatchPlan(
        info=info,
        namespace=request.namespace,
        start_rv=start,
        initial=initial,
        matches=matches,
        timeout=timeout,
        bookmarks=request.query.get("allowWatchBookmarks") == "true",
        extra={"send_initial": send_initial},
    )
