"""`serve`'s master never touches the audit, and a worker's death never takes the master down:
with the audit made unwritable under it, deliveries get 503, /readyz says why, the killed
worker is replaced, and all is well again once the store is writable."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.receiver_harness import Harness, hours, minutes, template_images
from tests.durability.mounts import mounted
from tests.durability.serving import Served, Store, serve

# `serve` subprocesses against the sandbox (and PostgreSQL): seconds to a minute each.
pytestmark = pytest.mark.slow


def audit_files_held(pid: int, directory: Path) -> list[str]:
    """Audit files `pid` has open or mapped (the SQLite file, its -wal and -shm)."""
    held = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(directory)):
            held.append(target)
    maps = Path(f"/proc/{pid}/maps").read_text()
    held += [line.split()[-1] for line in maps.splitlines() if str(directory) in line]
    return held


@pytest.fixture
def view(tmp_path: Path) -> Iterator[Path]:
    """A directory that can be made read-only under the server (a bind mount; root only)."""
    source, mount = tmp_path / "volume", tmp_path / "view"
    source.mkdir()
    mount.mkdir()
    with mounted(mount, "--bind", str(source), what="bind-mount"):
        yield mount


def wait_for_workers(served: Served, old: set[int], seconds: float = 20) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        workers = served.workers()
        if workers and not set(workers) & old:
            return workers
        time.sleep(0.2)
    raise AssertionError(f"no new worker in {seconds}s:\n{served.stderr[-2000:]}")


def test_the_master_holds_no_audit_file_and_outlives_workers_on_an_unwritable_store(
    harness: Harness, tmp_path: Path, view: Path
) -> None:
    bad = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])[1]
    served = serve(harness.sandbox, tmp_path, Store(sqlite=view / "audit.sqlite"), workers=1)
    try:
        payload = Harness.payload(Harness.alert(namespace="shop", deployment="nothing"))
        assert served.request("POST", "/api/v1/alerts", payload)[0] == 200
        assert audit_files_held(served.process.pid, view) == []
        assert audit_files_held(served.workers()[0], view)  # the worker does hold them

        # The store turns read-only: a read-only bind of the volume is mounted over the view
        # (a busy mount cannot be remounted), and the worker is killed so its successor opens
        # the store there. The master must not notice either.
        volume = view.parent / "volume"
        subprocess.run(["mount", "--bind", "-o", "ro", str(volume), str(view)], check=True)
        old = set(served.workers())
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        wait_for_workers(served, old)
        alert = Harness.alert(namespace="shop", deployment="web", replicaset=bad)
        status, body = served.request("POST", "/api/v1/alerts", Harness.payload(alert))
        assert status == 503, body
        status, ready = served.request("GET", "/readyz")
        assert status == 503 and "audit" in ready["error"], ready
        assert template_images(harness.deployment("shop", "web")) == ["web:2"]

        old = set(served.workers())
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        wait_for_workers(served, old)
        assert served.process.poll() is None, "the master died with its worker"
        assert audit_files_held(served.process.pid, view) == []

        # Writable again: the read-only layer goes, and a new worker opens the store.
        subprocess.run(["umount", "-l", str(view)], check=True)
        old = set(served.workers())
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        wait_for_workers(served, old)
        served.wait_ready()
        status, body = served.deliver(Harness.payload(alert))
        assert status == 200 and body["decisions"][0]["outcome"] == "rolled_back"
        assert audit_files_held(served.process.pid, view) == []
    finally:
        served.stop()


def test_an_audit_newer_than_the_code_is_refused_by_serve_with_a_clear_message(
    harness: Harness, tmp_path: Path
) -> None:
    import sqlite3

    from webhook.audit import SqliteStore
    from webhook.audit.schema import SCHEMA_VERSION

    path = tmp_path / "audit.sqlite"
    SqliteStore(path).prepare()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO schema_version (version, applied_at, description) VALUES (?, ?, ?)",
            (SCHEMA_VERSION + 1, "2027-01-01T00:00:00+00:00", "a later release"),
        )
    # serve starts, never turns ready, and says why (its log, and /readyz's answer).
    with pytest.raises(AssertionError, match="not ready") as raised:
        serve(harness.sandbox, tmp_path, Store(sqlite=path), workers=1, ready_seconds=8)
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this rollback-webhook" in str(
        raised.value
    )
    with sqlite3.connect(path) as db:  # left as it was: nothing written, nothing migrated
        versions = sorted(r[0] for r in db.execute("SELECT version FROM schema_version"))
        assert db.execute("SELECT COUNT(*) FROM payloads").fetchone()[0] == 0
    assert versions[-1] == SCHEMA_VERSION + 1
