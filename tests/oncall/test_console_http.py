"""The console's session and CSRF rules, checked at the HTTP level (the browser test shows use)."""

from __future__ import annotations

import html
import re
import sqlite3
from pathlib import Path

import pytest

from lab.receiver_harness import Harness, hours, minutes, template_images
from sandbox.testing import SandboxHandle
from tests.fuzz.test_openapi import spec
from tests.oncall.support import ALICE, BOB, RECEIVER, OnCall
from webhook.audit import SqliteStore
from webhook.auth import Credentials
from webhook.console import SESSION_COOKIE, Sessions
from webhook.replay import MAX_REASON_CHARS

FORM = "application/x-www-form-urlencoded"


def csrf_of(oncall: OnCall, path: str) -> str:
    """The CSRF token in the form of the page at `path`."""
    page = oncall.client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def login(oncall: OnCall, token: str = ALICE) -> str:
    """Log in through the form; returns the CSRF token of the first page."""
    csrf = csrf_of(oncall, "/login")
    response = oncall.client.post("/login", data={"csrf_token": csrf, "token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return csrf_of(oncall, "/")


def test_console_needs_login_and_sets_a_strict_cookie(oncall: OnCall) -> None:
    response = oncall.client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    csrf = csrf_of(oncall, "/login")
    response = oncall.client.post("/login", data={"csrf_token": csrf, "token": ALICE})
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("rw_session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= flags
    assert ALICE not in cookie  # the token itself never sits in the browser
    index = oncall.client.get("/")
    assert index.status_code == 200 and "alice" in index.get_data(as_text=True)
    assert "default-src 'none'" in index.headers["Content-Security-Policy"]


def test_wrong_tokens_cannot_log_in(oncall: OnCall) -> None:
    csrf = csrf_of(oncall, "/login")
    for token, status in ((RECEIVER, 403), ("guess", 401), ("", 401)):
        response = oncall.client.post("/login", data={"csrf_token": csrf, "token": token})
        assert response.status_code == status
        assert not any(c.startswith("rw_session=") for c in response.headers.getlist("Set-Cookie"))


def test_login_without_csrf_is_refused(oncall: OnCall) -> None:
    response = oncall.client.post("/login", data={"token": ALICE})
    assert response.status_code == 403 and "CSRF" in response.get_data(as_text=True)


def test_replay_post_without_or_with_a_foreign_csrf_token_is_refused(oncall: OnCall) -> None:
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", hours(2))])
    [skip] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    # Bob's CSRF token is valid for Bob's session only.
    bob_csrf = login(oncall, BOB)
    oncall.client = oncall.app.test_client()  # a fresh browser for Alice
    login(oncall, ALICE)
    form = {
        "audit_id": skip["id"],
        "reason": "r",
        "ignore_recent_window": "on",
        "action": "execute",
    }
    for extra in ({}, {"csrf_token": ""}, {"csrf_token": bob_csrf}):
        response = oncall.client.post("/replay", data={**form, **extra})
        assert response.status_code == 403 and "CSRF" in response.get_data(as_text=True)
    assert oncall.h.service.audit.replays_of(skip["id"]) == []
    assert template_images(oncall.h.deployment("shop", "web")) == ["web:2"]


def test_session_ends_when_its_token_is_rotated(oncall: OnCall) -> None:
    store = oncall.h.service.audit
    sessions = Sessions(oncall.credentials, store=store)
    cookie = sessions.issue("alice")
    assert sessions.verify(cookie) is not None
    rotated = Credentials(
        receiver_token=RECEIVER,
        receiver_user=None,
        receiver_password=None,
        allow_unauthenticated=False,
        oncall=(("alice", "a-new-token"),),
    )
    assert Sessions(rotated, store=store).verify(cookie) is None
    name, expiry, nonce, signature = cookie.split(".")
    assert sessions.verify(f"{name}.{int(expiry) + 3600}.{nonce}.{signature}") is None  # tampered
    expired = Sessions(oncall.credentials, store=store, now=lambda: float(expiry) + 1)
    assert expired.verify(cookie) is None


def preview_page(oncall: OnCall, audit_id: str) -> str:
    csrf = login(oncall)
    form = {
        "csrf_token": csrf,
        "audit_id": audit_id,
        "reason": "look",
        "action": "preview",
        "ignore_recent_window": "on",
        "ignore_cooldown": "on",
    }
    response = oncall.client.post("/replay", data=form)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def test_refused_preview_says_why_and_offers_no_confirm(oncall: OnCall) -> None:
    rs = oncall.h.deploy(
        "web",
        [("web:1", hours(3)), ("web:2", hours(2))],
        annotations={"auto-rollback/enabled": "false"},
    )
    [skip] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    page = preview_page(oncall, skip["id"])
    assert 'id="refused"' in page and "refused: not_opted_in" in page
    assert "never overridable" in page and 'id="confirm"' not in page


def test_watch_only_preview_offers_no_confirm(sandbox: SandboxHandle, tmp_path: Path) -> None:
    oncall = OnCall(Harness(sandbox, tmp_path, dry_run=True))
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", minutes(5))])
    [seen] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    page = preview_page(oncall, seen["id"])
    assert "would roll back revision 2 -&gt; revision 1" in page
    assert 'id="watch-only"' in page and 'id="confirm"' not in page


def test_console_list_pages_with_the_filters_kept(oncall: OnCall) -> None:
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", hours(2))])
    alert = oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    oncall.h.post_alerts(*[alert] * 60)
    login(oncall)
    first = oncall.client.get("/", query_string={"namespace": "shop"}).get_data(as_text=True)
    assert first.count('class="open"') == 50
    older = re.search(r'id="older" href="([^"]+)"', first)
    assert older and "namespace=shop" in older.group(1)
    second = oncall.client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert second.count('class="open"') == 10 and 'id="older"' not in second


def test_logout_needs_csrf_and_ends_the_session(oncall: OnCall) -> None:
    csrf = login(oncall)
    assert oncall.client.post("/logout").status_code == 403
    assert oncall.client.get("/").status_code == 200
    response = oncall.client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert oncall.client.get("/").status_code == 302


def test_replay_form_is_validated_like_the_api(oncall: OnCall) -> None:
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", hours(2))])
    [skip] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    csrf = login(oncall)
    cases = [
        ({"audit_id": skip["id"], "reason": "x" * (MAX_REASON_CHARS + 1)}, "reason: longer than"),
        ({"audit_id": "", "reason": "look"}, "audit_id: "),
        ({"audit_id": "  ", "reason": "look"}, "audit_id: "),
        ({"audit_id": skip["id"], "reason": " "}, "reason: required"),
    ]
    for fields, named in cases:
        status, answer = oncall.replay(fields)  # the API's answer to the same ask
        assert status == 400 and answer["error"].startswith(named), (fields, answer)
        form = {"csrf_token": csrf, "action": "preview", **fields}
        page = oncall.client.post("/replay", data=form)
        assert page.status_code == 400, (fields, page.status_code)
        assert answer["error"] in html.unescape(page.get_data(as_text=True)), fields
    assert oncall.h.service.audit.replays_of(skip["id"]) == []
    assert [p.source for p in oncall.h.service.audit.payloads()] == ["alertmanager"]


def test_replay_form_refuses_text_that_is_not_unicode_as_the_api_does(oncall: OnCall) -> None:
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", hours(2))])
    [skip] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    csrf = login(oncall)
    status, answer = oncall.replay({"audit_id": skip["id"], "reason": "\ud800"})  # JSON-escaped
    assert status == 400 and answer["error"].startswith("reason: not text the audit can store")
    # The form parser would keep these bytes re-quoted ("%ED%A0%80" as the reason), not refuse.
    cases = (("reason", "%ED%A0%80"), ("reason", "ok%FF"), ("audit_id", "d%ED%A0%80"))
    for field, value in cases:
        fields = {"audit_id": skip["id"], "reason": "look", field: value}
        body = "&".join(f"{k}={v}" for k, v in {"csrf_token": csrf, **fields}.items())
        page = oncall.client.post("/replay", data=body, content_type=FORM)
        text = html.unescape(page.get_data(as_text=True))
        assert page.status_code == 400, (field, value, page.status_code)
        assert f"{field}: not text the audit can store" in text, (field, value)
    assert oncall.h.service.audit.replays_of(skip["id"]) == []


def test_console_pages_answer_503_naming_the_store_when_it_is_down(
    oncall: OnCall, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", hours(2))])
    [skip] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    csrf = login(oncall)
    # The store goes down after the session was checked (the sessions keep the store they were
    # built with): what each page reads next cannot be opened, as its directory is a file.
    (tmp_path / "not-a-directory").write_text("")
    broken = SqliteStore(tmp_path / "not-a-directory" / "audit.sqlite")
    monkeypatch.setattr(oncall.h.service, "audit", broken)
    form = {"csrf_token": csrf, "audit_id": skip["id"], "reason": "look", "action": "preview"}
    answers = {
        ("/decisions/{decision_id}", "get"): oncall.client.get(f"/decisions/{skip['id']}"),
        ("/", "get"): oncall.client.get("/"),
        ("/deployments/{namespace}/{name}", "get"): oncall.client.get("/deployments/shop/web"),
        ("/replay", "post"): oncall.client.post("/replay", data=form),
    }
    for page, answer in answers.items():
        text = answer.get_data(as_text=True)
        assert answer.status_code == 503, (page, answer.status_code, text[:300])
        assert "audit store unavailable" in text and "not-a-directory" in text, page
        assert answer.mimetype == "text/html", page  # the console's page, not the API's JSON
        assert 503 in documented(*page), page


def documented(path: str, method: str) -> set[int]:
    """The status codes docs/openapi.yaml gives for a route."""
    return {int(code) for code in spec()["paths"][path][method]["responses"]}


def test_login_and_logout_answer_503_when_the_store_refuses_the_session_write(
    oncall: OnCall,
) -> None:
    # A store that still reads but refuses to record or end a session (a full disk, a lost
    # primary): no login without its session row, and a logout that did not happen says so.
    db = sqlite3.connect(oncall.h.tmp_path / "audit.sqlite", isolation_level=None)
    csrf = login(oncall)
    db.execute(
        "CREATE TRIGGER no_end BEFORE DELETE ON console_sessions "
        "BEGIN SELECT RAISE(ABORT, 'x'); END"
    )
    out = oncall.client.post("/logout", data={"csrf_token": csrf})
    text = out.get_data(as_text=True)
    assert out.status_code == 503, (out.status_code, text[:300])
    assert "audit store unavailable, not logged out" in text
    assert oncall.client.get("/").status_code == 200  # the session is still open: it was said
    db.execute("DROP TRIGGER no_end")
    db.execute(
        "CREATE TRIGGER no_open BEFORE INSERT ON console_sessions "
        "BEGIN SELECT RAISE(ABORT, 'x'); END"
    )
    login_csrf = csrf_of(oncall, "/login")
    refused = oncall.client.post("/login", data={"csrf_token": login_csrf, "token": BOB})
    assert refused.status_code == 503, refused.get_data(as_text=True)[:300]
    assert "audit store unavailable" in refused.get_data(as_text=True)
    assert SESSION_COOKIE not in refused.headers.get("Set-Cookie", "")  # no session given
    db.close()
    for path in ("/login", "/logout"):
        assert 503 in documented(path, "post"), path


def test_the_timeline_says_why_a_revision_was_marked_bad_in_words(oncall: OnCall) -> None:
    """The bad mark's tooltip names the alert, its trigger and the decision, not the
    annotation's stored form."""
    rs = oncall.h.deploy("web", [("web:1", hours(3)), ("web:2", minutes(3))])
    [rolled] = oncall.h.post_alerts(
        oncall.h.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    assert rolled["outcome"] == "rolled_back", rolled
    login(oncall)
    page = html.unescape(oncall.client.get("/deployments/shop/web").get_data(as_text=True))
    titles = re.findall(r"<title>marked bad at ([^<]+)</title>", page)
    assert titles, page
    assert all(
        t.endswith(f": RollbackRestartRate (restart_rate), audit {rolled['id']}") for t in titles
    ), titles
    assert "{'" not in page
