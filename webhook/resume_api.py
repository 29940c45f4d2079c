"""POST /api/v1/resume: hand a paused GitOps owner back (on-call token; webhook.resume).

Body `{"namespace", "deployment", "reason"}`; 200 with the recorded decision (`resumed`, or
`failed` with its reason), 400 a bad body, 401/403 not an on-call token, 404 no such Deployment,
409 nothing paused there, 503 the audit store is down. The console's Deployment page posts here.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

from webhook import jsontext
from webhook.app import error
from webhook.audit import AuditUnavailable
from webhook.auth import AuthError, Credentials
from webhook.bodies import read_body
from webhook.resume import ResumeError, parse_target, run_resume
from webhook.service import Service


def install_resume(app: Flask, service: Service, credentials: Credentials) -> None:
    from webhook.oncall import bearer_token  # the on-call API's own token parsing

    @app.post("/api/v1/resume")
    def resume_owner() -> Response:
        try:
            actor = credentials.check_oncall(bearer_token(request.headers.get("Authorization")))
        except AuthError as exc:
            return error(exc.status, str(exc))
        if not request.is_json:
            return error(
                415, f"Content-Type must be application/json, got {request.content_type!r}"
            )
        try:
            body = jsontext.loads(read_body(request, limit=service.settings.server.max_body_bytes))
            jsontext.require_encodable(body)  # the reason is stored: no lone surrogates
            namespace, deployment, reason = parse_target(body)
            decision = run_resume(
                service, namespace=namespace, deployment=deployment, actor=actor, reason=reason
            )
        except jsontext.JsonTextError as exc:
            return error(400, str(exc))
        except ResumeError as exc:
            return error(exc.status, str(exc))
        except AuditUnavailable as exc:
            return error(503, f"audit store unavailable: {exc}")
        return jsonify({"decision": decision.as_dict()})
