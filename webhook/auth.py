"""Credentials: the receiver's (Alertmanager) and the on-call tokens, from files or env.

Comparisons are constant-time. A receiver credential never grants on-call access and an on-call
token never posts alerts: the two are checked by different functions against different secrets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from webhook.config import (
    ONCALL_TOKENS_ENV,
    RECEIVER_PASSWORD_ENV,
    RECEIVER_TOKEN_ENV,
    ConfigError,
    Settings,
)


class AuthError(Exception):
    """Credentials missing (401) or not valid for this endpoint (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _read_secret(path: str | None, env: str, *, key: str) -> str | None:
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read {path} ({exc.strerror})") from exc
        if not value:
            raise ConfigError(f"{key}: {path} is empty")
        return value
    value = os.environ.get(env, "").strip()
    return value or None


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Credentials:
    """All secrets the HTTP API checks, loaded once at start-up."""

    receiver_token: str | None
    receiver_user: str | None
    receiver_password: str | None
    allow_unauthenticated: bool
    oncall: tuple[tuple[str, str], ...]  # (name, token)

    @classmethod
    def load(cls, settings: Settings) -> Credentials:
        """The credentials the settings name; ConfigError listing every problem at once."""
        problems: list[str] = []

        def secret(path: str | None, env: str, key: str) -> str | None:
            try:
                return _read_secret(path, env, key=key)
            except ConfigError as exc:
                problems.extend(exc.problems)
                return None

        receiver = settings.auth.receiver
        token = secret(
            receiver.bearer_token_file, RECEIVER_TOKEN_ENV, "auth.receiver.bearer_token_file"
        )
        password = secret(
            receiver.basic_password_file, RECEIVER_PASSWORD_ENV, "auth.receiver.basic_password_file"
        )
        unreadable = bool(problems)
        if receiver.basic_username and not password and not receiver.basic_password_file:
            problems.append("auth.receiver.basic_password_file: basic_username needs a password")
        if password and not receiver.basic_username:
            problems.append("auth.receiver.basic_username: a basic password needs a username")
        if not (token or password or unreadable) and not receiver.allow_unauthenticated:
            problems.append(
                "auth.receiver: no bearer_token_file or basic credentials (or "
                f"${RECEIVER_TOKEN_ENV}); set allow_unauthenticated: true to run without"
            )
        oncall_text = ""
        path = settings.auth.oncall_tokens_file
        if path:
            try:
                oncall_text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                problems.append(f"auth.oncall_tokens_file: cannot read {path} ({exc.strerror})")
        else:
            oncall_text = os.environ.get(ONCALL_TOKENS_ENV, "")
        oncall: tuple[tuple[str, str], ...] = ()
        try:
            oncall = parse_oncall_tokens(oncall_text)
        except ConfigError as exc:
            problems.extend(exc.problems)
        if problems:
            raise ConfigError(*problems)
        return cls(
            receiver_token=token,
            receiver_user=receiver.basic_username if password else None,
            receiver_password=password,
            allow_unauthenticated=receiver.allow_unauthenticated,
            oncall=oncall,
        )

    @property
    def receiver_challenge(self) -> str:
        """The WWW-Authenticate challenge of the receiver: the scheme it accepts (RFC 7235)."""
        if self.receiver_token:
            return 'Bearer realm="rollback-webhook"'
        return 'Basic realm="rollback-webhook", charset="UTF-8"'

    def check_receiver(self, authorization: str | None) -> str:
        """Return the actor name for an Alertmanager request, or raise AuthError."""
        if not (self.receiver_token or self.receiver_password):
            return "unauthenticated"
        if not authorization:
            raise AuthError(401, "missing Authorization header (Bearer token or basic auth)")
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.receiver_token:
            if _equal(value.strip(), self.receiver_token):
                return "alertmanager"
            if self._oncall_name(value.strip()):
                raise AuthError(403, "an on-call token cannot post alerts")
            raise AuthError(401, "invalid bearer token")
        if scheme == "basic" and self.receiver_password:
            try:
                user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 inside
                raise AuthError(401, "malformed basic credentials") from None
            ok_user = _equal(user, self.receiver_user or "")
            if _equal(password, self.receiver_password) and ok_user:
                return "alertmanager"
            raise AuthError(401, "invalid basic credentials")
        if scheme == "bearer" and self._oncall_name(value.strip()):
            raise AuthError(403, "an on-call token cannot post alerts")
        raise AuthError(401, f"unsupported Authorization scheme {scheme!r} for this receiver")

    def server_secret(self) -> bytes:
        """A secret every worker and replica with these credentials derives alike (for MACs
        that must not depend on a client, such as the console's login CSRF token)."""
        digest = hashlib.sha256(b"rollback-webhook server secret\0")
        for part in (self.receiver_token, self.receiver_password, *(t for _, t in self.oncall)):
            digest.update((part or "").encode("utf-8", "replace") + b"\0")
        return digest.digest()

    def _oncall_name(self, token: str) -> str | None:
        found = None
        for name, secret in self.oncall:
            if _equal(token, secret):  # check all: no early exit to time
                found = name
        return found

    def check_oncall(self, token: str | None) -> str:
        """Return the on-call person's name for a token, or raise AuthError."""
        if not token:
            raise AuthError(401, "missing on-call token")
        name = self._oncall_name(token)
        if name:
            return name
        receiver = self.receiver_token and _equal(token, self.receiver_token)
        if receiver:
            raise AuthError(403, "the receiver credential cannot use on-call endpoints")
        raise AuthError(401, "invalid on-call token")


def parse_oncall_tokens(text: str) -> tuple[tuple[str, str], ...]:
    """Lines `name:token`; blank lines and `#` comments skipped. Names are the audit's actor."""
    result = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, token = stripped.partition(":")
        if not sep or not name.strip() or not token.strip():
            raise ConfigError(f"on-call tokens line {number}: expected name:token")
        result.append((name.strip(), token.strip()))
    return tuple(result)
