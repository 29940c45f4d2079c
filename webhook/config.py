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
from urllib.parse import urlsplit

import yaml

CONFIG_ENV = "ROLLBACK_WEBHOOK_CONFIG"
RECEIVER_TOKEN_ENV = "ROLLBACK_WEBHOOK_RECEIVER_TOKEN"  # noqa: S105 - a variable name
RECEIVER_PASSWORD_ENV = "ROLLBACK_WEBHOOK_RECEIVER_PASSWORD"  # noqa: S105
ONCALL_TOKENS_ENV = "ROLLBACK_WEBHOOK_ONCALL_TOKENS"

# ASCII digits only: `\d` and str.isdigit() also match other scripts' digits, some of which
# int() refuses ('²').
_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
# The longest duration read anywhere (the file, a Deployment's annotations, the audit's `since`):
# a century. No setting means more, and further than that from now leaves what a datetime and
# the stores hold (a `1000000000000h` cooldown was an OverflowError, a 500, on every alert).
MAX_DURATION_SECONDS = 100 * 365 * 24 * 3600


class ConfigError(ValueError):
    """One or more configuration problems; each starts with the offending key.

    `problems` holds one line per problem (the message joins them with newlines), so a command
    can report every mistake of a file at once instead of the first.
    """

    def __init__(self, *problems: str) -> None:
        self.problems: tuple[str, ...] = problems or ("invalid configuration",)
        super().__init__("\n".join(self.problems))


class DurationTooLong(ConfigError):
    """A duration past MAX_DURATION_SECONDS."""


