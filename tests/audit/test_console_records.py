"""The console's sessions and login attempts in the audit store, the same for SQLite and
PostgreSQL, and shared by every client of one store (as replicas share it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.audit.conftest import MakeStore
from webhook.audit.rows import LoginOutcome

NOW = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_a_session_opened_by_one_client_is_seen_and_ended_by_another(make_store: MakeStore) -> None:
    one, two = make_store(), make_store()
    one.open_session("secret-id", name="alice", key_id="k-a", created=NOW, expires=NOW + HOUR)
    assert two.session_active("secret-id", name="alice", key_id="k-a", now=NOW)
    # Someone else's name, another token's key, or past the expiry: not this session.
    assert not two.session_active("secret-id", name="bob", key_id="k-a", now=NOW)
    assert not two.session_active("secret-id", name="alice", key_id="k-b", now=NOW)
    assert not two.session_active("secret-id", name="alice", key_id="k-a", now=NOW + 2 * HOUR)
    # The id itself is never stored.
    assert "secret-id" not in str(one.sessions())
    assert two.end_session("secret-id") is True
    assert not one.session_active("secret-id", name="alice", key_id="k-a", now=NOW)
    assert one.end_session("secret-id") is False


def test_rotation_ends_the_sessions_of_tokens_no_longer_configured(make_store: MakeStore) -> None:
    store = make_store()
    for session, key in (("s1", "k-a"), ("s2", "k-b"), ("s3", "k-a")):
        store.open_session(session, name="x", key_id=key, created=NOW, expires=NOW + HOUR)
    assert store.keep_only_keys({"k-b"}) == 2
    assert [s["key_id"] for s in store.sessions()] == ["k-b"]
    assert store.keep_only_keys(set()) == 1
    assert store.sessions() == []


def test_failures_are_counted_per_client_and_per_name_in_the_window(make_store: MakeStore) -> None:
    one, two = make_store(), make_store()
    for i, (store, client, name, outcome) in enumerate(
        [
            (one, "10.0.0.1", "alice", LoginOutcome.FAILED),
            (two, "10.0.0.1", "", LoginOutcome.FAILED),
            (two, "10.0.0.2", "alice", LoginOutcome.RATE_LIMITED),
            (one, "10.0.0.1", "alice", LoginOutcome.OK),
        ]
    ):
        store.record_login(
            time=NOW + timedelta(seconds=i), client=client, name=name, outcome=outcome
        )
    for store in (one, two):
        assert store.login_failures_since(NOW, client="10.0.0.1") == 2
        assert store.login_failures_since(NOW, name="alice") == 2
        assert store.login_failures_since(NOW, name="") == 1
        assert store.login_failures_since(NOW + timedelta(seconds=2), name="alice") == 1
    attempts = two.login_attempts()
    assert [a["outcome"] for a in attempts] == ["ok", "rate_limited", "failed", "failed"]
    refused = one.login_attempts(outcome=LoginOutcome.RATE_LIMITED)
    assert [(a["client"], a["name"]) for a in refused] == [("10.0.0.2", "alice")]
    assert one.login_attempts(since=NOW + timedelta(seconds=3), limit=5)[0]["outcome"] == "ok"


def test_prune_drops_old_attempts_and_expired_sessions(make_store: MakeStore) -> None:
    store = make_store()
    store.record_login(
        time=NOW - timedelta(days=40), client="c", name="", outcome=LoginOutcome.FAILED
    )
    store.record_login(time=NOW, client="c", name="", outcome=LoginOutcome.FAILED)
    store.open_session("kept", name="a", key_id="k", created=NOW, expires=NOW + HOUR)
    store.open_session("gone", name="a", key_id="k", created=NOW - 2 * HOUR, expires=NOW - HOUR)
    assert len(store.sessions()) == 2
    store.prune(retention_days=30, now=NOW)
    assert [a["time"] for a in store.login_attempts()] == ["2026-11-01T10:00:00.000000+00:00"]
    assert [s["expires"] for s in store.sessions()] == ["2026-11-01T11:00:00.000000+00:00"]
