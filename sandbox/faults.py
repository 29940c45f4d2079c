"""Injected API faults and interleaved "human" writes, matched by method and path regex."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

ACTIONS = frozenset({"status", "delay", "drop", "hang"})


@dataclass
class FaultRule:
    """The next `count` requests matching `method` and the `path` regex get `action`."""

    method: str
    path: re.Pattern[str]
    status: int
    count: int
    delay: float
    action: str

    def matches(self, method: str, path: str) -> bool:
        """Whether a request is one this rule applies to."""
        return (self.method in {"*", method.upper()}) and bool(self.path.search(path))


@dataclass
class Interleave:
    """Before serving the next matching request, merge-patch an object."""

    method: str
    path: re.Pattern[str]
    resource: str
    namespace: str | None
    name: str
    merge_patch: dict[str, Any]


class Faults:
    """Thread-safe fault and interleave rules; each use consumes one count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[FaultRule] = []
        self._interleaves: list[Interleave] = []

    def add_fault(self, spec: dict[str, Any]) -> FaultRule:
        """Add a rule from a control request body; ValueError names a bad field."""
        action = str(spec.get("action", "status"))
        if action not in ACTIONS:
            raise ValueError(f"fault action must be one of {sorted(ACTIONS)}, not {action!r}")
        rule = FaultRule(
            method=str(spec.get("method", "*")).upper(),
            path=_regex(spec.get("path")),
            status=int(spec.get("status", 500)),
            count=int(spec.get("count", 1)),
            delay=float(spec.get("delay", 0.0)),
            action=action,
        )
        if rule.count < 1:
            raise ValueError(f"fault count must be at least 1, not {rule.count}")
        with self._lock:
            self._faults.append(rule)
        return rule

    def add_interleave(self, spec: dict[str, Any]) -> Interleave:
        """Add a one-shot interleaved write from a control request body."""
        patch = spec.get("merge_patch")
        if not isinstance(patch, dict):
            raise ValueError("interleave needs a merge_patch object")
        for required in ("resource", "name"):
            if not spec.get(required):
                raise ValueError(f"interleave needs {required!r}")
        rule = Interleave(
            method=str(spec.get("method", "*")).upper(),
            path=_regex(spec.get("path")),
            resource=str(spec["resource"]),
            namespace=spec.get("namespace"),
            name=str(spec["name"]),
            merge_patch=patch,
        )
        with self._lock:
            self._interleaves.append(rule)
        return rule

    def take_fault(self, method: str, path: str) -> FaultRule | None:
        """The first live rule for this request, with one use consumed."""
        with self._lock:
            for rule in self._faults:
                if rule.count > 0 and rule.matches(method, path):
                    rule.count -= 1
                    if rule.count == 0:
                        self._faults.remove(rule)
                    return rule
        return None

    def take_interleave(self, method: str, path: str) -> Interleave | None:
        """The first interleave for this request, removed (they fire once)."""
        with self._lock:
            for rule in self._interleaves:
                if rule.method in {"*", method.upper()} and rule.path.search(path):
                    self._interleaves.remove(rule)
                    return rule
        return None

    def clear(self) -> None:
        """Remove every fault and interleave."""
        with self._lock:
            self._faults.clear()
            self._interleaves.clear()


def _regex(value: Any) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        raise ValueError("a fault needs 'path', a regular expression matched against the path")
    try:
        return re.compile(value)
    except re.error as error:
        raise ValueError(f"path {value!r} is not a valid regular expression: {error}") from error
