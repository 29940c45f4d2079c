"""Two `serve` processes (two workers each) on one PostgreSQL audit: one console for both.

- a session made by logging in through one replica is accepted by every worker of the other;
- logging out through one ends the session on the other (the copied cookie opens nothing);
- failed logins through either replica count towards one rate limit, and the refusal is in
  the shared audit, readable through either replica's GET /api/v1/logins;
- the gunicorn masters hold no connection to the database (the console opens it in workers).
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.parse
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from lab.postgres import PostgresServer
from lab.receiver_harness import ONCALL
from tests.durability.serving import Served
from tests.durability.test_two_replicas import replicas  # noqa: F401  (the two serves)
from webhook.console import LOGIN_CSRF_COOKIE, SESSION_COOKIE

# `serve` subprocesses against the sandbox (and PostgreSQL): seconds to a minute each.
pytestmark = pytest.mark.slow

ONCALL_TOKEN = ONCALL.split(":", 1)[1]


class Browser:
    """A cookie jar speaking plain HTTP to any replica (the console's cookies are Secure, which
    a real browser sends over HTTPS or to localhost; here they are sent by hand), no redirects
    followed."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def send(
        self, replica: Served, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        url = urllib.parse.urlsplit(replica.url)
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
        headers = {"Connection": "close"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode(errors="replace")
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    if morsel["max-age"] == "0" or morsel.value == "":
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            return response.status, dict(response.headers.items()), text
        finally:
            conn.close()

    def login(self, replica: Served, token: str, *, name: str = "") -> int:
        status, _, page = self.send(replica, "GET", "/login")
        assert status == 200 and LOGIN_CSRF_COOKIE in self.cookies
        form = {"csrf_token": csrf_in(page), "token": token, "name": name}
        return self.send(replica, "POST", "/login", form)[0]


def csrf_in(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def logged_in(replica: Served, cookie: str, times: int = 6) -> list[int]:
    """The console's answers to `cookie` alone, asked `times` times (so both workers answer)."""
    other = Browser()
    other.cookies[SESSION_COOKIE] = cookie
    return [other.send(replica, "GET", "/")[0] for _ in range(times)]


def connections_to(pid: int, port: int) -> int:
    """TCP connections process `pid` holds to 127.0.0.1:`port` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                count += 1
    return count


def test_a_session_made_on_one_replica_works_on_the_other_until_logout_there(
    replicas: tuple[Served, Served],  # noqa: F811
    postgres_server: PostgresServer,
) -> None:
    one, two = replicas
    browser = Browser()
    assert browser.login(one, ONCALL_TOKEN) == 302
    cookie = browser.cookies[SESSION_COOKIE]
    assert logged_in(two, cookie) == [200] * 6
    assert logged_in(one, cookie) == [200] * 6
    for replica in (one, two):
        assert connections_to(replica.process.pid, postgres_server.port) == 0
        assert sum(connections_to(w, postgres_server.port) for w in replica.workers()) > 0

    # Logout through the other replica: the session ends for both, copies of the cookie too.
    status, _, page = browser.send(two, "GET", "/")
    assert status == 200
    status, headers, _ = browser.send(two, "POST", "/logout", {"csrf_token": csrf_in(page)})
    assert status == 302 and headers["Location"].endswith("/login")
    assert SESSION_COOKIE not in browser.cookies
    assert logged_in(one, cookie) == [302] * 6
    assert logged_in(two, cookie) == [302] * 6


def test_failed_logins_on_both_replicas_count_towards_one_limit(
    replicas: tuple[Served, Served],  # noqa: F811
) -> None:
    one, two = replicas
    browser = Browser()
    # Five wrong tokens from this address, spread over both replicas (and their workers).
    for replica in (one, two, one, two, two):
        assert browser.login(replica, "a-guess") == 401
    # The right token is refused on either replica now, before it is checked.
    for replica in (one, two):
        assert browser.login(replica, ONCALL_TOKEN) == 429
    assert SESSION_COOKIE not in browser.cookies

    # The refusals are in the shared audit, listed the same through either replica.
    for replica in (one, two):
        status, body = replica.request("GET", "/api/v1/logins?since=1h", token=ONCALL_TOKEN)
        assert status == 200
        outcomes = [a["outcome"] for a in body["attempts"]]
        assert outcomes == ["rate_limited"] * 2 + ["failed"] * 5
        assert all(a["client"] == "127.0.0.1" for a in body["attempts"])
