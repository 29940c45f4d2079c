"""The on-call API and console on top of the receiver harness (same service, same sandbox).

`OnCall.app` is what `rollback-webhook serve` runs: `runtime.build_app`, which mounts
`webhook.oncall`. Two on-call people (alice, bob) and the receiver's own token exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

from lab.pipeline.receiver import AppServer
from lab.receiver_harness import TOKEN, Harness
from webhook.auth import Credentials
from webhook.runtime import build_app

ALICE = "oncall-secret-alice"
BOB = "oncall-secret-bob"
RECEIVER = TOKEN
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


class OnCall:
    """The full app (receiver + on-call API + console) around a receiver harness."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        (harness.tmp_path / "oncall").write_text(f"alice:{ALICE}\nbob:{BOB}\n")
        self.credentials = Credentials.load(harness.settings)
        self.app: Flask = build_app(harness.service, credentials=self.credentials)
        self.client = self.app.test_client()

    def replay(self, body: Any, *, token: str | None = ALICE) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.post(
            "/api/v1/replay",
            data=json.dumps(body),
            headers=headers,
            content_type="application/json",
        )
        return response.status_code, response.get_json()

    def audit(self, path: str = "", *, token: str | None = ALICE, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.get(f"/api/v1/audit{path}", query_string=params, headers=headers)
        return response

    def cluster_writes(self) -> list[tuple[str, str, str]]:
        """(verb, resource, name) of every write the sandbox served since the last clear."""
        return [
            (r["verb"], r["resource"], r["name"])
            for r in self.h.sandbox.controls.requests()
            if r["verb"] in WRITES
        ]


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread; yields its base URL (tests only)."""
    server = AppServer(app, name="oncall-live")
    server.start()
    try:
        yield server.base_url
    finally:
        server.stop()
