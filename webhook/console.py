"""The on-call console: server-rendered pages (Jinja, no build step, no JavaScript).

Login takes an on-call token and sets a session cookie (Secure, HttpOnly, SameSite=Strict) that
holds the person's name, an expiry and a nonce, signed with a key derived from that person's
token: every gunicorn worker verifies it without shared state, and rotating a token ends its
sessions. Every POST form carries a CSRF token: before login a double-submit cookie, after it an
HMAC of the session nonce. Jinja autoescaping renders alert labels and annotations as text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from webhook.ask import Overrides
from webhook.audit import AuditUnavailable
from webhook.auth import AuthError, Credentials
from webhook.oncall import FilterError, audit_page, decision_detail, parse_filters
from webhook.replay import OVERRIDE_KEYS, ReplayAsk, ReplayError, find_alert, run_replay
from webhook.service import Service

SESSION_COOKIE = "rw_session"
LOGIN_CSRF_COOKIE = "rw_login_csrf"
SESSION_SECONDS = 12 * 3600
# No scripts at all; styles and form posts only to ourselves; never framed (clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Session:
    """A logged-in on-call person."""

    name: str
    nonce: str
    csrf: str


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")


class Sessions:
    """Signs and verifies session cookies and CSRF tokens with per-person keys."""

    def __init__(self, credentials: Credentials, *, now: Callable[[], float] = time.time) -> None:
        self._credentials = credentials
        self._now = now

    def _key(self, name: str) -> bytes | None:
        for person, token in self._credentials.oncall:
            if person == name:
                return hashlib.sha256(b"rollback-webhook console\0" + token.encode()).digest()
        return None

    @staticmethod
    def _mac(key: bytes, text: str) -> str:
        return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def issue(self, name: str) -> str:
        """A cookie value for `name` (who has just shown a valid on-call token)."""
        key = self._key(name)
        if key is None:
            raise AuthError(401, f"no on-call token for {name!r}")
        body = f"{_b64(name)}.{int(self._now()) + SESSION_SECONDS}.{secrets.token_hex(16)}"
        return f"{body}.{self._mac(key, 'session:' + body)}"

    def verify(self, cookie: str | None) -> Session | None:
        """The session of a cookie value, or None when missing, forged, expired or revoked."""
        parts = (cookie or "").split(".")
        if len(parts) != 4:
            return None
        encoded, expiry, nonce, signature = parts
        try:
            name = _unb64(encoded)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        key = self._key(name)
        body = f"{encoded}.{expiry}.{nonce}"
        if key is None or not hmac.compare_digest(signature, self._mac(key, "session:" + body)):
            return None
        if not expiry.isdigit() or int(expiry) < self._now():
            return None
        return Session(name=name, nonce=nonce, csrf=self._mac(key, "csrf:" + nonce))


def _secure(response: BaseResponse) -> BaseResponse:
    for header, value in SECURITY_HEADERS.items():
        response.headers[header] = value
    return response


def _page(template: str, status: int = 200, **context: Any) -> BaseResponse:
    response = make_response(render_template(template, **context), status)
    return _secure(response)


def _set_cookie(response: BaseResponse, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="Strict"
    )


def _problem(status: int, message: str, session: Session | None = None) -> BaseResponse:
    return _page("message.html", status, title=f"{status}", message=message, session=session)


def _alert_of(detail: dict[str, Any]) -> dict[str, Any] | None:
    """The raw alert of the decision's stored payload (for its annotations)."""
    return find_alert(detail["decision"], (detail.get("payload") or {}).get("body"))


