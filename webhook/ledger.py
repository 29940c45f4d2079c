"""The circuit breaker's count kept in the cluster: one Lease every replica writes conditionally.

Replicas that do not share an audit store (SQLite, one file per pod) cannot count each other's
rollbacks from it. Before a rollback is written, its slot is booked here: the Lease
`circuit_ledger.namespace/name` carries, in the annotation `auto-rollback/rollbacks`, the
rollbacks booked within the window the caller counts from (at most `max_rollbacks` of them),
and a booking is a PUT conditional on the resourceVersion it was counted from. Two replicas
booking the last slot at once both PUT from the same version; the API server lets one land and
answers the other 409, which reads the Lease again and now finds it full. So the limit is exact
for every replica that books here, whatever store it audits in. (The durable gate counts from
circuit_window plus max_clock_skew back: each replica prunes by its own clock.)

A slot is one read of one Deployment (`namespace/name/resourceVersion`), as the durable gate
counts open intents: writes conditional on one resourceVersion land once at most, so decisions
made from the same read join one slot, each names itself in it, and it counts from the latest.
A write that met a 409 or failed for certain releases its decision's name (so does the
reconciler, for a write it proves never landed); a slot nobody names any more is removed. A slot
whose write is unsettled stays booked (never fewer counted than were written).

Bookings and releases of one process are batched: while one PUT is in flight, the others queue,
and the next PUT carries them all, releases first, so a storm's rollbacks cost one request each
at most and meet one another's 409s only across processes. The Lease as our last PUT left it is
kept and written over conditionally; a refusal, which writes nothing, is always counted from a
fresh GET. A 409 or 404 (the Lease deleted) reads it again; 409 after 409 ends as Transient.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from webhook import contract, jsontext
from webhook.kube import Cluster, Conflict, KubeError, NotFound, Transient
from webhook.revisions import parse_k8s_time
from webhook.views import Obj

log = logging.getLogger(__name__)

__all__ = [
    "Book",
    "ClockOff",
    "Ledger",
    "LedgerUnreadable",
    "Release",
    "Slot",
    "Verdict",
    "apply",
    "parse_slots",
    "slot_key",
]

# PUTs of one batch before giving up: each 409 means another process booked meanwhile. Between
# them a random pause of up to CONFLICT_PAUSE_SECONDS times the attempt, so processes that met
# at one version do not meet again at the next.
MAX_ATTEMPTS = 16
CONFLICT_PAUSE_SECONDS = 0.005
# How far the offset from an answer's Date header may be from the truth: half the header's
# second, and up to half a second of latency between the server writing it and us reading it.
CLOCK_UNCERTAINTY_SECONDS = 1.0


class LedgerUnreadable(KubeError):
    """The Lease's annotation is not a list of slots: nothing can be counted from it."""


class ClockOff(Transient):
    """This process's clock is too far from the API server's to count windows with others:
    nothing is booked (and so nothing written); the payload is answered 503 and sent again."""


@dataclass(frozen=True)
class Slot:
    """One booked rollback: the Deployment read it is conditional on, when, and who names it."""

    key: str
    at: datetime
    ids: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "at": _micro(self.at), "ids": list(self.ids)}

    @cached_property
    def text(self) -> str:
        """The slot as the annotation holds it (made once: a PUT writes every slot again)."""
        return json.dumps(self.as_json(), separators=(",", ":"))


@dataclass(frozen=True)
class Book:
    """Book a slot for `decision_id` unless `limit` slots at or after `since` are booked."""

    key: str
    decision_id: str
    at: datetime
    since: datetime
    limit: int


@dataclass(frozen=True)
class Release:
    """`decision_id`'s write did not happen: it no longer names its slot."""

    key: str
    decision_id: str


@dataclass(frozen=True)
class Verdict:
    """A booking's answer: `admitted`, and the slots counted in its window besides its own."""

    admitted: bool
    counted: int


Change = Book | Release


def slot_key(namespace: str, deployment: str, resource_version: str) -> str:
    return f"{namespace}/{deployment}/{resource_version}"


def parse_slots(text: str | None) -> list[Slot]:
    """The annotation's slots (absent: none); LedgerUnreadable when it is not a list of them."""
    if not text:
        return []
    try:
        slots = [_slot(item) for item in _list(jsontext.loads(text, where="the annotation"))]
    except ValueError as exc:
        raise LedgerUnreadable(
            f"annotation {contract.ANNOTATION_LEDGER} is not a list of booked rollbacks "
            f"({exc}); until it is fixed or the Lease deleted, no rollback can be counted",
            reason="LedgerUnreadable",
        ) from exc
    return slots


def _list(document: Any) -> list[Any]:
    if not isinstance(document, list):
        raise ValueError(f"a {type(document).__name__}, not a list")
    return document


