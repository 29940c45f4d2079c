"""The request record: who (bearer token) asked what (verb, resource) and got which status.

A later feature derives least-privilege RBAC from it, so verbs use the Kubernetes names
(get, list, watch, create, update, patch, delete, deletecollection).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from sandbox.routing import RequestInfo

# Enough for a long demo; the oldest entries go first.
RECORD_LIMIT = 100_000


class RequestRecord:
    """Thread-safe, bounded list of served requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=RECORD_LIMIT)

    def add(
        self, request: RequestInfo, *, method: str, token: str | None, status: int, time: str
    ) -> None:
        """Record one answered (or dropped: status 0) request."""
        entry = {
            "time": time,
            "token": token,
            "method": method.upper(),
            "path": request.path,
            "verb": request.verb,
            "group": request.group,
            "version": request.version,
            "resource": request.resource,
            "subresource": request.subresource,
            "namespace": request.namespace,
            "name": request.name,
            "status": status,
        }
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """A copy of the record, oldest first."""
        with self._lock:
            return [dict(entry) for entry in self._entries]

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._entries.clear()