def install_console(app: Flask, service: Service, credentials: Credentials) -> None:
    """Register the console pages: /, /login, /logout, /decisions/<id>, /replay."""
    sessions = Sessions(credentials)

    def current() -> Session | None:
        return sessions.verify(request.cookies.get(SESSION_COOKIE))

    def csrf_ok(session: Session) -> bool:
        sent = request.form.get("csrf_token", "")
        return bool(sent) and hmac.compare_digest(sent, session.csrf)

    def to_login() -> BaseResponse:
        return _secure(redirect(url_for("console_login")))

    @app.get("/login", endpoint="console_login")
    def login_form() -> BaseResponse:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_hex(16)
        response = _page("login.html", csrf_token=token, session=None, error=None)
        _set_cookie(response, LOGIN_CSRF_COOKIE, token, max_age=3600)
        return response

    @app.post("/login")
    def login() -> BaseResponse:
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        sent = request.form.get("csrf_token", "")
        if not cookie or not hmac.compare_digest(sent, cookie):
            return _problem(403, "CSRF token missing or invalid: reload the login page")
        try:
            name = credentials.check_oncall(request.form.get("token", "").strip() or None)
        except AuthError as exc:
            response = _page(
                "login.html", exc.status, csrf_token=cookie, session=None, error=str(exc)
            )
            return response
        response = _secure(redirect(url_for("console_index")))
        _set_cookie(response, SESSION_COOKIE, sessions.issue(name), max_age=SESSION_SECONDS)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    @app.post("/logout")
    def logout() -> BaseResponse:
        session = current()
        if session is None:
            return to_login()
        if not csrf_ok(session):
            return _problem(403, "CSRF token missing or invalid", session)
        response = to_login()
        response.delete_cookie(
            SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict"
        )
        return response

    @app.get("/", endpoint="console_index")
    def index() -> BaseResponse:
        session = current()
        if session is None:
            return to_login()
        try:
            filters = parse_filters(request.args, now=service.clock(), strict=False)
            rows, next_before = audit_page(service.audit, filters)
        except FilterError as exc:
            return _problem(400, str(exc), session)
        except AuditUnavailable as exc:
            return _problem(503, f"audit store unavailable: {exc}", session)
        args = {k: v for k, v in request.args.items() if k != "before" and v}
        return _page(
            "list.html",
            session=session,
            rows=rows,
            args=args,
            next_args={**args, "before": next_before} if next_before else None,
        )

    @app.get("/decisions/<decision_id>", endpoint="console_decision")
    def decision(decision_id: str) -> BaseResponse:
        session = current()
        if session is None:
            return to_login()
        detail = decision_detail(service.audit, decision_id)
        if detail is None:
            return _problem(404, f"no decision {decision_id!r}", session)
        alert = _alert_of(detail)
        payload_text = json.dumps((detail["payload"] or {}).get("body"), indent=2)
        return _page(
            "decision.html",
            session=session,
            d=detail["decision"],
            alert=alert,
            payload=detail["payload"],
            payload_text=payload_text,
            replays=detail["replays"],
            override_keys=OVERRIDE_KEYS,
        )

    @app.post("/replay", endpoint="console_replay")
    def replay() -> BaseResponse:
        session = current()
        if session is None:
            return to_login()
        if not csrf_ok(session):
            return _problem(403, "CSRF token missing or invalid: reload the page", session)
        form = request.form
        audit_id = form.get("audit_id", "").strip()
        execute = form.get("action") == "execute"
        overrides = Overrides(**{k: form.get(k) == "on" for k in OVERRIDE_KEYS})
        ask = ReplayAsk(
            reason=form.get("reason", "").strip(),
            audit_id=audit_id,
            dry_run=not execute,
            overrides=overrides,
        )
        if not ask.reason:
            return _problem(400, "reason: required, say why this alert is replayed", session)
        try:
            result = run_replay(service, ask, actor=session.name)
        except ReplayError as exc:
            return _problem(exc.status, str(exc), session)
        except AuditUnavailable as exc:
            return _problem(503, f"audit store unavailable: {exc}", session)
        if execute and result.decisions:
            return _secure(
                redirect(url_for("console_decision", decision_id=result.decisions[0].id))
            )
        return _page(
            "preview.html",
            session=session,
            result=result,
            audit_id=audit_id,
            overrides=overrides.as_dict(),
            can_confirm=bool(result.decisions) and not result.refusals,
            watch_only=service.settings.dry_run,
        )