def _slot(item: Any) -> Slot:
    """One slot of the annotation, as anyone who may edit the Lease could have written it."""
    if not isinstance(item, dict) or not {"key", "at", "ids"} <= set(item):
        raise ValueError(f"not a slot: {str(item)[:80]}")
    key, at, ids = item["key"], item["at"], item["ids"]
    when = parse_k8s_time(at) if isinstance(at, str) else None
    if not isinstance(key, str) or when is None or not isinstance(ids, list):
        raise ValueError(f"not a slot: {str(item)[:80]}")
    if not all(isinstance(i, str) for i in ids):
        raise ValueError(f"not a slot: {str(item)[:80]}")
    return Slot(key=key, at=when, ids=tuple(ids))


def apply(slots: Sequence[Slot], changes: Sequence[Change]) -> tuple[list[Slot], list[Any]]:
    """The slots after `changes`, and each change's answer in their order (a Verdict for a Book,
    None for a Release). Releases go first: a slot freed in the same PUT is free for a booking
    in it. Each booking counts the slots of its own window; slots are dropped only once every
    booking of the batch has counted, and only those older than every booking's window (a
    booking counted first, from a later clock, must not drop a slot another one still counts).
    Pure: the Lease's PUT is what makes it atomic."""
    current = list(slots)
    answers: list[Any] = [None] * len(changes)
    order = sorted(range(len(changes)), key=lambda i: not isinstance(changes[i], Release))
    for index in order:
        change = changes[index]
        if isinstance(change, Release):
            current = [
                replace(s, ids=tuple(i for i in s.ids if i != change.decision_id))
                if s.key == change.key
                else s
                for s in current
            ]
            current = [s for s in current if s.ids]
            continue
        live = [s for s in current if s.at >= change.since]
        same = next((s for s in live if s.key == change.key), None)
        if same is not None:
            # The same read of the same Deployment: at most one of its writes lands, and the
            # slot counts from the latest of them (an earlier one may yet be released).
            joined = replace(
                same,
                at=max(same.at, change.at),
                ids=same.ids if change.decision_id in same.ids else (*same.ids, change.decision_id),
            )
            current = [joined if s is same else s for s in current]
            answers[index] = Verdict(admitted=True, counted=len(live) - 1)
        elif len(live) < change.limit:
            answers[index] = Verdict(admitted=True, counted=len(live))
            # A slot of the same read from before this window is this booking's now.
            current = [s for s in current if s.key != change.key]
            current.append(Slot(key=change.key, at=change.at, ids=(change.decision_id,)))
        else:
            answers[index] = Verdict(admitted=False, counted=len(live))
    windows = [c.since for c in changes if isinstance(c, Book)]
    if windows:
        oldest = min(windows)
        current = [s for s in current if s.at >= oldest]
    return current, answers


