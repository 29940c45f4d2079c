"""The Flask app factory: routes, authentication and status codes. No decisions here.

Status codes Alertmanager relies on (it retries 5xx and transport errors, never 4xx):
2xx once decisions are recorded (skips included); 400 invalid JSON or schema, naming the field;
401/403 credentials; 413 over max_body_bytes; 415 not JSON; 503 when the Kubernetes API or the
audit store failed, so the delivery is retried. The raw payload is stored before the answer.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from webhook import contract, jsontext
from webhook.alerts import PayloadError
from webhook.audit import AuditUnavailable
from webhook.auth import AuthError, Credentials
from webhook.bodies import read_body
from webhook.kube import KubeError
from webhook.service import Service

log = logging.getLogger(__name__)


# app.config key: callables returning None when ready, else why not (one line each).
READINESS_CHECKS = "ROLLBACK_WEBHOOK_READINESS_CHECKS"


def error(
    status: int,
    message: str,
    *,
    challenge: str = 'Bearer realm="rollback-webhook"',
    **extra: Any,
) -> Response:
    """A JSON error body that names the problem (a 401 carries `challenge`)."""
    response = jsonify({"error": message, "status": status, **extra})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = challenge
    return response


# The paths whose answers rollback_webhook_payloads_total counts, by its endpoint label.
_PAYLOAD_ENDPOINTS = {"/api/v1/alerts": "alerts", "/api/v1/replay": "replay"}


_FORMS = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


# The paths answered as JSON; the others are the console's, whose answers are pages.
_JSON_PATHS = ("/api/", "/healthz", "/readyz", "/metrics")


def _page(status: int, message: str) -> Response:
    """A refusal on a console path, as a page (its answers are HTML, errors included)."""
    text = f"<!doctype html><title>{status}</title><p>{html.escape(message)}</p>\n"
    return Response(text, status=status, mimetype="text/html")


def _printable(key: str) -> str:
    return ascii(key) if jsontext.NUL in key else key


def _is_json(content_type: str | None) -> bool:
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


def create_app(
    service: Service,
    *,
    credentials: Credentials,
    extensions: list[Callable[[Flask, Service, Credentials], None]] | None = None,
) -> Flask:
    """Build the WSGI app around a Service. `extensions` add route groups (on-call, console)."""
    app = Flask("webhook")
    app.config["MAX_CONTENT_LENGTH"] = service.settings.server.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    metrics = service.metrics
    if service.ledger is not None:  # no rollback can be counted, so none written, without it
        app.config.setdefault(READINESS_CHECKS, []).append(service.ledger.problem)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_: RequestEntityTooLarge) -> Response:
        limit = service.settings.server.max_body_bytes
        return error(413, f"body larger than server.max_body_bytes ({limit} bytes)")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def crashed(exc: Exception) -> Response:
        # A bug, never an answer to input (input errors are 4xx): logged with its traceback,
        # answered as JSON and counted like any other answer.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error(500, f"internal error ({type(exc).__name__}); see the server log")

    @app.before_request
    def refuse_nul() -> Response | None:
        # A NUL character cannot be stored (PostgreSQL text) nor be any name the service looks
        # up: refused here, naming where it is, for every route (a path id, a query filter, a
        # form field), so no store answers it with a 5xx. JSON bodies: webhook.jsontext.
        refuse = error if request.path.startswith(_JSON_PATHS) else _page
        if jsontext.NUL in request.path:
            return refuse(400, "path: contains a NUL character")
        fields = [("query parameter", request.args)]
        if request.mimetype in _FORMS:
            request.get_data(cache=True)  # read once and kept: the routes read the raw body too
            fields.append(("form field", request.form))
        for what, values in fields:
            for key, value in values.items(multi=True):
                if jsontext.NUL in key or jsontext.NUL in value:
                    return refuse(400, f"{_printable(key)}: {what} contains a NUL character")
        return None

    @app.after_request
    def count_payload(response: Response) -> Response:
        # Every payload answered is counted by status, refusals (4xx) and failures included.
        endpoint = _PAYLOAD_ENDPOINTS.get(request.path)
        if endpoint:
            metrics.payloads.labels(endpoint=endpoint, code=str(response.status_code)).inc()
        return response

    @app.post("/api/v1/alerts")
    def alerts() -> Response:
        try:
            actor = credentials.check_receiver(request.headers.get("Authorization"))
        except AuthError as exc:
            return error(exc.status, str(exc), challenge=credentials.receiver_challenge)
        if not _is_json(request.content_type):
            return error(
                415, f"Content-Type must be application/json, got {request.content_type!r}"
            )
        raw = read_body(request, limit=service.settings.server.max_body_bytes)  # 413 past it
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return error(400, "body: not UTF-8")
        if jsontext.NUL in body:  # not JSON, and not text the audit can store as it was sent
            return error(400, "body: contains a NUL character")
        try:
            received = service.receive(
                body,
                source=contract.Source.ALERTMANAGER,
                remote=request.remote_addr or "",
                actor=actor,
            )
        except PayloadError as exc:
            return error(400, str(exc))
        except AuditUnavailable as exc:
            log.error("audit store unavailable: %s", exc)
            return error(503, f"audit store unavailable: {exc}")
        if received.transient_failure:
            failed = [d for d in received.decisions if d.transient]
            return error(
                503,
                "Kubernetes API failure; decisions recorded, retry the delivery: "
                + "; ".join(d.detail for d in failed)[:500],
                payload_id=received.payload_id,
                decisions=[d.as_dict() for d in received.decisions],
            )
        # The decisions' texts were serialised once, for the decision log: reused as they are.
        body = (
            '{"decisions": ['
            + ", ".join(received.serialised)
            + '], "payload_id": '
            + json.dumps(received.payload_id)
            + "}\n"
        )
        return Response(body, status=200, mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        problems = []
        try:
            service.cluster.version()
        except KubeError as exc:
            problems.append(f"kubernetes: {exc}")
        try:
            service.audit.check_writable()
        except AuditUnavailable as exc:
            problems.append(f"audit: {exc}")
        # Checks the server adds for what it started (serve: leader election's Lease).
        for readiness_check in app.config.get(READINESS_CHECKS, ()):
            if problem := readiness_check():
                problems.append(problem)
        if problems:
            return error(503, "; ".join(problems))
        return jsonify({"status": "ready"})

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    for extend in extensions or []:
        extend(app, service, credentials)
    return app
