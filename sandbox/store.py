"""The sandbox's object store: thread-safe, in memory, with Kubernetes bookkeeping.

Every write takes `Store.lock` (re-entrant), assigns the next value of one global
resourceVersion counter, records a `Change` for watches and calls the subscribers
synchronously with the lock still held, so the controller's reconcile happens inside the
same write and a reader never sees a Deployment without its ReplicaSets.

Objects are indexed by namespace, by the uids their ownerReferences name and by label, so what
a controller reads inside a write (a Deployment's ReplicaSets, a ReplicaSet's pods, an owner's
dependents) and a namespaced list by an equality label selector (what kubectl and the receiver
send) cost what they return, not what else the namespace holds.

A stored object is never changed in place: every write stores a new one. So the history a
watch replays holds the stored objects themselves, and the controllers inside a write read
them without copying (`peek`, `copy=False`) and hand over what they built (`adopt`); every
other reader gets its own deep copy, so no client can change what is stored.
"""

from __future__ import annotations

import builtins
import copy
import itertools
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Only "namespaces" is cluster-scoped among the resources the sandbox serves.
CLUSTER_SCOPED = frozenset({"namespaces"})

# Watches older than this many writes get 410 Gone, as an apiserver's watch cache does.
HISTORY_LIMIT = 20000


class Conflict(Exception):
    """A write carried a stale metadata.resourceVersion (HTTP 409 Conflict)."""


class NotFound(Exception):
    """The named object does not exist (HTTP 404 NotFound)."""


class AlreadyExists(Exception):
    """An object with that name already exists (HTTP 409 AlreadyExists)."""


class Expired(Exception):
    """A watch asked for a resourceVersion older than the kept history (HTTP 410 Gone)."""


@dataclass(frozen=True)
class Change:
    """One committed write, as watches and subscribers see it."""

    type: str  # "ADDED" | "MODIFIED" | "DELETED"
    resource: str  # plural resource name, e.g. "deployments"
    # The object after the write: the stored object itself, not a copy, so treat it as
    # read-only (the store never changes a stored object in place; a write stores a new one).
    obj: dict[str, Any]
    # The object before a MODIFIED write (watches with selectors need it to turn a change
    # that leaves or enters the selection into DELETED or ADDED). Treat as read-only.
    old: dict[str, Any] | None = None


# The exact types of the immutable leaves of a JSON-shaped value.
_ATOMS = frozenset({str, int, float, bool, type(None)})


def clone(value: Any) -> Any:
    """A deep copy of a JSON-shaped value, several times faster than copy.deepcopy (the
    controller lists objects inside every write, so copying dominates a write's cost)."""
    # Fast path on exact types, leaves not even called for (most of a value is leaves);
    # anything else (subclasses included) as the isinstance tests below have always done.
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _ATOMS else clone(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _ATOMS else clone(item) for item in value]
    if kind in _ATOMS:
        return value
    if isinstance(value, dict):
        return {key: clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clone(item) for item in value]
    if isinstance(value, str | int | float | bool | None):
        return value
    return copy.deepcopy(value)


def utc_now() -> datetime:
    """The wall clock in UTC (the default clock of a Store)."""
    return datetime.now(UTC)


