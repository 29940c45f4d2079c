"""What `serve` needs before it serves, checked all at once (`check-config` and `serve` share it).

Offline checks, always: the credential files, a kubeconfig and context that load (or a pod's
service account), a writable audit location. Online checks, asked for (`check-config
--connect`): the Kubernetes API answers with those credentials, the Leases' namespaces exist
(the tracker's, the circuit ledger's), Prometheus answers a query. Every problem is one line that
starts with the key it is about, so a file with five mistakes is fixed in one round, not five.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from webhook.config import ConfigError, Settings


@dataclass(frozen=True)
class Report:
    """The problems found (one line each, key first) and what was checked."""

    problems: tuple[str, ...]
    checked: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _credentials(settings: Settings) -> list[str]:
    from webhook.auth import Credentials

    try:
        Credentials.load(settings)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def _writable_file(path: Path, *, key: str) -> list[str]:
    """Can `path` be created (or appended to) without changing anything that exists?"""
    if path.exists():
        if path.is_dir():
            return [f"{key}: {path} is a directory, not a file"]
        try:
            with path.open("ab"):
                pass
        except OSError as exc:
            return [f"{key}: cannot write {path} ({exc.strerror})"]
        return []
    # The store creates missing parent directories: the nearest existing one must take files.
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return [f"{key}: cannot create {path}: {ancestor} is not a directory"]
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        return [f"{key}: cannot create {path}: {ancestor} takes no files ({exc.strerror})"]
    return []


def _readable_file(path: str, *, key: str) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return [f"{key}: cannot read {path} ({exc.strerror})"]
    return [] if text.strip() else [f"{key}: {path} is empty"]


def _audit(settings: Settings) -> list[str]:
    # The PostgreSQL backend (audit.backend / audit.dsn_file) reads its DSN from a file;
    # SQLite writes a file. getattr: the backend keys are newer than this check.
    backend = str(getattr(settings.audit, "backend", "sqlite"))
    if backend != "sqlite":
        dsn_file = getattr(settings.audit, "dsn_file", None)
        if dsn_file:
            return _readable_file(str(dsn_file), key="audit.dsn_file")
        return []
    if settings.audit.path == ":memory:":
        return []
    return _writable_file(Path(settings.audit.path), key="audit.path")


def _kubernetes(
    settings: Settings, *, kubeconfig: str | None = None, context: str | None = None
) -> tuple[list[str], Any | None]:
    from webhook.kube import api_client_from_settings

    try:
        api = api_client_from_settings(
            kubeconfig=kubeconfig or settings.kubernetes.kubeconfig,
            context=context or settings.kubernetes.context,
        )
    except ConfigError as exc:
        return list(exc.problems), None
    return [], api


def _connect_kubernetes(settings: Settings, api: Any) -> list[str]:
    from webhook.kube import Cluster, KubeError, NotFound

    cluster = Cluster(api, timeout_seconds=settings.kubernetes.timeout_seconds)
    try:
        cluster.version()
    except KubeError as exc:
        return [f"kubernetes: the API server does not answer: {exc}"]
    # The Leases' namespaces: the tracker's, and the circuit ledger's where it may be on (in a
    # pod with SQLite: check-config does not know where serve will run).
    wanted = []
    if settings.tracker.enabled:
        wanted.append(("tracker.lease_namespace", settings.tracker.lease_namespace))
    if settings.circuit_ledger.possible(settings.audit):
        wanted.append(("circuit_ledger.namespace", settings.circuit_ledger.namespace))
    keys: dict[str, list[str]] = {}
    for key, namespace in wanted:
        keys.setdefault(namespace, []).append(key)
    problems = []
    for namespace, named in keys.items():
        key = " and ".join(named)
        try:
            cluster.get_namespace(namespace)
        except NotFound:
            problems.append(
                f"{key}: namespace {namespace!r} does not exist: create it "
                f"(kubectl create namespace {namespace})"
            )
        except KubeError as exc:
            if exc.status not in (401, 403):  # the shipped RBAC grants Leases there, not this
                problems.append(f"{key}: cannot read namespace {namespace!r}: {exc}")
    return problems


def _connect_prometheus(settings: Settings, clock: Callable[[], datetime]) -> list[str]:
    from webhook.runtime import build_prometheus

    prometheus = build_prometheus(settings, clock)
    if prometheus is None:
        return []
    try:
        failure = prometheus.reachable()
    finally:
        prometheus.close()
    return [f"prometheus.url: {failure}"] if failure else []


def check(
    settings: Settings,
    *,
    connect: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Report:
    """Every problem `serve` would hit with `settings` (and, with `connect`, the network's)."""
    problems = _credentials(settings)
    problems += _audit(settings)
    kube_problems, api = _kubernetes(settings, kubeconfig=kubeconfig, context=context)
    problems += kube_problems
    checked = ["configuration", "credential files", "audit location", "kubeconfig"]
    if connect:
        checked += ["Kubernetes API"] + (["Prometheus"] if settings.prometheus.url else [])
        if api is not None:
            problems += _connect_kubernetes(settings, api)
        problems += _connect_prometheus(settings, clock)
    return Report(tuple(problems), tuple(checked))
