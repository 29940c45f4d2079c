"""The tracker's own process (webhook.tracker_process), as `serve`'s master runs it: a child
that holds the Lease, is started again when it dies, and stops (releasing the Lease) when
told to or when its parent's lifeline closes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import yaml

from lab.receiver_harness import Harness
from sandbox.testing import SandboxHandle
from tests.tracker.support import create_lease_namespace, lease_spec, wait_for
from webhook.config import load_settings
from webhook.kube import NotFound
from webhook.tracker_process import TrackerProcess


def tracker_process(sandbox: SandboxHandle, tmp_path: Path) -> TrackerProcess:
    config = {
        "audit": {"path": str(tmp_path / "audit.sqlite")},
        "kubernetes": {"kubeconfig": str(sandbox.kubeconfig), "timeout_seconds": 5},
        "tracker": {"resync_seconds": 1, "lease_duration_seconds": 3},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return TrackerProcess(load_settings(str(path)))


def test_tracker_child_is_restarted_after_it_dies_and_releases_the_lease_on_stop(
    sandbox: SandboxHandle, harness: Harness, tmp_path: Path
) -> None:
    create_lease_namespace(sandbox)
    process = tracker_process(sandbox, tmp_path)
    process.start()
    try:
        first = process.pid
        assert first is not None and first != os.getpid()
        holder = wait_for(
            lambda: holder_of(harness),
            seconds=30,
            what="the child holds the Lease",
        )
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: process.starts == 2 and process.pid, seconds=15, what="a new child")
        assert process.pid != first
        wait_for(
            lambda: holder_of(harness) not in (None, holder),
            seconds=30,
            what="the new child holds the Lease (the dead one's expired)",
        )
    finally:
        process.stop()
    assert process.pid is None
    assert not holder_of(harness), "Lease not released"


def test_tracker_child_stops_when_its_lifeline_closes(
    sandbox: SandboxHandle, harness: Harness, tmp_path: Path
) -> None:
    # What happens when the master dies, even by SIGKILL: the OS closes the pipe's write end.
    create_lease_namespace(sandbox)
    process = tracker_process(sandbox, tmp_path)
    process.start()
    process._stopping.set()  # supervise no more: a dead master restarts nothing
    child = process.pid
    assert child is not None
    try:
        wait_for(
            lambda: holder_of(harness),
            seconds=30,
            what="the child holds the Lease",
        )
        process._close_lifeline()
        wait_for(lambda: _gone(child), seconds=20, what="the child exited")
        assert not holder_of(harness), "Lease kept"
    finally:
        process.stop()


def holder_of(harness: Harness) -> str | None:
    """The Lease's holder now (None before anyone created it, or when released)."""
    try:
        return lease_spec(harness.service.cluster).get("holderIdentity") or None
    except NotFound:
        return None


def _gone(pid: int) -> bool:
    try:
        found, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return found == pid