def parse_duration(value: object, *, key: str) -> int:
    """Seconds from an integer or a "1h30m", "30m", "90s" string."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration like 30m or seconds, got {value!r}")
    seconds: int | None = None
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{key}: must not be negative, got {value}")
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        match = _DURATION.fullmatch(text)
        if re.fullmatch(r"[0-9]+", text):
            seconds = int(text)
        elif text and match:
            hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
            seconds = hours * 3600 + minutes * 60 + secs
    if seconds is None:
        raise ConfigError(f"{key}: expected a duration like 30m, 1h or 90s, got {value!r}")
    if seconds > MAX_DURATION_SECONDS:
        raise DurationTooLong(f"{key}: longer than a century, got {value!r}")
    return seconds


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
    backend: str = "sqlite"  # sqlite | postgresql (webhook/audit)
    path: str = "/var/lib/rollback-webhook/audit.sqlite"
    # postgresql: a file holding the DSN (a mounted Secret), else $ROLLBACK_WEBHOOK_AUDIT_DSN.
    dsn_file: str | None = None
    retention_days: int = 90
    # The reconciler: how often it settles open intents, and how old an intent must be first.
    reconcile_seconds: Duration = Duration(30)
    settle_after_seconds: Duration = Duration(120)


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
    # The label Argo CD tracks by (its `application.instanceLabelKey`); null: Argo CD tracks
    # by annotation only (its default since 3.0), and the label names no owner.
    argocd_instance_label: str | None = "app.kubernetes.io/instance"
    argocd_namespace: str = "argocd"
    # The Application destinations (spec.destination.server or .name) that are this cluster:
    # Argo CD's own names for the cluster it runs in. An Application deploying elsewhere is
    # never paused for a Deployment here.
    argocd_destinations: tuple[str, ...] = ("https://kubernetes.default.svc", "in-cluster")
    allow_managed_applications: bool = False
    # A HelmRelease without status.inventory (helm-controllers before it) may be paused when
    # its latest release is the Deployment's namespace and meta.helm.sh/release-name: weaker.
    helmrelease_latest_release: bool = False


@dataclass(frozen=True)
class ClusterScope:
    """Which cluster this receiver serves, for one Alertmanager shared by several clusters:
    an alert whose `label` label names another cluster than `name` is skipped (wrong_cluster);
    with `require_label`, so is an alert without that label."""

    name: str | None = None
    label: str = "cluster"
    require_label: bool = False


class LedgerMode(enum.StrEnum):
    """Whether the circuit breaker books every rollback in a Lease (docs/audit.md)."""

    # On in a pod on its service account with audit.backend sqlite: replicas then share no store
    # to count in. With a kubeconfig (the sandbox, a laptop, a pod told to use one) it is off.
    AUTO = "auto"
    ON = "on"
    OFF = "off"


@dataclass(frozen=True)
class CircuitLedger:
    """The Lease the circuit breaker books rollbacks in, so its limit is exact across replicas
    that do not share an audit store."""

    mode: LedgerMode = LedgerMode.AUTO
    namespace: str = "rollback-webhook"
    name: str = "rollback-webhook-rollbacks"

    def enabled(self, audit: Audit, *, in_pod: bool) -> bool:
        if self.mode == LedgerMode.AUTO:
            return in_pod and audit.backend == "sqlite"
        return self.mode == LedgerMode.ON

    def possible(self, audit: Audit) -> bool:
        """Whether it may be on, in a pod or not (for checks made before connecting)."""
        return self.mode == LedgerMode.ON or (
            self.mode == LedgerMode.AUTO and audit.backend == "sqlite"
        )


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
    circuit_ledger: CircuitLedger = field(default_factory=CircuitLedger)
    max_conflict_retries: int = 3
    # How far an alert's startsAt may lie ahead of this clock (alert_from_future beyond it).
    max_clock_skew: Duration = Duration(300)
    cluster: ClusterScope = field(default_factory=ClusterScope)
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
    "audit.reconcile_seconds",
    "audit.settle_after_seconds",
    "kubernetes.timeout_seconds",
    "prometheus.timeout_seconds",
    "tracker.resync_seconds",
    "tracker.lease_duration_seconds",
}


# Upper bounds, where a value past them fails later (a port past 65535 is an OverflowError).
_MAXIMUM = {"server.port": 65535}

# Quoted YAML booleans ("false") are strings: say how to write them instead of only refusing.
_BOOLEAN_WORDS = {
    "true": "true",
    "false": "false",
    "yes": "true",
    "no": "false",
    "on": "true",
    "off": "false",
}

# The least max_clock_skew the circuit ledger can check a clock against (webhook.ledger: the API
# server's Date header counts whole seconds, and the answer's latency adds to that).
MIN_LEDGER_CLOCK_SKEW = 10
# Rollbacks the circuit ledger can hold: its Lease's annotations are limited to 256 KiB, and a
# booked rollback takes about 120 bytes of them, up to about 420 with the longest namespace and
# Deployment names.
MAX_LEDGER_ROLLBACKS = 600

# A Kubernetes namespace name (RFC 1123 label): the Lease lives there.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A Prometheus label name: what cluster.label names.
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _convert(value: Any, hint: Any, *, key: str, problems: list[str]) -> Any:
    origin = typing.get_origin(hint)
    if hint is Duration:
        return Duration(parse_duration(value, key=key))
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _build(hint, value, prefix=key + ".", problems=problems)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], key=key, problems=problems)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return tuple(
            _convert(v, str, key=f"{key}[{i}]", problems=problems) for i, v in enumerate(value)
        )
    if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        choices = [str(member) for member in hint]
        if value not in choices:
            raise ConfigError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
        return hint(value)
    if hint is bool:
        if isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS:
            word = _BOOLEAN_WORDS[value.strip().lower()]
            raise ConfigError(
                f"{key}: expected true or false, got the string {value!r}: "
                f"write {word} without quotes"
            )
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


def _build(cls: type, data: Any, *, prefix: str, problems: list[str]) -> Any:
    """`cls` from `data`; each bad value is added to `problems` and left at its default, so one
    pass finds every mistake and the rest of the file can still be checked."""
    where = prefix.rstrip(".") or "the configuration"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a mapping, got {type(data).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    problems.extend(
        f"{prefix}{key}: unknown key (known here: {', '.join(sorted(names))})"
        for key in data
        if key not in names
    )
    values = {}
    for name in [f.name for f in dataclasses.fields(cls)]:
        if name not in data:
            continue
        key = prefix + name
        try:
            value = _convert(data[name], hints[name], key=key, problems=problems)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if key in _POSITIVE and value <= 0:
            problems.append(f"{key}: must be greater than 0, got {data[name]!r}")
        elif key in _MAXIMUM and value > _MAXIMUM[key]:
            problems.append(f"{key}: must be at most {_MAXIMUM[key]}, got {data[name]!r}")
        else:
            values[name] = value
    return cls(**values)


def settings_from_dict(data: Any) -> Settings:
    """Validate a parsed YAML document into Settings (raises ConfigError naming the key)."""
    settings, problems = settings_and_problems(data)
    if problems:
        raise ConfigError(*problems)
    return settings


def settings_and_problems(data: Any) -> tuple[Settings, tuple[str, ...]]:
    """Every problem of a parsed document, with Settings where each bad value is its default
    (so `check-config` can go on to check the files and the cluster the rest names)."""
    problems: list[str] = []
    settings: Settings = _build(Settings, data, prefix="", problems=problems)
    problems.extend(
        f"namespaces.allow[{i}]: {ns!r} is also in namespaces.deny"
        for i, ns in enumerate(settings.namespaces.allow)
        if ns in settings.namespaces.deny
    )
    problems.extend(_form_problems(settings))
    return settings, tuple(problems)


def _form_problems(settings: Settings) -> list[str]:
    """Values of the right type in a form `serve` would still fail on."""
    problems = []
    url = settings.prometheus.url
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(
                f"prometheus.url: expected http(s)://host[:port][/path], got {url!r}"
                + (f" (try http://{url})" if "://" not in url else "")
            )
        else:
            try:
                parts.port  # noqa: B018 - raises ValueError for a port out of range
            except ValueError:
                problems.append(f"prometheus.url: the port of {url!r} is not a valid port")
    if settings.prometheus.retries < 0:
        retries = settings.prometheus.retries
        problems.append(f"prometheus.retries: must not be negative, got {retries}")
    if not _DNS_LABEL.match(settings.tracker.lease_namespace):
        problems.append(
            f"tracker.lease_namespace: {settings.tracker.lease_namespace!r} is not a valid "
            "namespace name (lowercase letters, digits and '-')"
        )
    ledger = settings.circuit_ledger
    for key, value in (("namespace", ledger.namespace), ("name", ledger.name)):
        if not _DNS_LABEL.match(value) or len(value) > 63:
            problems.append(
                f"circuit_ledger.{key}: {value!r} is not a valid name "
                "(lowercase letters, digits and '-', at most 63)"
            )
    if ledger.possible(settings.audit) and int(settings.max_clock_skew) < MIN_LEDGER_CLOCK_SKEW:
        problems.append(
            f"max_clock_skew: at least {MIN_LEDGER_CLOCK_SKEW}s while the circuit ledger may be "
            "on (it checks this pod's clock against the API server's Date header, which counts "
            f"whole seconds), got {int(settings.max_clock_skew)}s"
        )
    if ledger.possible(settings.audit) and settings.max_rollbacks > MAX_LEDGER_ROLLBACKS:
        problems.append(
            f"max_rollbacks: at most {MAX_LEDGER_ROLLBACKS} while the circuit ledger is on "
            f"(each booked rollback is kept in one annotation of its Lease), "
            f"got {settings.max_rollbacks}"
        )
    if not _LABEL_NAME.match(settings.cluster.label):
        problems.append(
            f"cluster.label: {settings.cluster.label!r} is not a Prometheus label name "
            "(letters, digits and '_', not starting with a digit)"
        )
    if settings.cluster.require_label and settings.cluster.name is None:
        problems.append(
            "cluster.require_label: true needs cluster.name (the value the label must have)"
        )
    if settings.gitops.helm == GitOpsHandling.PAUSE:
        problems.append(
            "gitops.helm: pause is not possible (a Helm release has no controller to pause); "
            "use refuse or ignore"
        )
    return problems


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load the file named by `path`, else by $ROLLBACK_WEBHOOK_CONFIG, else the defaults."""
    settings, problems = read_settings(path)
    if problems:
        raise ConfigError(*problems)
    return settings


def read_settings(
    path: str | os.PathLike[str] | None = None,
) -> tuple[Settings, tuple[str, ...]]:
    """Like load_settings, but every problem is returned (each naming the file and the key)
    with best-effort Settings; an unreadable file or invalid YAML still raises ConfigError."""
    chosen = path if path is not None else os.environ.get(CONFIG_ENV)
    if not chosen:
        return Settings(), ()
    try:
        text = Path(chosen).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{chosen}: cannot read the configuration file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{chosen}: not valid YAML ({exc})") from exc
    settings, problems = settings_and_problems(data)
    return settings, tuple(f"{chosen}: {problem}" for problem in problems)


def as_dict(settings: Settings) -> dict[str, Any]:
    """The effective configuration, for the start-up log line and `check-config`."""
    return dataclasses.asdict(settings)
