"""Console sessions end on the server (logout, token rotation), login attempts are rate-limited
per client and per name with every refusal on record (and listed for on-call), the console
fails closed without its store, and the login CSRF token is bound to a server secret: all over
HTTP (the logout path in Chromium: test_console_browser_logout.py)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from lab.receiver_harness import hours, minutes
from tests.hostile.support import console_login, csrf_in
from tests.oncall.support import ALICE, BOB, OnCall
from webhook.audit import AuditStore, SqliteStore
from webhook.auth import Credentials
from webhook.console import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from webhook.login_guard import LoginCsrf
from webhook.runtime import build_app


def session_cookie(oncall: OnCall) -> str:
    cookie = oncall.client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    return cookie.value


def store_of(oncall: OnCall) -> AuditStore:
    """The audit store the console keeps its sessions and login attempts in."""
    return oncall.h.service.audit


def test_a_logged_out_cookie_no_longer_works_anywhere(oncall: OnCall) -> None:
    h = oncall.h
    h.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    assert console_login(oncall.client, ALICE).status_code == 302
    copied = session_cookie(oncall)
    csrf = csrf_in(oncall.client.get("/").get_data(as_text=True))
    assert oncall.client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert store_of(oncall).sessions() == []
    # Someone kept a copy of the cookie: it is refused by this app and by a second one (another
    # worker) on the same store, for pages and for replays alike.
    second = build_app(h.service, credentials=oncall.credentials).test_client()
    for client in (oncall.client, second):
        client.set_cookie(SESSION_COOKIE, copied, domain="localhost")
        page = client.get("/")
        assert page.status_code == 302 and page.headers["Location"].endswith("/login")
        replay = client.post(
            "/replay",
            data={"csrf_token": csrf, "audit_id": "d-x", "reason": "r", "action": "execute"},
        )
        assert replay.status_code == 302 and replay.headers["Location"].endswith("/login")


def test_a_session_is_valid_for_another_worker_until_logout(oncall: OnCall) -> None:
    assert console_login(oncall.client, ALICE).status_code == 302
    other = build_app(oncall.h.service, credentials=oncall.credentials).test_client()
    other.set_cookie(SESSION_COOKIE, session_cookie(oncall), domain="localhost")
    assert other.get("/").status_code == 200


def test_rotating_a_token_ends_its_sessions_on_the_server(oncall: OnCall) -> None:
    assert console_login(oncall.client, ALICE).status_code == 302
    assert console_login(oncall.client, BOB).status_code == 302
    assert sorted(s["name"] for s in store_of(oncall).sessions()) == ["alice", "bob"]
    rotated = Credentials(
        receiver_token=oncall.credentials.receiver_token,
        receiver_user=None,
        receiver_password=None,
        allow_unauthenticated=False,
        oncall=(("alice", "a-new-token"), ("bob", BOB)),
    )
    bob = session_cookie(oncall)
    # A restart with the new tokens file: nothing is touched while the app is built (the
    # gunicorn master builds it), the first use in the process ends the rotated sessions.
    restarted = build_app(oncall.h.service, credentials=rotated).test_client()
    assert len(store_of(oncall).sessions()) == 2
    restarted.set_cookie(SESSION_COOKIE, bob, domain="localhost")
    assert restarted.get("/").status_code == 200
    assert [s["name"] for s in store_of(oncall).sessions()] == ["bob"]


def test_wrong_logins_are_limited_per_client_and_refusals_recorded(oncall: OnCall) -> None:
    for _ in range(5):
        assert console_login(oncall.client, "guess", remote="10.0.0.9").status_code == 401
    # The right token no longer helps this client: refused before it is even checked.
    refused = console_login(oncall.client, ALICE, remote="10.0.0.9")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "too many failed logins from 10.0.0.9" in refused.get_data(as_text=True)
    assert oncall.client.get_cookie(SESSION_COOKIE) is None
    # Another client is not affected.
    assert console_login(oncall.client, ALICE, remote="10.0.0.10").status_code == 302
    attempts = store_of(oncall).login_attempts()
    assert [a["outcome"] for a in attempts[:2]] == ["ok", "rate_limited"]
    assert attempts[1]["client"] == "10.0.0.9"
    assert [a["outcome"] for a in attempts[2:]] == ["failed"] * 5
    # On-call can read the refusals from the audit (every replica's, on a shared store).
    listed = oncall.client.get(
        "/api/v1/logins?outcome=rate_limited&since=1h", headers={"Authorization": f"Bearer {BOB}"}
    )
    assert listed.status_code == 200
    [refusal] = listed.get_json()["attempts"]
    assert (refusal["client"], refusal["outcome"]) == ("10.0.0.9", "rate_limited")
    assert "too many failed logins from 10.0.0.9" in refusal["detail"]
    bad = oncall.client.get(
        "/api/v1/logins?outcome=nope", headers={"Authorization": f"Bearer {BOB}"}
    )
    assert bad.status_code == 400 and "outcome" in bad.get_json()["error"]
    assert oncall.client.get("/api/v1/logins").status_code == 401


def test_wrong_logins_for_one_name_are_limited_from_any_address(oncall: OnCall) -> None:
    for n in range(5):
        response = console_login(oncall.client, "guess", name="alice", remote=f"10.1.0.{n}")
        assert response.status_code == 401
    refused = console_login(oncall.client, ALICE, name="alice", remote="10.1.0.99")
    assert refused.status_code == 429
    assert "too many failed logins for 'alice'" in html.unescape(refused.get_data(as_text=True))
    [attempt] = [a for a in store_of(oncall).login_attempts() if a["outcome"] == "rate_limited"]
    assert (attempt["client"], attempt["name"]) == ("10.1.0.99", "alice")
    # Bob is not locked out by guesses at Alice.
    assert console_login(oncall.client, BOB, name="bob", remote="10.1.0.99").status_code == 302


def test_without_its_store_the_console_fails_closed(
    oncall: OnCall, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert console_login(oncall.client, ALICE).status_code == 302
    cookie = session_cookie(oncall)
    # The audit store cannot be opened (its directory is a file): no login is possible, and a
    # valid cookie opens nothing, as nobody can tell whether it was logged out meanwhile.
    (tmp_path / "not-a-directory").write_text("")
    broken = SqliteStore(tmp_path / "not-a-directory" / "audit.sqlite")
    monkeypatch.setattr(oncall.h.service, "audit", broken)
    client = build_app(oncall.h.service, credentials=oncall.credentials).test_client()
    answer = console_login(client, ALICE)
    assert answer.status_code == 503 and "audit store unavailable" in answer.get_data(as_text=True)
    assert client.get_cookie(SESSION_COOKIE) is None
    client.set_cookie(SESSION_COOKIE, cookie, domain="localhost")
    page = client.get("/")
    assert page.status_code == 302 and page.headers["Location"].endswith("/login")


def test_a_stated_name_must_match_the_token(oncall: OnCall) -> None:
    response = console_login(oncall.client, BOB, name="alice")
    assert response.status_code == 401
    assert oncall.client.get_cookie(SESSION_COOKIE) is None


def test_login_csrf_accepts_only_tokens_this_server_signed(oncall: OnCall) -> None:
    client = oncall.client

    def post(cookie: str | None, field: str) -> int:
        if cookie is None:
            client.delete_cookie(LOGIN_CSRF_COOKIE, domain="localhost")
        else:
            client.set_cookie(LOGIN_CSRF_COOKIE, cookie, domain="localhost")
        return client.post("/login", data={"csrf_token": field, "token": ALICE}).status_code

    foreign = LoginCsrf(b"another server's secret").issue()
    ours = LoginCsrf(oncall.credentials.server_secret()).issue()
    other_ours = LoginCsrf(oncall.credentials.server_secret()).issue()
    assert post("attacker", "attacker") == 403  # any chosen pair used to pass
    assert post(foreign, foreign) == 403
    assert post(ours, other_ours) == 403
    assert post(None, ours) == 403
    assert post("é" * 10, "é" * 10) == 403  # not a 500 (compare_digest and non-ASCII)
    expired = ours.split(".")
    assert post(f"{expired[0]}.1.{expired[2]}", f"{expired[0]}.1.{expired[2]}") == 403
    assert post(ours, ours) == 302
    # The login page hands out a signed token, and keeps a still-valid one.
    page = client.get("/login")
    token = csrf_in(page.get_data(as_text=True))
    assert LoginCsrf(oncall.credentials.server_secret()).valid(token)


def test_hostile_session_cookies_are_refused_not_crashed(oncall: OnCall) -> None:
    for value in ("é.1.2.3", "a.b.c.d", "...", json.dumps({"x": 1}), "YWxpY2U.99999999999.x.y"):
        oncall.client.set_cookie(SESSION_COOKIE, value, domain="localhost")
        response = oncall.client.get("/")
        assert response.status_code == 302, value
