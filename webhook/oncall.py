"""On-call HTTP API: replay and audit queries, behind named on-call tokens.

`install(app, service, credentials)` registers:
- `POST /api/v1/replay` (webhook.replay): `{"audit_id"|"payload", "reason", "dry_run", "overrides"}`
- `GET /api/v1/audit`: filters namespace, deployment, outcome, since (RFC 3339 or a duration such
  as `2h`, meaning that long ago), limit (1-500, default 50) and `before` (the `next_before` of
  the previous page); newest first.
- `GET /api/v1/audit/<id>`: the decision, its stored payload, and the replays of it.
- `GET /api/v1/logins`: the console's login attempts, refusals included (outcome ok, failed,
  rate_limited; since; limit), newest first, as recorded by every replica on the store.
The token is `Authorization: Bearer <on-call token>`; its name is the audit's actor. A receiver
credential gets 403 here, as an on-call token does on the receiver.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request

from webhook import jsontext
from webhook.app import error
from webhook.audit import AuditUnavailable
from webhook.audit_query import (
    FilterError,
    audit_page,
    decision_detail,
    login_attempts,
    parse_filters,
)
from webhook.auth import AuthError, Credentials
from webhook.bodies import read_body
from webhook.replay import ReplayError, parse_ask, run_replay
from webhook.service import Service


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header, or None."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def install(app: Flask, service: Service, credentials: Credentials) -> None:
    """Register the on-call API on `app` (the console and resume are route groups of their own)."""

    def oncall_actor() -> str:
        return credentials.check_oncall(bearer_token(request.headers.get("Authorization")))

    @app.post("/api/v1/replay")
    def replay() -> Response:
        try:
            actor = oncall_actor()
        except AuthError as exc:
            return error(exc.status, str(exc))
        if not request.is_json:
            got = request.content_type
            return error(415, f"Content-Type must be application/json, got {got!r}")
        try:
            limit = service.settings.server.max_body_bytes
            body = jsontext.loads(read_body(request, limit=limit))
            jsontext.require_encodable(body)
        except jsontext.JsonTextError as exc:
            return error(400, str(exc))
        try:
            result = run_replay(service, parse_ask(body), actor=actor)
        except ReplayError as exc:
            return error(exc.status, str(exc))
        except AuditUnavailable as exc:
            return error(503, f"audit store unavailable: {exc}")
        return jsonify(result.as_dict())

    def on_call_read(view: Callable[..., Response]) -> Callable[..., Response]:
        """An on-call read: the token checked first, then the answers every read shares for
        a refused token, a bad filter and an unavailable audit store."""

        @functools.wraps(view)
        def answered(*args: Any, **kwargs: Any) -> Response:
            try:
                oncall_actor()
                return view(*args, **kwargs)
            except AuthError as exc:
                return error(exc.status, str(exc))
            except FilterError as exc:
                return error(400, str(exc))
            except AuditUnavailable as exc:
                return error(503, f"audit store unavailable: {exc}")

        return answered

    @app.get("/api/v1/audit")
    @on_call_read
    def audit_list() -> Response:
        filters = parse_filters(request.args, now=service.clock())
        page, next_before = audit_page(service.audit, filters)
        return jsonify({"decisions": page, "count": len(page), "next_before": next_before})

    @app.get("/api/v1/audit/<decision_id>")
    @on_call_read
    def audit_one(decision_id: str) -> Response:
        detail = decision_detail(service.audit, decision_id)
        if detail is None:
            return error(404, f"no decision {decision_id!r}")
        return jsonify(detail)

    @app.get("/api/v1/logins")
    @on_call_read
    def logins() -> Response:
        attempts = login_attempts(service.audit, request.args, now=service.clock())
        return jsonify({"attempts": attempts, "count": len(attempts)})
