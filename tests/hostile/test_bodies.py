"""A chunked body (no Content-Length) is capped exactly like one with a Content-Length: a body
of server.max_body_bytes is read whole, one byte more is a 413, never a cut body stored."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder, TestResponse, run_wsgi_app

from lab.receiver_harness import TOKEN, Harness, hours, minutes, template_images
from tests.hostile.support import cluster_writes, payloads_counted

LIMIT = 4096


def sized_payload(harness: Harness, size: int) -> bytes:
    """A valid payload for shop/web of exactly `size` bytes (padded in an annotation)."""
    alert = harness.alert(namespace="shop", deployment="web")
    base = len(json.dumps(harness.payload(alert)).encode())
    alert["annotations"]["padding"] = "x" * (size - base - len(', "padding": ""'))
    body = json.dumps(harness.payload(alert)).encode()
    assert len(body) == size
    return body


def post_chunked(harness: Harness, body: bytes, path: str = "/api/v1/alerts") -> Any:
    """POST with no Content-Length, on a server that ends the stream (as gunicorn does)."""
    builder = EnvironBuilder(
        path=path,
        method="POST",
        headers=Headers(
            {
                "Authorization": f"Bearer {TOKEN}",
                "Content-Type": "application/json",
                "Transfer-Encoding": "chunked",
            }
        ),
        input_stream=io.BytesIO(body),
    )
    environ = builder.get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input_terminated"] = True
    # Straight to the app: the test client would rebuild the environ with a Content-Length.
    app_iter, status, headers = run_wsgi_app(harness.app, environ, buffered=True)
    return TestResponse(app_iter, status, headers, request=builder.get_request())


@pytest.fixture
def capped(make_harness: Any) -> Harness:
    harness: Harness = make_harness(server={"max_body_bytes": LIMIT}, dry_run=True)
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.sandbox.controls.clear_requests()
    return harness


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_of_exactly_the_limit_is_read_whole(capped: Harness, chunked: bool) -> None:
    body = sized_payload(capped, LIMIT)
    response = post_chunked(capped, body) if chunked else capped.post(body)
    assert response.status_code == 200, response.get_json()
    assert len(response.get_json()["decisions"]) == 1
    stored = capped.service.audit.payload(response.get_json()["payload_id"])
    assert stored is not None and stored.body.encode() == body


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_one_byte_over_the_limit_is_413_and_nothing_stored(capped: Harness, chunked: bool) -> None:
    body = sized_payload(capped, LIMIT + 1)
    before = payloads_counted(capped, endpoint="alerts", code="413")
    response = post_chunked(capped, body) if chunked else capped.post(body)
    assert response.status_code == 413
    assert f"server.max_body_bytes ({LIMIT} bytes)" in response.get_json()["error"]
    assert payloads_counted(capped, endpoint="alerts", code="413") == before + 1
    assert capped.service.audit.query(limit=5) == []
    assert cluster_writes(capped) == []
    assert template_images(capped.deployment("shop", "web")) == ["web:2"]


def test_chunked_megabytes_are_refused_without_reading_them_all(capped: Harness) -> None:
    response = post_chunked(capped, b"[" + b"0," * 5_000_000 + b"0]")
    assert response.status_code == 413
