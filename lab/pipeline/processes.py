"""Child processes of a pipeline (prometheus, alertmanager): free ports, start, readiness, stop.

Each child writes its output to a log file in the pipeline's work directory (shown when it
fails to start). On Linux a child also gets SIGTERM if the thread that started it ends
(PR_SET_PDEATHSIG follows the thread, not the process: start pipelines from the main thread or a
thread that outlives them), so a killed test run or demo leaves no prometheus behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from enum import StrEnum, unique
from pathlib import Path
from typing import IO

from lab.pipeline.configs import PipelineUnavailable

STOP_GRACE_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1
LOG_TAIL_CHARS = 2000

PROMETHEUS_NAMES: tuple[str, ...] = ("prometheus",)
# Debian names the binary prometheus-alertmanager; upstream tarballs call it alertmanager.
ALERTMANAGER_NAMES: tuple[str, ...] = ("prometheus-alertmanager", "alertmanager")


def find_binary(names: Sequence[str]) -> str | None:
    """The first of `names` on PATH, or None."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@unique
class Generation(StrEnum):
    """Which Prometheus and Alertmanager a pipeline runs."""

    # Prometheus 2.42 and Alertmanager 0.25: the Debian packages, on PATH.
    DEBIAN = "debian"
    # Prometheus 3.x and Alertmanager 0.3x: built from their Go modules (lab/go/prometheus3,
    # lab/go/alertmanager) by scripts/build-go.sh into the bench's bin directory.
    CURRENT = "current"


# What scripts/build-go.sh builds for Generation.CURRENT (lab/go/*/targets).
BUILT_PROMETHEUS = "prometheus3"
BUILT_ALERTMANAGER = "alertmanager-0.3x"


def built_bin_dir() -> Path:
    """Where scripts/build-go.sh puts the binaries it builds."""
    default = Path.home() / ".cache" / "rollback-webhook" / "bin"
    return Path(os.environ.get("ROLLBACK_WEBHOOK_BIN", default))


def require_binaries(generation: Generation = Generation.DEBIAN) -> tuple[str, str]:
    """(prometheus, alertmanager) paths; PipelineUnavailable naming what is missing."""
    if generation is Generation.CURRENT:
        found = [built_bin_dir() / name for name in (BUILT_PROMETHEUS, BUILT_ALERTMANAGER)]
        absent = [path for path in found if not os.access(path, os.X_OK)]
        if absent:
            raise PipelineUnavailable(
                "not built: "
                + ", ".join(str(path) for path in absent)
                + " (scripts/build-go.sh prometheus3 alertmanager)"
            )
        return str(found[0]), str(found[1])
    prometheus = find_binary(PROMETHEUS_NAMES)
    alertmanager = find_binary(ALERTMANAGER_NAMES)
    missing = []
    if prometheus is None:
        missing.append("prometheus (Debian package prometheus)")
    if alertmanager is None:
        missing.append("prometheus-alertmanager (Debian package prometheus-alertmanager)")
    if missing or prometheus is None or alertmanager is None:
        raise PipelineUnavailable("not on PATH: " + ", ".join(missing))
    return prometheus, alertmanager


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

    def set_death_signal() -> None:
        # Runs in the child between fork and exec: ask for SIGTERM when the parent dies.
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return set_death_signal


class ManagedProcess:
    """One started binary; `stop()` terminates it (then kills it) and is safe to repeat."""

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                # preexec_fn only calls prctl (async-signal-safe)
                preexec_fn=_die_with_parent(),
            )
        except OSError:
            self._log.close()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        """The end of the child's output, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-LOG_TAIL_CHARS:]

    def wait_ready(self, url: str, *, timeout: float) -> None:
        """Poll `url` until it answers 200; RuntimeError with the log tail if the child exits
        or the time runs out."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self.process.returncode} before it was "
                    f"ready; its output ({self.log_path}):\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} was not ready at {url} after {timeout:.0f}s ({last}); its output "
            f"({self.log_path}):\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL: never leave the child running."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            self._log.close()
