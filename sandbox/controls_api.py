"""The server side of the test controls under /sandbox/v1 (see docs/sandbox.md).

POST   /sandbox/v1/apply                                   {"objects": [...], "as_of": iso|null}
POST   /sandbox/v1/faults                                  one fault rule
DELETE /sandbox/v1/faults                                  clear faults and interleaves
POST   /sandbox/v1/interleaves                             one interleaved write
GET    /sandbox/v1/requests                                the request record
DELETE /sandbox/v1/requests                                clear it
POST   /sandbox/v1/namespaces/{ns}/pods/{name}/behaviour   {"fault": ..., "latency_seconds": ...}
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sandbox.apply import apply_objects, parse_manifests
from sandbox.errors import STATUS_REASONS, ApiError
from sandbox.faults import Interleave
from sandbox.patch import apply_merge_patch
from sandbox.pods import set_behaviour
from sandbox.store import NotFound, Store

if TYPE_CHECKING:
    from sandbox.server import SandboxServer

_BEHAVIOUR = re.compile(r"^/sandbox/v1/namespaces/([^/]+)/pods/([^/]+)/behaviour$")


def _error(code: int, message: str) -> tuple[int, dict[str, Any]]:
    return code, ApiError(code, STATUS_REASONS[code], message).status()


def handle(
    sandbox: SandboxServer, *, method: str, path: str, body: bytes
) -> tuple[int, dict[str, Any]]:
    """Answer one control request with (HTTP code, JSON body)."""
    path = path.split("?", 1)[0].rstrip("/")
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError as error:
        return _error(400, f"control body is not JSON: {error}")
    try:
        return _dispatch(sandbox, method=method, path=path, payload=payload)
    except (ValueError, TypeError) as error:
        return _error(400, f"{method} {path}: {error}")
    except ApiError as error:
        return error.code, error.status()


def _dispatch(
    sandbox: SandboxServer, *, method: str, path: str, payload: Any
) -> tuple[int, dict[str, Any]]:
    if path == "/sandbox/v1/apply" and method == "POST":
        as_of_text = payload.get("as_of")
        as_of = datetime.fromisoformat(as_of_text) if as_of_text else None
        documents = parse_manifests(payload.get("manifest") or payload.get("objects") or [])
        stored = apply_objects(sandbox.store, documents, as_of=as_of)
        return 200, {"objects": stored}
    if path == "/sandbox/v1/faults":
        if method == "POST":
            sandbox.faults.add_fault(payload)
            return 201, {"status": "Success"}
        if method == "DELETE":
            sandbox.faults.clear()
            return 200, {"status": "Success"}
    if path == "/sandbox/v1/interleaves" and method == "POST":
        sandbox.faults.add_interleave(payload)
        return 201, {"status": "Success"}
    if path == "/sandbox/v1/requests":
        if method == "GET":
            return 200, {"requests": sandbox.record.entries()}
        if method == "DELETE":
            sandbox.record.clear()
            return 200, {"status": "Success"}
    match = _BEHAVIOUR.match(path)
    if match and method == "POST":
        namespace, name = match.groups()
        latency = payload.get("latency_seconds")
        try:
            set_behaviour(
                sandbox.store,
                namespace,
                name,
                payload.get("fault"),
                float(latency) if latency is not None else None,
            )
        except NotFound as error:
            return _error(404, str(error))
        return 200, {"status": "Success"}
    return _error(404, f"no control {method} {path} (see docs/sandbox.md)")


def run_interleave(store: Store, rule: Interleave) -> None:
    """Apply an interleaved merge patch as an unconditional write, as a human would."""
    with store.lock:
        try:
            current = store.get(rule.resource, rule.namespace, rule.name)
        except NotFound:
            return
        patched = apply_merge_patch(current, rule.merge_patch)
        patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        store.update(rule.resource, patched, check_rv=False)
