"""The decision log: one JSON line per decision on stdout, written off the request's thread.

A request only puts its (already serialised) lines on a queue (logging.handlers.QueueHandler);
one writer thread per process takes them off and writes them to whatever sys.stdout is at that
moment. The writer starts on the first line a process logs, so a gunicorn worker forked from a
master that configured the logger gets a writer of its own (a thread does not survive a fork).
Lines are flushed at exit, and `flush()` waits until everything queued so far is written (for a
caller that reads stdout right after a request).

The audit, not this log, is the durable record: a line queued when the process is killed may be
lost, its decision is not.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import sys
import threading
from typing import Any

DECISION_LOG = "rollback_webhook.decision"
FLUSH_SECONDS = 10.0


class _StdoutHandler(logging.StreamHandler[Any]):
    """Writes to whatever sys.stdout is when a line is written, not when it was created."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _Listener(logging.handlers.QueueListener):
    """The writer: hands records to the stdout handler; a flush marker is acknowledged."""

    def handle(self, record: logging.LogRecord) -> None:
        done = getattr(record, "flushed", None)
        if isinstance(done, threading.Event):
            for handler in self.handlers:
                handler.flush()
            done.set()
            return
        super().handle(record)


class DecisionQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler whose writer thread belongs to the process that logs."""

    def __init__(self) -> None:
        super().__init__(queue.Queue())
        self._pid: int | None = None
        self._listener: _Listener | None = None
        self._lock = threading.Lock()
        self._output = _StdoutHandler()
        self._output.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if self._pid != os.getpid():
            self._start()
        super().emit(record)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The message is the finished lines: no formatting, no copy of the record.
        return record

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # A fork's copy of the queue may hold the parent's unwritten lines: start empty.
            self.queue = queue.Queue()
            self._listener = _Listener(self.queue, self._output)
            self._listener.start()
            self._pid = os.getpid()
            atexit.register(self.stop)

    def flush(self) -> None:
        """Wait until every line queued before this call is written."""
        if self._pid != os.getpid() or self._listener is None:
            return
        done = threading.Event()
        marker = logging.LogRecord(DECISION_LOG, logging.INFO, "", 0, "", None, None)
        marker.flushed = done
        self.queue.put_nowait(marker)
        done.wait(FLUSH_SECONDS)

    def stop(self) -> None:
        """Write what is queued and end the writer (at exit)."""
        with self._lock:
            listener, self._listener = self._listener, None
            owner, self._pid = self._pid, None
        if listener is not None and owner == os.getpid():
            listener.stop()


def decision_logger() -> logging.Logger:
    """The logger that writes one JSON line per decision to stdout (configured once, lazily)."""
    logger = logging.getLogger(DECISION_LOG)
    if not logger.handlers:
        logger.addHandler(DecisionQueueHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def flush() -> None:
    """Wait until the decision lines logged so far are on stdout."""
    for handler in logging.getLogger(DECISION_LOG).handlers:
        handler.flush()
