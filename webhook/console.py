"""The on-call console: server-rendered pages (Jinja, no build step, no JavaScript).

Login takes an on-call token and sets a session cookie (Secure, HttpOnly, SameSite=Strict) that
holds the person's name, an expiry and a session id, signed with a key derived from that person's
token. The session is also a row of the audit store (webhook/audit/console.py), so every worker
and every replica on the store accepts it, and logout or rotating the token ends it on all; the
login attempts and their refusals are recorded there too, and counted by the rate limit.
Every POST form carries a CSRF token: before login an HMAC-signed double-submit cookie, after
it an HMAC of the session id. Jinja autoescaping renders alert labels and annotations as text.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from webhook.audit import AuditStore, AuditUnavailable
from webhook.audit.rows import LoginOutcome
from webhook.audit_query import FilterError, audit_page, decision_detail, parse_filters
from webhook.auth import AuthError, Credentials
from webhook.console_deployment import (
    decision_extras,
    install_deployment_pages,
    split_previews,
)
from webhook.console_resume import install_resume_form, raw_field_problem
from webhook.login_guard import LoginCsrf, LoginGuard
from webhook.replay import (
    MAX_REASON_CHARS,
    OVERRIDE_KEYS,
    ReplayError,
    find_alert,
    parse_ask,
    run_replay,
)
from webhook.service import Service

log = logging.getLogger(__name__)
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
    """Signs and verifies session cookies and CSRF tokens with per-person keys; every session
    is also a row of the audit store (shared by every replica on it), which logout and token
    rotation delete. Nothing is read or written when this is built (the gunicorn master builds
    it): the rotation sweep runs on the first use in each process."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        store: AuditStore,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._store = store
        self._now = now
        self._swept_pid = 0

    def _sweep(self) -> None:
        """Rotated tokens: sessions issued under a token no longer configured end (once per
        process; verify() refuses them meanwhile, as their key id no longer matches)."""
        if self._swept_pid != os.getpid():
            self._store.keep_only_keys({self._key_id(key) for key in self._keys()})
            self._swept_pid = os.getpid()

    def _at(self, seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    def _keys(self) -> list[bytes]:
        return [self._derive(token) for _, token in self._credentials.oncall]

    @staticmethod
    def _derive(token: str) -> bytes:
        return hashlib.sha256(b"rollback-webhook console\0" + token.encode()).digest()

    @staticmethod
    def _key_id(key: bytes) -> str:
        return hashlib.sha256(b"key id\0" + key).hexdigest()[:32]

    def _key(self, name: str) -> bytes | None:
        for person, token in self._credentials.oncall:
            if person == name:
                return self._derive(token)
        return None

    @staticmethod
    def _mac(key: bytes, text: str) -> str:
        return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def issue(self, name: str) -> str:
        """A cookie value for `name` (who has just shown a valid on-call token)."""
        key = self._key(name)
        if key is None:
            raise AuthError(401, f"no on-call token for {name!r}")
        now = self._now()
        expiry = int(now) + SESSION_SECONDS
        session_id = secrets.token_hex(16)
        self._sweep()
        self._store.open_session(
            session_id,
            name=name,
            key_id=self._key_id(key),
            created=self._at(now),
            expires=self._at(expiry),
        )
        body = f"{_b64(name)}.{expiry}.{session_id}"
        return f"{body}.{self._mac(key, 'session:' + body)}"

    def verify(self, cookie: str | None) -> Session | None:
        """The session of a cookie value, or None when missing, forged, expired or ended."""
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
        if key is None or not _same(signature, self._mac(key, "session:" + body)):
            return None
        if not (expiry.isascii() and expiry.isdigit()) or int(expiry) < self._now():
            return None
        self._sweep()
        active = self._store.session_active(
            nonce, name=name, key_id=self._key_id(key), now=self._at(self._now())
        )
        if not active:
            return None  # logged out, or its token rotated: ended on the server
        return Session(name=name, nonce=nonce, csrf=self._mac(key, "csrf:" + nonce))

    def end(self, session: Session) -> None:
        """End `session` on the server: its cookie is refused from now on, wherever it is."""
        self._store.end_session(session.nonce)


def _same(a: str, b: str) -> bool:
    """Constant-time equality of any two strings (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


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


def _unavailable(exc: AuditUnavailable, session: Session | None, what: str = "") -> BaseResponse:
    """The console's answer when the audit store fails: 503, naming the store and its error."""
    log.warning("console %s %s: audit store unavailable: %s", request.method, request.path, exc)
    done = f", {what}" if what else ""
    return _problem(503, f"audit store unavailable{done}, try again shortly: {exc}", session)


def _alert_of(detail: dict[str, Any]) -> dict[str, Any] | None:
    """The raw alert of the decision's stored payload (for its annotations)."""
    return find_alert(detail["decision"], (detail.get("payload") or {}).get("body"))


def install_console(app: Flask, service: Service, credentials: Credentials) -> None:
    """Register the console pages: /, /login, /logout, /decisions/<id>, /replay, and the
    Deployment pages with their resume form (webhook.console_deployment, console_resume)."""
    sessions = Sessions(credentials, store=service.audit)
    guard = LoginGuard(service.audit)
    login_csrf = LoginCsrf(credentials.server_secret())

    def current() -> Session | None:
        try:
            return sessions.verify(request.cookies.get(SESSION_COOKIE))
        except AuditUnavailable as exc:
            # Fail closed: without the store no session can be shown to be still open.
            log.warning("console session not checked: %s", exc)
            return None

    def csrf_ok(session: Session) -> bool:
        sent = request.form.get("csrf_token", "")
        return bool(sent) and _same(sent, session.csrf)

    def to_login() -> BaseResponse:
        return _secure(redirect(url_for("console_login")))

    def session_page(view: Callable[..., BaseResponse]) -> Callable[..., BaseResponse]:
        """A page of a logged-in person (the view gets the session first): no session goes to
        the login page, and an audit store that fails while the page is made is the answer every
        page shares, a 503 naming the store (as the on-call API's on_call_read), never a 500."""

        @functools.wraps(view)
        def answered(*args: Any, **kwargs: Any) -> BaseResponse:
            session = current()
            if session is None:
                return to_login()
            try:
                return view(session, *args, **kwargs)
            except AuditUnavailable as exc:
                return _unavailable(exc, session)

        return answered

    def login_page(status: int, error: str | None, csrf: str | None = None) -> BaseResponse:
        token = csrf or login_csrf.issue()
        response = _page("login.html", status, csrf_token=token, session=None, error=error)
        _set_cookie(response, LOGIN_CSRF_COOKIE, token, max_age=3600)
        return response

    @app.get("/login", endpoint="console_login")
    def login_form() -> BaseResponse:
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
        return login_page(200, None, cookie if login_csrf.valid(cookie) else None)

    @app.post("/login")
    def login() -> BaseResponse:
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not login_csrf.matches(cookie, request.form.get("csrf_token", "")):
            return _problem(403, "CSRF token missing or invalid: reload the login page")
        try:
            return checked_login(cookie)
        except AuditUnavailable as exc:
            # The limit cannot be counted nor the session recorded: no login, and say why.
            return _unavailable(exc, None)

    def checked_login(cookie: str) -> BaseResponse:
        client = request.remote_addr or ""
        stated = request.form.get("name", "").strip()[:200]
        refused = guard.refusal(client=client, name=stated)
        if refused is not None:
            # Refused before the token is looked at, and the refusal is on record.
            guard.record(
                client=client, name=stated, outcome=LoginOutcome.RATE_LIMITED, detail=refused.reason
            )
            log.warning("console login refused: %s", refused.reason)
            response = login_page(429, f"{refused.reason}: try again later", cookie)
            response.headers["Retry-After"] = str(refused.retry_after)
            return response
        try:
            name = credentials.check_oncall(request.form.get("token", "").strip() or None)
            if stated and stated != name:
                raise AuthError(401, "invalid on-call token")  # the same answer as a bad one
        except AuthError as exc:
            guard.record(client=client, name=stated, outcome=LoginOutcome.FAILED, detail=str(exc))
            return login_page(exc.status, str(exc), cookie)
        guard.record(client=client, name=stated or name, outcome=LoginOutcome.OK)
        response = _secure(redirect(url_for("console_index")))
        _set_cookie(response, SESSION_COOKIE, sessions.issue(name), max_age=SESSION_SECONDS)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    @app.post("/logout")
    @session_page
    def logout(session: Session) -> BaseResponse:
        if not csrf_ok(session):
            return _problem(403, "CSRF token missing or invalid", session)
        try:
            sessions.end(session)  # on the server: a copy of the cookie no longer works either
        except AuditUnavailable as exc:
            # Said apart from the shared answer: the cookie still opens the console.
            return _unavailable(exc, session, "not logged out")
        response = to_login()
        response.delete_cookie(
            SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict"
        )
        return response

    @app.get("/", endpoint="console_index")
    @session_page
    def index(session: Session) -> BaseResponse:
        try:
            filters = parse_filters(request.args, now=service.clock(), strict=False)
            rows, next_before = audit_page(service.audit, filters)
        except FilterError as exc:
            return _problem(400, str(exc), session)
        args = {k: v for k, v in request.args.items() if k != "before" and v}
        rows, previews = split_previews(rows)
        return _page(
            "list.html",
            session=session,
            rows=rows,
            previews=previews,
            args=args,
            next_args={**args, "before": next_before} if next_before else None,
        )

    @app.get("/decisions/<decision_id>", endpoint="console_decision")
    @session_page
    def decision(session: Session, decision_id: str) -> BaseResponse:
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
            **decision_extras(service, detail["decision"]),
        )

    @app.post("/replay", endpoint="console_replay")
    @session_page
    def replay(session: Session) -> BaseResponse:
        # Before request.form (it reads the cached body): the form parser keeps bytes that are
        # not UTF-8 re-quoted, where the API refuses such text naming the field.
        bad = raw_field_problem("reason") or raw_field_problem("audit_id")
        if not csrf_ok(session):
            return _problem(403, "CSRF token missing or invalid: reload the page", session)
        if bad:
            return _problem(400, bad, session)
        form = request.form
        execute = form.get("action") == "execute"
        try:
            # The form is the API's body (POST /api/v1/replay), validated by the same parse_ask:
            # the same limits, and the same 400 naming the field (an empty audit_id included).
            ask = parse_ask(
                {
                    "audit_id": form.get("audit_id", ""),
                    "reason": form.get("reason", ""),
                    "dry_run": not execute,
                    "overrides": {k: form.get(k) == "on" for k in OVERRIDE_KEYS},
                }
            )
            result = run_replay(service, ask, actor=session.name)
        except ReplayError as exc:
            return _problem(exc.status, str(exc), session)
        if execute and result.decisions:
            return _secure(
                redirect(url_for("console_decision", decision_id=result.decisions[0].id))
            )
        return _page(
            "preview.html",
            session=session,
            result=result,
            audit_id=ask.audit_id,
            overrides=ask.overrides.as_dict(),
            can_confirm=bool(result.decisions) and not result.refusals,
            watch_only=service.settings.dry_run,
        )

    install_deployment_pages(app, service, session_page=session_page, page=_page, problem=_problem)
    install_resume_form(
        app,
        service,
        session_page=session_page,
        csrf_ok=csrf_ok,
        problem=_problem,
        secure=_secure,
        max_reason=MAX_REASON_CHARS,
    )
