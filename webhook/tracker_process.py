"""The health tracker in a process of its own, started and watched by `serve`'s master.

Why not in the gunicorn master: the master's job is to keep workers alive. A tracker round reads
the cluster and the audit (seconds of CPU on a large cluster); in the master it competes with
nothing useful, holds audit connections across the fork, and an exception or a hang there is the
whole server's. Why not in a worker: a worker's death (timeout, OOM, a bad request) would
restart every healthy-period clock and hand the Lease around, and with more than one worker each
would run a tracker. So the master starts one child, `python -c ...child_main()`, hands it the
settings through a pipe and keeps that pipe open as a lifeline:

- the child builds its own Service (cluster client, audit, Prometheus) and runs the tracker's
  LeaderLoop until SIGTERM/SIGINT or end of file on the lifeline (the master died, even by
  SIGKILL), then releases the Lease;
- the master's only work is a supervisor thread that waits for the child and starts a new one
  after it died, with a backoff (1 s doubling to 60 s, reset after a minute of life); it does no
  cluster or audit I/O for the tracker.

The child is started with os.posix_spawn, not subprocess: under gevent (serve's worker class)
the master's `subprocess` is patched and would take SIGCHLD from gunicorn's arbiter. gunicorn
reaps every child of the master, this one included, so a waitpid that finds nothing to wait for
(ECHILD) means the child is gone.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from webhook.config import Settings

log = logging.getLogger(__name__)

CHILD_CODE = "from webhook.tracker_process import child_main; raise SystemExit(child_main())"
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
# A child that lived this long is healthy again: the next death restarts after the first backoff.
HEALTHY_RUN_SECONDS = 60.0
POLL_SECONDS = 0.5
STOP_SECONDS = 25.0


class TrackerProcess:
    """One tracker child of this process, restarted when it dies, until `stop()`."""

    def __init__(self, settings: Settings, *, executable: str = sys.executable) -> None:
        self.settings = settings
        self.executable = executable
        self.pid: int | None = None
        self.starts = 0
        self._lifeline: int | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._owner = os.getpid()

    def start(self) -> None:
        """Start the child and the supervisor thread (a daemon: never holds the process up)."""
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="tracker-supervisor")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop supervising, ask the child to stop (it releases the Lease) and wait for it.
        A no-op in a forked copy of this process (a gunicorn worker unwinding)."""
        if os.getpid() != self._owner:
            return
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        pid = self.pid
        self._close_lifeline()
        if pid is None:
            return
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while time.monotonic() < deadline:
            if _exited(pid):
                self.pid = None
                return
            time.sleep(0.05)
        log.warning("health tracker process %d did not stop in %ss: killed", pid, STOP_SECONDS)
        _signal(pid, signal.SIGKILL)
        _exited(pid)
        self.pid = None

    # -- the master's side -------------------------------------------------------------------
    def _spawn(self) -> None:
        read_end, write_end = os.pipe()
        try:
            pid = os.posix_spawn(
                self.executable,
                [self.executable, "-c", CHILD_CODE],
                dict(os.environ),
                file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0)],
            )
        finally:
            os.close(read_end)
        try:
            os.write(write_end, pickle.dumps(self.settings))
        except OSError:
            pass  # died at once: the supervisor sees it and starts another
        self._close_lifeline()
        self._lifeline = write_end
        self.pid = pid
        self.starts += 1
        log.info("health tracker process %d started", pid)

    def _supervise(self) -> None:
        backoff = BACKOFF_FIRST_SECONDS
        started = time.monotonic()
        while not self._stopping.wait(POLL_SECONDS):
            pid = self.pid
            if pid is None or not _exited(pid):
                continue
            lived = time.monotonic() - started
            if lived >= HEALTHY_RUN_SECONDS:
                backoff = BACKOFF_FIRST_SECONDS
            log.error(
                "health tracker process %d exited after %.0fs; starting another in %.0fs",
                pid,
                lived,
                backoff,
            )
            self.pid = None
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
            try:
                self._spawn()
            except OSError as exc:
                log.error("cannot start the health tracker process: %s", exc)
            started = time.monotonic()

    def _close_lifeline(self) -> None:
        if self._lifeline is not None:
            try:
                os.close(self._lifeline)
            except OSError:
                pass
            self._lifeline = None


def _exited(pid: int) -> bool:
    """Whether the child is gone (reaped here, or by gunicorn's arbiter: ECHILD)."""
    try:
        found, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return found == pid


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def start_tracker_process(settings: Settings) -> list[Callable[[], None]]:
    """Start the tracker's process when `tracker.enabled`; returns the stop callables."""
    if not settings.tracker.enabled:
        return []
    process = TrackerProcess(settings)
    process.start()
    return [process.stop]


# -- the child's side ------------------------------------------------------------------------
def child_main(stdin: Any = None) -> int:
    """The tracker process: settings from the lifeline, the tracker until told to stop."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s[tracker]: %(message)s",
    )
    lifeline = stdin if stdin is not None else sys.stdin.buffer
    settings: Settings = pickle.load(lifeline)  # noqa: S301 - our own parent's pipe
    # Read the rest unbuffered: a thread blocked inside a buffered reader at exit is fatal
    # to the interpreter ("could not acquire lock for <stdin> at interpreter shutdown").
    fd = lifeline.fileno()
    from webhook.runtime import build_service
    from webhook.tracker import start_for_service

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_lifeline() -> None:
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass
        stop.set()  # end of file: the master is gone (or asked us to stop)

    threading.Thread(target=watch_lifeline, name="tracker-lifeline", daemon=True).start()
    service = build_service(settings)
    stops = start_for_service(service)
    while not stop.wait(1.0):
        pass
    for stop_one in stops:
        stop_one()
    return 0