def format_time(when: datetime) -> str:
    """Kubernetes' metav1.Time wire format: RFC 3339 in UTC with second precision."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse a metav1.Time string written by `format_time` (or any RFC 3339 time)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


Key = tuple[str, str, str]  # (resource, namespace or "", name)


class Store:
    """In-memory objects keyed by resource, namespace and name, with watchable history."""

    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.lock = threading.RLock()
        self._clock = clock
        # resource -> (namespace or "", name) -> object; per resource so a list sorts only
        # the objects of its own resource.
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        # (resource, namespace or "") -> name -> object: a namespaced list reads only its own.
        self._in_namespace: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        # owner uid -> keys of the objects with an ownerReference to it (in write order).
        self._owned: dict[str, dict[Key, None]] = {}
        # (resource, namespace or "") -> names of objects without a controller reference
        # (what a controller may adopt).
        self._uncontrolled: dict[tuple[str, str], dict[str, None]] = {}
        # (resource, namespace or "", label key, label value) -> names of the objects with it.
        self._labelled: dict[tuple[str, str, str, str], dict[str, None]] = {}
        self._rv = 0
        self._history: deque[tuple[int, Change]] = deque(maxlen=HISTORY_LIMIT)
        self._subscribers: list[Callable[[Change], None]] = []
        self._local = threading.local()
        # A separate condition so watchers can wait without holding the store lock.
        self._changed = threading.Condition(threading.Lock())

    # ---- time -------------------------------------------------------------------------
    def now(self) -> datetime:
        """The current time, or the `as_of` time when the calling thread set one."""
        override: datetime | None = getattr(self._local, "as_of", None)
        return override if override is not None else self._clock()

    @contextmanager
    def as_of(self, when: datetime | None) -> Iterator[None]:
        """Within this block (this thread only) timestamps written use `when`."""
        previous = getattr(self._local, "as_of", None)
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        self._local.as_of = when if when is not None else previous
        try:
            yield
        finally:
            self._local.as_of = previous

    # ---- reads ------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        """The latest committed resourceVersion."""
        with self.lock:
            return self._rv

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        """A deep copy of one object; NotFound names what was missing."""
        with self.lock:
            obj = self._lookup(_key(resource, namespace, name))
            if obj is None:
                raise _not_found(resource, namespace, name)
            return clone(obj)

    def peek(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object itself (None when missing), for a reader inside the store lock
        that only reads it: it must not be changed (copy it with `clone` to write it back),
        and a later write replaces it rather than changing it."""
        with self.lock:
            return self._lookup(_key(resource, namespace, name))

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        where: Callable[[dict[str, Any]], bool] | None = None,
        label: tuple[str, str] | None = None,
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """Copies of all objects of `resource` (in `namespace` when given, and for which
        `where(obj)` holds: it sees the stored object and must not change it), sorted by
        namespace then name, and the resourceVersion the list is consistent with. `label`
        (key, value), which every wanted object carries, lets a namespaced list read only
        those (`where` still decides)."""
        with self.lock:
            if namespace is not None and label is not None:
                named = self._in_namespace.get((resource, namespace), {})
                chosen = self._labelled.get((resource, namespace, *label), {})
                found = (named[name] for name in sorted(chosen))
            elif namespace is not None:
                named = self._in_namespace.get((resource, namespace), {})
                found = (named[name] for name in sorted(named))
            else:
                objects = self._objects.get(resource, {})
                found = (objects[key] for key in sorted(objects))
            items = [clone(obj) for obj in found if where is None or where(obj)]
            return items, str(self._rv)

    def owned_by(
        self, uid: str, resource: str, *, controller: bool = False, copy: bool = True
    ) -> builtins.list[dict[str, Any]]:
        """Copies of the `resource` objects with an ownerReference to `uid` (only where that
        reference is the controller one, with `controller`), sorted by namespace then name.
        Costs what it returns: an index, not a scan. Without `copy`, the stored objects
        themselves, read-only as `peek`'s."""
        with self.lock:
            keys = sorted(key for key in self._owned.get(uid, {}) if key[0] == resource)
            items = (self._objects[resource][key[1:]] for key in keys)
            found = [obj for obj in items if not controller or (_controller_uid(obj) == uid)]
            return [clone(obj) for obj in found] if copy else found

    def uncontrolled(
        self, resource: str, namespace: str, *, copy: bool = True
    ) -> builtins.list[dict[str, Any]]:
        """Copies of the `resource` objects in `namespace` that no controller owns (what a
        controller may adopt), sorted by name. Without `copy`, the stored objects
        themselves, read-only as `peek`'s."""
        with self.lock:
            names = self._uncontrolled.get((resource, namespace), {})
            objects = self._objects.get(resource, {})
            found = [objects[(namespace, name)] for name in sorted(names)]
            return [clone(obj) for obj in found] if copy else found

    # ---- writes -----------------------------------------------------------------------
    def create(
        self, resource: str, obj: dict[str, Any], *, dry_run: bool = False, adopt: bool = False
    ) -> dict[str, Any]:
        """Store a new object: sets uid, creationTimestamp, resourceVersion and (for
        objects with a spec) generation 1; a generateName gets a random suffix.
        With `dry_run`, return what would be stored (no resourceVersion) and store nothing.
        With `adopt`, `obj` itself is stored and returned, not copies: the caller gives it up
        (nothing may change it or its parts afterwards) and reads the result only."""
        with self.lock:
            new = obj if adopt else clone(obj)
            meta = new.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            name = meta.get("name")
            if not name:
                raise ValueError(f"{resource}: metadata.name or generateName is required")
            namespace = None if resource in CLUSTER_SCOPED else meta.get("namespace")
            if resource not in CLUSTER_SCOPED and not namespace:
                raise ValueError(f'{resource} "{name}": metadata.namespace is required')
            key = _key(resource, namespace, name)
            if self._lookup(key) is not None:
                raise AlreadyExists(f'{resource} "{name}" already exists')
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = format_time(self.now())
            meta.pop("deletionTimestamp", None)
            if "spec" in new:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            if dry_run:
                meta.pop("resourceVersion", None)
                return new
            return self._commit("ADDED", resource, key, new, adopt=adopt)

    def update(
        self,
        resource: str,
        obj: dict[str, Any],
        *,
        check_rv: bool = True,
        dry_run: bool = False,
        adopt: bool = False,
    ) -> dict[str, Any]:
        """Replace a whole object. With `check_rv`, a metadata.resourceVersion that is not
        the stored one raises Conflict (an empty one is accepted, as PUT without a
        precondition is). generation grows when the spec changed; uid and
        creationTimestamp are kept. With `dry_run`, return the result and store nothing.
        `adopt` as for `create`."""
        with self.lock:
            new = obj if adopt else clone(obj)
            meta = new.setdefault("metadata", {})
            name = meta.get("name", "")
            namespace = None if resource in CLUSTER_SCOPED else meta.get("namespace")
            key = _key(resource, namespace, name)
            current = self._lookup(key)
            if current is None:
                raise _not_found(resource, namespace, name)
            old_meta = current["metadata"]
            sent_rv = meta.get("resourceVersion")
            if check_rv and sent_rv and str(sent_rv) != old_meta["resourceVersion"]:
                raise Conflict(
                    f'Operation cannot be fulfilled on {resource} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again"
                )
            meta["uid"] = old_meta["uid"]
            meta["creationTimestamp"] = old_meta["creationTimestamp"]
            if "spec" in new or "generation" in old_meta:
                generation = int(old_meta.get("generation", 1))
                if new.get("spec") != current.get("spec"):
                    generation += 1
                meta["generation"] = generation
            if dry_run:
                meta["resourceVersion"] = old_meta["resourceVersion"]
                return new
            if _unchanged(new, current):
                # As the apiserver's storage does: a write that changes nothing is not made
                # (no new resourceVersion, no watch event; kubectl says "(no change)").
                return current if adopt else clone(current)
            return self._commit("MODIFIED", resource, key, new, old=current, adopt=adopt)

    def delete(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        """Remove an object and return it as last stored (with a new resourceVersion,
        as the apiserver's DELETED watch event carries)."""
        with self.lock:
            key = _key(resource, namespace, name)
            current = self._lookup(key)
            if current is None:
                raise _not_found(resource, namespace, name)
            # A new top level and metadata for the new resourceVersion; the rest is shared
            # with `current`, which nothing changes.
            gone = dict(current, metadata=dict(current["metadata"]))
            return self._commit("DELETED", resource, key, gone)

    def _commit(
        self,
        kind: str,
        resource: str,
        key: Key,
        obj: dict[str, Any],
        *,
        old: dict[str, Any] | None = None,
        adopt: bool = False,
    ) -> dict[str, Any]:
        self._rv += 1
        rv = self._rv
        obj["metadata"]["resourceVersion"] = str(rv)
        objects = self._objects.setdefault(key[0], {})
        previous = objects.get(key[1:])
        if previous is not None:
            self._unindex(key, previous)
        if kind == "DELETED":
            del objects[key[1:]]
        else:
            objects[key[1:]] = obj
            self._index(key, obj)
        # Neither `obj` nor `old` is copied: a stored object is never changed in place (every
        # write stores a new one), and readers outside the store get copies.
        change = Change(type=kind, resource=resource, obj=obj, old=old)
        self._history.append((rv, change))
        with self._changed:
            self._changed.notify_all()
        for callback in list(self._subscribers):
            callback(change)
        return obj if adopt else clone(obj)

    def _lookup(self, key: Key) -> dict[str, Any] | None:
        return self._objects.get(key[0], {}).get(key[1:])

    def _index(self, key: Key, obj: dict[str, Any]) -> None:
        resource, namespace, name = key
        self._in_namespace.setdefault((resource, namespace), {})[name] = obj
        for uid in _owner_uids(obj):
            self._owned.setdefault(uid, {})[key] = None
        if _controller_uid(obj) is None:
            self._uncontrolled.setdefault((resource, namespace), {})[name] = None
        for pair in _labels(obj):
            self._labelled.setdefault((resource, namespace, *pair), {})[name] = None

    def _unindex(self, key: Key, obj: dict[str, Any]) -> None:
        resource, namespace, name = key
        _discard(self._in_namespace, (resource, namespace), name)
        for uid in _owner_uids(obj):
            _discard(self._owned, uid, key)
        _discard(self._uncontrolled, (resource, namespace), name)
        for pair in _labels(obj):
            _discard(self._labelled, (resource, namespace, *pair), name)

    # ---- watching ---------------------------------------------------------------------
    def subscribe(self, callback: Callable[[Change], None]) -> None:
        """Call `callback` synchronously after every committed write, lock held."""
        with self.lock:
            self._subscribers.append(callback)

    def changes_since(self, resource_version: int) -> builtins.list[Change]:
        """Every change with a resourceVersion above `resource_version`, oldest first.
        Raises Expired when part of that range has left the bounded history."""
        with self.lock:
            if resource_version >= self._rv:
                return []
            oldest_kept = self._history[0][0] if self._history else self._rv + 1
            if resource_version + 1 < oldest_kept:
                raise Expired(f"too old resource version: {resource_version} ({oldest_kept - 1})")
            # resourceVersions in the history are consecutive, so the start is an offset.
            start = resource_version + 1 - oldest_kept
            return [change for _, change in itertools.islice(self._history, start, None)]

    def wait_for_change(self, after_rv: int, timeout: float) -> bool:
        """Block until the resourceVersion passes `after_rv` or `timeout` seconds pass;
        True when there is something new."""
        with self._changed:
            return self._changed.wait_for(lambda: self._rv > after_rv, timeout=timeout)


def _owner_uids(obj: dict[str, Any]) -> set[str]:
    refs = obj["metadata"].get("ownerReferences") or []
    return {str(ref["uid"]) for ref in refs if isinstance(ref, dict) and ref.get("uid")}


def _labels(obj: dict[str, Any]) -> builtins.list[tuple[str, str]]:
    labels = obj["metadata"].get("labels") or {}
    if not isinstance(labels, dict):
        return []
    return [(str(key), str(value)) for key, value in labels.items()]


def _controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _discard(index: dict[Any, dict[Any, Any]], bucket: Any, member: Any) -> None:
    members = index.get(bucket)
    if members is not None:
        members.pop(member, None)
        if not members:
            del index[bucket]


def _not_found(resource: str, namespace: str | None, name: str) -> NotFound:
    where = f" in namespace {namespace!r}" if namespace else ""
    return NotFound(f'{resource} "{name}" not found{where}')


def _unchanged(new: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether `new` is `current` but for the resourceVersion it was sent with."""
    if new.keys() != current.keys():
        return False
    meta = dict(new["metadata"])
    meta["resourceVersion"] = current["metadata"]["resourceVersion"]
    return meta == current["metadata"] and all(new[k] == current[k] for k in new if k != "metadata")


def _key(resource: str, namespace: str | None, name: str) -> Key:
    return (resource, "" if resource in CLUSTER_SCOPED else (namespace or ""), name)