@dataclass
class _Waiting:
    change: Change
    answer: Any = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class Ledger:
    """The Lease `namespace/name` through `cluster`; `book` and `release` as above."""

    cluster: Cluster
    namespace: str
    name: str
    # Settings.max_clock_skew: a process whose clock may be more than half of it off the API
    # server's books nothing (the Date header's second and the answer's latency counted in).
    max_clock_skew: float = 300.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    # 409s met so far (other processes booking at the same time), for tests and logs.
    conflicts: int = field(default=0, init=False)
    # The Lease as our last PUT left it, and its slots (not parsed again from it).
    _lease: Obj | None = field(default=None, init=False, repr=False)
    _slots: list[Slot] = field(default_factory=list, init=False, repr=False)
    _queue: list[_Waiting] = field(default_factory=list, init=False, repr=False)
    _busy: bool = field(default=False, init=False, repr=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)

    @property
    def what(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    def book(self, booking: Book) -> Verdict:
        """Book a slot (KubeError when the Lease cannot be read or written: nothing booked
        for certain, so the caller writes nothing)."""
        answer: Verdict = self._submit(booking)
        return answer

    def release(self, decision_id: str, key: str) -> None:
        """Free `decision_id`'s name on its slot; a failure is logged and the slot stays booked
        (counted until the window passes it: never fewer than were written)."""
        try:
            self._submit(Release(key=key, decision_id=decision_id))
        except KubeError as exc:
            log.warning("%s: could not release the slot of %s: %s", self.what, decision_id, exc)

    def slots(self) -> list[Slot]:
        """The slots as the Lease holds them now (one GET)."""
        try:
            lease = self.cluster.get_lease(self.namespace, self.name)
        except NotFound:
            return []
        return parse_slots(_annotation(lease))

    def problem(self) -> str | None:
        """Why no booking can be made now, or None: for /readyz (one GET, two when absent)."""
        try:
            lease = self.cluster.get_lease(self.namespace, self.name)
        except NotFound:  # the first booking creates it, if its namespace is there
            try:
                self.cluster.get_namespace(self.namespace)
            except NotFound:
                return (
                    f"circuit ledger: namespace {self.namespace!r} (circuit_ledger.namespace) "
                    "does not exist: no rollback can be booked"
                )
            except KubeError:
                pass  # reading namespaces is not granted: say what is known
            return self._clock_problem()  # the 404 had a Date too
        except KubeError as exc:
            return f"circuit ledger: cannot read {self.what}: {exc}"
        try:
            parse_slots(_annotation(lease))
        except LedgerUnreadable as exc:
            return f"circuit ledger: {self.what}: {exc}"
        return self._clock_problem()

    def _clock_problem(self) -> str | None:
        try:
            self._check_clock()
        except ClockOff as exc:
            return f"circuit ledger: {self.what}: {exc}"
        return None

    def _check_clock(self) -> None:
        """ClockOff when this process's clock may be off the API server's by more than half of
        max_clock_skew: every process that books is then within max_clock_skew of every other,
        the bound the windows are counted with. The offset is estimated from the Date header
        (whole seconds: its middle is taken) to within CLOCK_UNCERTAINTY_SECONDS, the answer's
        latency included, so that much less is allowed. (No Date read yet: nothing to compare.)"""
        offset = self.cluster.clock_offset()
        if offset is None:
            return
        off = offset.total_seconds()
        bound = self.max_clock_skew / 2 - CLOCK_UNCERTAINTY_SECONDS
        if abs(off) > bound:
            direction = "behind" if off > 0 else "ahead of"
            raise ClockOff(
                f"this process's clock is {abs(off):.0f}s {direction} the API server's (its "
                f"Date header), more than {bound:.0f}s (half of max_clock_skew, less "
                f"{CLOCK_UNCERTAINTY_SECONDS:.0f}s for the header's second and the answer's "
                "latency): no rollback is booked until the clock is set right (NTP)",
                reason="ClockOff",
                unsent=True,
            )

    # -- one PUT for every change queued meanwhile ----------------------------------------------
    def _submit(self, change: Change) -> Any:
        waiting = _Waiting(change)
        with self._cond:
            self._queue.append(waiting)
            while not waiting.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                batch, self._queue = self._queue, []
                self._cond.release()
                try:
                    self._run(batch, waiting)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if waiting.error is not None:
            raise waiting.error
        return waiting.answer

    def _run(self, batch: list[_Waiting], own: _Waiting) -> None:
        try:
            answers = self._write([w.change for w in batch])
        except Exception as exc:  # noqa: BLE001 - handed to every waiter, raised there
            for w in batch:
                w.error, w.done = exc, True
            return
        except BaseException as exc:  # this thread is ending (a timeout, an exit): the others
            for w in batch:  # get an error they can answer with, not the end of their thread
                w.error = exc if w is own else Transient(f"{self.what}: booking interrupted")
                w.done = True
            raise
        for w, answer in zip(batch, answers, strict=True):
            w.answer, w.done = answer, True

    def _write(self, changes: list[Change]) -> list[Any]:
        for attempt in range(MAX_ATTEMPTS):
            cached = self._lease is not None
            if self._lease is not None:
                lease, before = self._lease, self._slots
            else:
                lease = self._read()
                before = parse_slots(_annotation(lease))
            self._check_clock()  # from the answer just read, or the latest one
            slots, answers = apply(before, changes)
            if slots == before:
                # Nothing to write (every booking refused, nothing to release): answered from
                # a fresh read, never from our last write, which others may have changed since.
                self._lease = None
                if cached:
                    continue
                return answers
            body = _with_slots(lease, slots)
            try:
                if "resourceVersion" in lease["metadata"]:
                    self._lease = self.cluster.replace_lease(body)
                else:
                    self._lease = self.cluster.create_lease(body)
                self._slots = slots
            except (Conflict, NotFound):
                # Another process wrote (or created) it, or it was deleted: count again.
                self._lease = None
                self.conflicts += 1
                self.sleep(random.uniform(0, CONFLICT_PAUSE_SECONDS * (attempt + 1)))  # noqa: S311
                continue
            except KubeError:
                self._lease = None
                raise
            return answers
        # Transient: the payload is answered 503 and Alertmanager sends it again.
        raise Transient(
            f"{self.what}: {MAX_ATTEMPTS} writes in a row met a 409 Conflict or a 404 "
            "(other processes booking at the same time, or the Lease deleted each time)",
            status=409,
            reason="Conflict",
        )

    def _read(self) -> Obj:
        try:
            return self.cluster.get_lease(self.namespace, self.name)
        except NotFound:
            return {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "labels": {"app.kubernetes.io/name": "rollback-webhook"},
                },
                "spec": {},
            }


def _micro(when: datetime) -> str:
    """RFC 3339 in UTC with microseconds: a slot leaves the window when its decision's does."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _annotation(lease: Obj) -> str | None:
    value = (lease.get("metadata", {}).get("annotations") or {}).get(contract.ANNOTATION_LEDGER)
    return value if isinstance(value, str) else None


def _with_slots(lease: Obj, slots: list[Slot]) -> Obj:
    meta = dict(lease["metadata"])
    annotations = dict(meta.get("annotations") or {})
    annotations[contract.ANNOTATION_LEDGER] = "[" + ",".join(s.text for s in slots) + "]"
    meta["annotations"] = annotations
    return {**lease, "metadata": meta}
