"""Console login defences: the rate limit on attempts and the login form's CSRF token.

Rate limit: failed attempts are counted from the login attempts in the audit store
(webhook/audit/console.py: one count for every replica on a shared store) over WINDOW_SECONDS,
per client address and per stated name; past a limit the attempt is refused with 429 and
Retry-After *before* the token is looked at (no oracle while refused), and the refusal itself is
recorded. Attempts that state no name share one bucket, so guessing tokens from many addresses
is bounded too.

CSRF: before login there is no session to bind a token to, and a double-submit pair alone is
accepted whatever values an attacker plants. The token is `nonce.expiry.mac` with an HMAC under
a server secret (derived from the configured credentials, so every worker and replica agrees),
and the cookie and the form field must both carry that same valid token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from webhook.audit import AuditStore
from webhook.audit.rows import LoginOutcome

WINDOW_SECONDS = 300
CSRF_SECONDS = 3600


@dataclass(frozen=True)
class LoginLimits:
    """Failed attempts allowed per WINDOW_SECONDS before further ones are refused."""

    per_client: int = 5
    per_name: int = 5
    unnamed: int = 30  # all attempts that state no name, from anywhere


@dataclass(frozen=True)
class Refusal:
    """Why an attempt is refused without being checked, and when to try again."""

    reason: str
    retry_after: int


class LoginGuard:
    """Decides whether a login attempt may be checked, and records every attempt."""

    def __init__(
        self,
        store: AuditStore,
        *,
        limits: LoginLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._limits = limits or LoginLimits()
        self._clock = clock

    def refusal(self, *, client: str, name: str) -> Refusal | None:
        """A Refusal when this client or this name has failed too often lately, else None."""
        since = datetime.fromtimestamp(self._clock() - WINDOW_SECONDS, UTC)
        limits = self._limits
        failures = self._store.login_failures_since
        if failures(since, client=client) >= limits.per_client:
            return Refusal(f"too many failed logins from {client}", WINDOW_SECONDS)
        if name and failures(since, name=name) >= limits.per_name:
            return Refusal(f"too many failed logins for {name!r}", WINDOW_SECONDS)
        if not name and failures(since, name="") >= limits.unnamed:
            return Refusal("too many failed logins without a name", WINDOW_SECONDS)
        return None

    def record(self, *, client: str, name: str, outcome: LoginOutcome, detail: str = "") -> None:
        self._store.record_login(
            time=datetime.fromtimestamp(self._clock(), UTC),
            client=client,
            name=name,
            outcome=outcome,
            detail=detail,
        )


def _same(a: str, b: str) -> bool:
    """Constant-time equality of any two strings (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


class LoginCsrf:
    """Issues and checks the login form's CSRF token under a server secret."""

    def __init__(self, secret: bytes, *, clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256(b"rollback-webhook login csrf\0" + secret).digest()
        self._clock = clock

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode("utf-8"), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        body = f"{secrets.token_hex(16)}.{int(self._clock()) + CSRF_SECONDS}"
        return f"{body}.{self._mac(body)}"

    def valid(self, token: str | None) -> bool:
        """True for a token this server issued that has not expired."""
        nonce, _, rest = (token or "").partition(".")
        expiry, _, mac = rest.partition(".")
        if not (nonce and expiry.isascii() and expiry.isdigit() and mac):
            return False
        if not _same(mac, self._mac(f"{nonce}.{expiry}")):
            return False
        return int(expiry) >= self._clock()

    def matches(self, cookie: str | None, form: str | None) -> bool:
        """The cookie and the form field carry the same valid token."""
        if not cookie or not form or not _same(cookie, form):
            return False
        return self.valid(cookie)
