"""Python client for the sandbox's test controls (/sandbox/v1, see docs/sandbox.md)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

import yaml

# Controls answer at once; a longer wait means the sandbox is wedged.
CONTROL_TIMEOUT_SECONDS = 10.0


class ControlError(RuntimeError):
    """A control request was refused; the message carries the sandbox's explanation."""


class SandboxControls:
    """Drive a sandbox from a test: apply objects, inject faults, read the request record."""

    def __init__(self, base_url: str, *, token: str | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"sandbox URL must be http(s)://..., not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.token = token

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (http URL checked in __init__)
            f"{self.base_url}/sandbox/v1/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT_SECONDS) as response:  # noqa: S310 (loopback URL we built)
                answer: dict[str, Any] = json.loads(response.read() or b"{}")
                return answer
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("message", detail)
            except ValueError:
                pass
            raise ControlError(
                f"sandbox control {method} {path} failed ({error.code}): {detail}"
            ) from error

    def apply(
        self,
        manifest: str | dict[str, Any] | list[dict[str, Any]],
        *,
        as_of: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Create objects, or replace spec/metadata of existing ones with no precondition;
        namespaces are created as needed. With `as_of`, everything written (ReplicaSets,
        pods, conditions) carries that time. Returns the stored objects."""
        if isinstance(manifest, str):
            objects: Any = [doc for doc in yaml.safe_load_all(manifest) if doc]
        elif isinstance(manifest, dict):
            objects = [manifest]
        else:
            objects = list(manifest)
        answer = self._call(
            "POST",
            "apply",
            {
                "objects": objects,
                "as_of": as_of.isoformat() if as_of is not None else None,
            },
        )
        stored: list[dict[str, Any]] = answer["objects"]
        return stored

    def fault(
        self,
        *,
        method: str,
        path: str,
        status: int = 500,
        count: int = 1,
        delay: float = 0.0,
        action: str = "status",
    ) -> None:
        """The next `count` requests with `method` ("*" for any) whose path matches the
        regex `path` get: "status" (a Status with `status`), "delay" (served after `delay`
        seconds), "drop" (connection closed without an answer) or "hang" (dropped after
        `delay` seconds)."""
        self._call(
            "POST",
            "faults",
            {
                "method": method,
                "path": path,
                "status": status,
                "count": count,
                "delay": delay,
                "action": action,
            },
        )

    def interleave(
        self,
        *,
        method: str,
        path: str,
        resource: str,
        namespace: str,
        name: str,
        merge_patch: dict[str, Any],
    ) -> None:
        """Just before serving the next request matching method and path, merge-patch the
        object (a concurrent human write, so a write based on an older read gets 409)."""
        self._call(
            "POST",
            "interleaves",
            {
                "method": method,
                "path": path,
                "resource": resource,
                "namespace": namespace,
                "name": name,
                "merge_patch": merge_patch,
            },
        )

    def set_behaviour(
        self,
        namespace: str,
        pod: str,
        *,
        fault: str | None,
        latency_seconds: float | None = None,
    ) -> None:
        """Make one pod crash-loop, be OOMKilled, be slow, or (fault=None) be healthy."""
        self._call(
            "POST",
            f"namespaces/{namespace}/pods/{pod}/behaviour",
            {
                "fault": fault,
                "latency_seconds": latency_seconds,
            },
        )

    def requests(self) -> list[dict[str, Any]]:
        """The request record, oldest first."""
        entries: list[dict[str, Any]] = self._call("GET", "requests")["requests"]
        return entries

    def clear_requests(self) -> None:
        """Empty the request record."""
        self._call("DELETE", "requests")

    def clear_faults(self) -> None:
        """Remove pending faults and interleaves."""
        self._call("DELETE", "faults")
