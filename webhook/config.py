"""Settings: one YAML file loaded and validated once into frozen dataclasses.

Every key has a default. Unknown keys and bad values stop start-up with a message that names the
key (`ConfigError("namespaces.deny[1]: expected a string")`). Secrets never live in the file: only
paths to files, or environment variables, are read here.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_ENV = "ROLLBACK_WEBHOOK_CONFIG"
RECEIVER_TOKEN_ENV = "ROLLBACK_WEBHOOK_RECEIVER_TOKEN"  # noqa: S105 - a variable name
RECEIVER_PASSWORD_ENV = "ROLLBACK_WEBHOOK_RECEIVER_PASSWORD"  # noqa: S105
ONCALL_TOKENS_ENV = "ROLLBACK_WEBHOOK_ONCALL_TOKENS"

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class ConfigError(ValueError):
    """A configuration problem; the message starts with the offending key."""


def parse_duration(value: object, *, key: str) -> int:
    """Seconds from an integer or a "1h30m", "30m", "90s" string."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration like 30m or seconds, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{key}: must not be negative, got {value}")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        match = _DURATION.match(text)
        if text and match:
            hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
            return hours * 3600 + minutes * 60 + seconds
    raise ConfigError(f"{key}: expected a duration like 30m, 1h or 90s, got {value!r}")


Duration = typing.NewType("Duration", int)  # seconds; accepts "30m" style in YAML


@dataclass(frozen=True)
class Namespaces:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class Server:
    host: str = "0.0.0.0"  # noqa: S104 - a pod serves on all its interfaces
    port: int = 8080
    workers: int = 1
    threads: int = 8
    max_body_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class ReceiverAuth:
    bearer_token_file: str | None = None
    basic_username: str | None = None
    basic_password_file: str | None = None
    allow_unauthenticated: bool = False


@dataclass(frozen=True)
class Auth:
    receiver: ReceiverAuth = field(default_factory=ReceiverAuth)
    oncall_tokens_file: str | None = None


@dataclass(frozen=True)
class Audit:
    path: str = "/var/lib/rollback-webhook/audit.sqlite"
    retention_days: int = 90


@dataclass(frozen=True)
class Kubernetes:
    kubeconfig: str | None = None
    context: str | None = None
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class Prometheus:
    url: str | None = None
    timeout_seconds: float = 5.0
    retries: int = 2
    confirm: bool = True


@dataclass(frozen=True)
class Tracker:
    enabled: bool = True
    resync_seconds: Duration = Duration(60)
    lease_namespace: str = "rollback-webhook"
    lease_name: str = "rollback-webhook-leader"
    lease_duration_seconds: Duration = Duration(15)


class GitOpsHandling(enum.StrEnum):
    """What a rollback does about a GitOps owner (README: GitOps owners)."""

    PAUSE = "pause"
    REFUSE = "refuse"
    IGNORE = "ignore"


@dataclass(frozen=True)
class GitOps:
    """Per owner kind: pause it so the rollback stays, refuse (with the human steps), or ignore.

    Defaults for safety: pause only where it needs no permission beyond the rollback's own
    write (the Flux per-object annotation); refuse where pausing means writing another tool's
    object (Argo CD Applications, HelmReleases: the gitops overlay grants that and turns it on).
    """

    argocd: GitOpsHandling = GitOpsHandling.REFUSE
    flux_kustomization: GitOpsHandling = GitOpsHandling.PAUSE
    flux_helmrelease: GitOpsHandling = GitOpsHandling.REFUSE
    helm: GitOpsHandling = GitOpsHandling.REFUSE
    argocd_instance_label: str = "app.kubernetes.io/instance"
    argocd_namespace: str = "argocd"
    allow_managed_applications: bool = False


@dataclass(frozen=True)
class Settings:
    """The whole configuration. `Settings()` is the documented default."""

    dry_run: bool = False
    require_opt_in: bool = True
    namespaces: Namespaces = field(default_factory=Namespaces)
    recent_rollout_window: Duration = Duration(30 * 60)
    min_healthy_seconds: Duration = Duration(600)
    cooldown: Duration = Duration(3600)
    max_rollbacks: int = 5
    circuit_window: Duration = Duration(3600)
    max_conflict_retries: int = 3
    server: Server = field(default_factory=Server)
    auth: Auth = field(default_factory=Auth)
    audit: Audit = field(default_factory=Audit)
    kubernetes: Kubernetes = field(default_factory=Kubernetes)
    prometheus: Prometheus = field(default_factory=Prometheus)
    tracker: Tracker = field(default_factory=Tracker)
    gitops: GitOps = field(default_factory=GitOps)


_POSITIVE = {
    "max_rollbacks",
    "max_conflict_retries",
    "server.port",
    "server.workers",
    "server.threads",
    "server.max_body_bytes",
    "audit.retention_days",
    "kubernetes.timeout_seconds",
    "prometheus.timeout_seconds",
    "tracker.resync_seconds",
    "tracker.lease_duration_seconds",
}


def _convert(value: Any, hint: Any, *, key: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Duration:
        return Duration(parse_duration(value, key=key))
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _build(hint, value, prefix=key + ".")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], key=key)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return tuple(_convert(v, str, key=f"{key}[{i}]") for i, v in enumerate(value))
    if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        choices = [str(member) for member in hint]
        if value not in choices:
            raise ConfigError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
        return hint(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a non-empty string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")  # pragma: no cover


def _build(cls: type, data: Any, *, prefix: str = "") -> Any:
    where = prefix.rstrip(".") or "the configuration"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{prefix}{key}: unknown key (known here: {known})")
    values = {}
    for name in names:
        if name in data:
            key = prefix + name
            values[name] = _convert(data[name], hints[name], key=key)
            if key in _POSITIVE and values[name] <= 0:
                raise ConfigError(f"{key}: must be greater than 0, got {data[name]!r}")
    return cls(**values)


def settings_from_dict(data: Any) -> Settings:
    """Validate a parsed YAML document into Settings (raises ConfigError naming the key)."""
    settings: Settings = _build(Settings, data)
    for i, ns in enumerate(settings.namespaces.allow):
        if ns in settings.namespaces.deny:
            raise ConfigError(f"namespaces.allow[{i}]: {ns!r} is also in namespaces.deny")
    if settings.gitops.helm == GitOpsHandling.PAUSE:
        raise ConfigError(
            "gitops.helm: pause is not possible (a Helm release has no controller to pause); "
            "use refuse or ignore"
        )
    return settings


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load the file named by `path`, else by $ROLLBACK_WEBHOOK_CONFIG, else the defaults."""
    chosen = path if path is not None else os.environ.get(CONFIG_ENV)
    if not chosen:
        return Settings()
    try:
        text = Path(chosen).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{chosen}: cannot read the configuration file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{chosen}: not valid YAML ({exc})") from exc
    try:
        return settings_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{chosen}: {exc}") from exc


def as_dict(settings: Settings) -> dict[str, Any]:
    """The effective configuration, for the start-up log line and `check-config`."""
    return dataclasses.asdict(settings)
