"""Helpers of the hostile-input tests: what the cluster saw, what the metrics counted."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from lab.receiver_harness import Harness

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def cluster_writes(harness: Harness) -> list[dict[str, Any]]:
    """Every write request the sandbox served since the last clear_requests()."""
    return [r for r in harness.sandbox.controls.requests() if r["method"] in WRITES]


def payloads_counted(harness: Harness, *, endpoint: str, code: str) -> float:
    """rollback_webhook_payloads_total for one endpoint and status code."""
    value = harness.service.metrics.registry.get_sample_value(
        "rollback_webhook_payloads_total", {"endpoint": endpoint, "code": code}
    )
    return value or 0.0


def csrf_in(page: str) -> str:
    """The CSRF token of the (first) form of a console page."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def console_login(
    client: FlaskClient, token: str, *, name: str = "", remote: str = "127.0.0.1"
) -> TestResponse:
    """Log in to the console through its form (from address `remote`); the raw answer."""
    csrf = csrf_in(client.get("/login").get_data(as_text=True))
    form = {"csrf_token": csrf, "token": token, "name": name}
    return client.post("/login", data=form, environ_base={"REMOTE_ADDR": remote})
