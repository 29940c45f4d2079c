"""The Kubernetes API, behind one module: the only place that imports `kubernetes`.

Objects travel as plain JSON dicts (exactly what the API server sent), so the decision and
revision code stay pure and a PUT sends back every field it read, known to us or not. Failures
become a small typed hierarchy that the decision maps to outcomes:
404 NotFound, 403/401 Forbidden, 409 Conflict, 422 Invalid, 429/5xx/transport Transient
(with `timeout` telling a timeout from an error).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import kubernetes.client
import kubernetes.config
import urllib3
import urllib3.exceptions
import yaml
from kubernetes.client.exceptions import ApiException

from webhook import names
from webhook.config import ConfigError
from webhook.views import Obj as Obj

log = logging.getLogger(__name__)

APPS = "/apis/apps/v1"
CORE = "/api/v1"
COORDINATION = "/apis/coordination.k8s.io/v1"


class KubeError(Exception):
    """A Kubernetes API call failed; `status` is the HTTP status (0 for transport errors)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    """404."""


class Forbidden(KubeError):
    """401 or 403: the service account lacks a permission."""


class Conflict(KubeError):
    """409: the object changed since it was read (or already exists)."""


class Invalid(KubeError):
    """400 or 422: the API server refused the object."""


class InvalidName(Invalid):
    """A name that is not a Kubernetes name: refused before any request is built from it."""


def _ns(namespace: str) -> str:
    """A namespace for an API path; InvalidName unless it is a DNS-1123 label."""
    problem = names.dns1123_label_problem(namespace)
    if problem:
        raise InvalidName(f"refused to build an API path from namespace {namespace!r}: {problem}")
    return quote(namespace, safe="")


def _name(name: str) -> str:
    """An object name for an API path; InvalidName unless it is a DNS-1123 subdomain."""
    problem = names.dns1123_subdomain_problem(name)
    if problem:
        raise InvalidName(f"refused to build an API path from name {name!r}: {problem}")
    return quote(name, safe="")


class Transient(KubeError):
    """5xx, 429 or a transport failure: worth retrying later."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str = "",
        timeout: bool = False,
        unsent: bool = False,
    ):
        super().__init__(message, status=status, reason=reason)
        self.timeout = timeout
        self.unsent = unsent  # failed before the request left: nothing can land

    @property
    def ended(self) -> bool:
        """Whether the request is over: never sent, or an answer other than a 504 (the
        apiserver's own timeout). Without one (a timeout, a reset) a write may still land."""
        return self.unsent or (bool(self.status) and not self.timeout)


def _error_for(status: int, body: bytes, what: str) -> KubeError:
    reason, message = "", body[:300].decode("utf-8", "replace")
    try:
        document = json.loads(body)
        reason, message = document.get("reason", ""), document.get("message", message)
    except (ValueError, AttributeError):
        pass
    text = f"{what}: HTTP {status} {reason}: {message}".strip()
    if status == 404:
        return NotFound(text, status=status, reason=reason)
    if status in (401, 403):
        return Forbidden(text, status=status, reason=reason)
    if status == 409:
        return Conflict(text, status=status, reason=reason)
    if status in (400, 422):
        return Invalid(text, status=status, reason=reason)
    return Transient(text, status=status, reason=reason, timeout=status == 504)


def runs_in_pod(kubeconfig: str | None) -> bool:
    """Whether api_client_from_settings takes the pod's service account (no kubeconfig named,
    and the variables and token file the in-cluster configuration reads are there)."""
    if kubeconfig is not None:
        return False
    loader = kubernetes.config.incluster_config
    return bool(
        os.environ.get(loader.SERVICE_HOST_ENV_NAME)
        and os.environ.get(loader.SERVICE_PORT_ENV_NAME)
        and Path(loader.SERVICE_TOKEN_FILENAME).is_file()
    )


def api_client_from_settings(
    *, kubeconfig: str | None, context: str | None
) -> kubernetes.client.ApiClient:
    """In-cluster config when running in a pod (and no kubeconfig is named), else kubeconfig.

    Raises ConfigError naming the key and the file when neither gives credentials (a missing
    or unreadable file, no such context, a file that is not a kubeconfig); nothing connects.
    """
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None:
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
            return kubernetes.client.ApiClient(configuration)
        except kubernetes.config.ConfigException:
            pass
    path = (
        kubeconfig
        or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        or str(Path("~/.kube/config").expanduser())
    )
    key = "kubernetes.kubeconfig" if kubeconfig else "kubernetes"
    if not kubeconfig and not Path(path).is_file():
        raise ConfigError(
            f"{key}: not in a pod (no service account) and no kubeconfig at {path}: "
            "set kubernetes.kubeconfig (or $KUBECONFIG)"
        )
    try:
        Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path} ({exc.strerror})") from None
    try:
        contexts, _ = kubernetes.config.list_kube_config_contexts(config_file=path)
    except (kubernetes.config.ConfigException, yaml.YAMLError, ValueError, TypeError) as exc:
        raise ConfigError(f"{key}: {path} is not a usable kubeconfig ({_one_line(exc)})") from None
    names = [str(c.get("name")) for c in contexts or [] if isinstance(c, dict)]
    if context is not None and context not in names:
        raise ConfigError(
            f"kubernetes.context: {context!r} is not a context of {path} "
            f"(it has: {', '.join(names) or 'none'})"
        )
    try:
        kubernetes.config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration
        )
    except (kubernetes.config.ConfigException, OSError, ValueError, TypeError) as exc:
        what = f"context {context!r} of {path}" if context else path
        raise ConfigError(f"{key}: {what}: {_one_line(exc)}") from None
    return kubernetes.client.ApiClient(configuration)


# How often the client's credential refresh hook may run (see _RefreshAtMostEvery).
CREDENTIAL_REFRESH_SECONDS = 1.0


class _RefreshAtMostEvery:
    """The credential refresh hook kubernetes.config installs, run at most once a `period`.

    The client runs that hook before every API request. Each run checks the token's expiry
    and sets the host, CA and proxy again, and setting the host looks the proxy up by scanning
    the whole process environment (a pod's holds a few variables per Service of its
    namespace): 7% of the worker's profile samples during an alert storm. What it refreshes
    is renewed well before it is needed (a kubeconfig token 5 minutes before its expiry, the
    in-cluster token file read again once a minute), so a second's delay changes nothing.
    Each run of the hook installs a new one in its place: the newest is kept and wrapped.
    """

    def __init__(
        self, hook: Callable[[Any], None], *, period: float, monotonic: Callable[[], float]
    ) -> None:
        self._hook = hook
        self._period = period
        self._monotonic = monotonic
        self._due: float | None = None

    def __call__(self, configuration: Any) -> None:
        now = self._monotonic()
        if self._due is not None and now < self._due:
            return
        # Set first: a request racing this one keeps the current credentials (still valid).
        self._due = now + self._period
        try:
            self._hook(configuration)
        finally:  # a hook that raised may have installed its successor all the same
            installed = configuration.refresh_api_key_hook
            if installed is not self and installed is not None:
                self._hook = installed
                configuration.refresh_api_key_hook = self


def _throttle_refresh(configuration: Any, monotonic: Callable[[], float]) -> None:
    """Wrap the configuration's refresh hook in _RefreshAtMostEvery, unless it is already.

    Run before every request: a loader may install a hook at any time, and a thread that read
    the bare hook just before it was wrapped again (real threads, not gevent's) runs it after
    and installs a bare one.
    """
    hook = configuration.refresh_api_key_hook
    if hook is not None and not isinstance(hook, _RefreshAtMostEvery):
        configuration.refresh_api_key_hook = _RefreshAtMostEvery(
            hook, period=CREDENTIAL_REFRESH_SECONDS, monotonic=monotonic
        )


def _direct_pool(api: kubernetes.client.ApiClient, pool_manager: Any) -> Any:
    """The connection pool of the configured host when requests can go to it directly: a
    plain PoolManager (no proxy, whose requests need the proxy's handling). None otherwise:
    requests then go through the client's REST layer."""
    if type(pool_manager) is not urllib3.PoolManager:
        return None
    return pool_manager.connection_from_url(api.configuration.host)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


# Connections kept open to the API server per process.
POOL_CONNECTIONS = 32


class Cluster:
    """The calls the service makes. Every write that replaces an object is conditional."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        timeout_seconds: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # No urllib3 retries: a retried PUT after a read timeout would be a second write.
        api.configuration.retries = False
        # Kept connections: enough for a worker's payloads decided side by side (the client's
        # default, 5 per CPU, closed the surplus after each answer, and every new one is a TLS
        # handshake with a real API server).
        api.configuration.connection_pool_maxsize = POOL_CONNECTIONS
        pool_manager = getattr(api.rest_client, "pool_manager", None)
        if pool_manager is not None:
            pool_manager.connection_pool_kw["retries"] = False
            pool_manager.connection_pool_kw["maxsize"] = POOL_CONNECTIONS
            pool_manager.clear()
        self._pool = _direct_pool(api, pool_manager)
        # scheme://host:port of the configured host; a path prefix after it stays in the target.
        host = api.configuration.host
        self._origin = host[: len(host) - len(urllib3.util.parse_url(host).path or "")]
        self._api = api
        self._timeout = timeout_seconds
        self._urllib3_timeout = urllib3.Timeout(total=timeout_seconds)  # urllib3 copies it
        self._clock = clock
        self._monotonic = monotonic
        # The Date header of the latest answer and this process's clock when it came.
        self._served: tuple[str, datetime] | None = None

    def clock_offset(self) -> timedelta | None:
        """The API server's clock minus this process's, from the latest answer's `Date` header
        (to within about a second: the header counts whole seconds, so its middle is taken);
        None before any answer, or when the server sent no readable Date."""
        served = self._served
        if served is None:
            return None
        try:
            then = parsedate_to_datetime(served[0])
        except (TypeError, ValueError, IndexError):
            return None
        if then.tzinfo is None:
            return None
        return then + timedelta(milliseconds=500) - served[1]

    def with_own_pool(self) -> Cluster:
        """The same cluster, credentials and timeout on a connection pool of its own.

        For background threads (the health tracker) in a process that forks later (gunicorn
        workers): a forked child inherits the parent's open pooled sockets, and two processes
        reading one socket get each other's answers. The receiver's pool stays unused until
        the fork; the thread's pool is never touched by the child.
        """
        api = kubernetes.client.ApiClient(self._api.configuration)
        return Cluster(
            api, timeout_seconds=self._timeout, clock=self._clock, monotonic=self._monotonic
        )

    # -- transport -------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        what = f"{method} {path}"
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        _throttle_refresh(self._api.configuration, self._monotonic)
        try:
            params = self._api.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
        except Exception as exc:
            # The credential refresh hook runs here (an exec plugin that failed, an empty
            # token file): nothing was sent, so the request is over, and a retry may succeed.
            raise Transient(f"{what}: credentials: {_one_line(exc)}", unsent=True) from exc
        try:
            if self._pool is None or not str(params[1]).startswith(self._origin):
                # Behind a proxy, or a host changed since (never by the client itself).
                response = self._api.call_api(*params, _request_timeout=self._timeout)
                status, data = response.status, response.read() or b""
                date = response.headers.get("Date") if response.headers else None
            else:
                status, data, date = self._send(params)
            if date:
                self._served = (date, self._clock())
        except urllib3.exceptions.NewConnectionError as exc:
            # Checked first: urllib3 derives it from ConnectTimeoutError, but it is a refusal.
            # No connection, so nothing was sent: the request is over (a write cannot land).
            raise Transient(f"{what}: connection failed: {exc}", unsent=True) from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise Transient(f"{what}: timed out after {self._timeout}s", timeout=True) from exc
        except urllib3.exceptions.MaxRetryError as exc:
            timeout = isinstance(exc.reason, urllib3.exceptions.TimeoutError) and not isinstance(
                exc.reason, urllib3.exceptions.NewConnectionError
            )
            unsent = isinstance(exc.reason, urllib3.exceptions.NewConnectionError)
            raise Transient(f"{what}: {exc.reason}", timeout=timeout, unsent=unsent) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Transient(f"{what}: {type(exc).__name__}: {exc}") from exc
        except ApiException as exc:
            raise Transient(f"{what}: {exc.reason}", status=exc.status or 0) from exc
        if not 200 <= status < 300:
            raise _error_for(status, data, what)
        if not data:
            return {}
        try:
            result: Obj = json.loads(data)
        except ValueError as exc:
            raise Transient(f"{what}: answer is not JSON") from exc
        return result

    def _send(self, params: Any) -> tuple[int, bytes, str | None]:
        """The request `param_serialize` built (URL, headers with the credentials, body), sent
        on the API server's own connection pool: what the client's REST layer does for these
        JSON requests, without its PoolManager finding that pool again from the URL on every
        request (a sixth of a request's CPU: benchmarks/transport.py)."""
        method, url, headers, body = params[0], params[1], params[2], params[3]
        pool = self._pool
        assert pool is not None  # the caller checked
        response = pool.urlopen(
            method,
            url[len(self._origin) :],
            body=None if body is None else json.dumps(body),
            headers=headers,
            timeout=self._urllib3_timeout,
            retries=False,
            redirect=False,
            preload_content=True,
        )
        return response.status, response.data or b"", response.headers.get("Date")

    # -- reads -----------------------------------------------------------------------------
    def get_deployment(self, namespace: str, name: str) -> Obj:
        return self._call("GET", f"{APPS}/namespaces/{_ns(namespace)}/deployments/{_name(name)}")

    def unmoved(self, seen: Obj) -> bool:
        """Whether a fresh read shows the Deployment `seen` was, with the spec it had: the same
        uid (one deleted and made again restarts its generation) and generation (a spec write
        always moves it; the controller's status writes, every few seconds while pods roll,
        move only resourceVersion). False when it is gone."""
        meta = seen["metadata"]
        try:
            fresh = self.get_deployment(meta["namespace"], meta["name"])["metadata"]
        except NotFound:
            return False
        return all(fresh.get(key) == meta.get(key) for key in ("uid", "generation"))

    def list_deployments(self, namespace: str | None = None) -> list[Obj]:
        path = (
            f"{APPS}/namespaces/{_ns(namespace)}/deployments"
            if namespace
            else (f"{APPS}/deployments")
        )
        items: list[Obj] = self._call("GET", path).get("items", [])
        return items

    def get_replicaset(self, namespace: str, name: str) -> Obj:
        return self._call("GET", f"{APPS}/namespaces/{_ns(namespace)}/replicasets/{_name(name)}")

    def list_replicasets(self, namespace: str, *, label_selector: str) -> list[Obj]:
        """ReplicaSets matching a selector: kubectl lists by the Deployment's selector."""
        path = f"{APPS}/namespaces/{_ns(namespace)}/replicasets"
        items: list[Obj] = self._call("GET", path, query=[("labelSelector", label_selector)]).get(
            "items", []
        )
        return items

    def get_pod(self, namespace: str, name: str) -> Obj:
        return self._call("GET", f"{CORE}/namespaces/{_ns(namespace)}/pods/{_name(name)}")

    def get_namespace(self, name: str) -> Obj:
        return self._call("GET", f"{CORE}/namespaces/{_ns(name)}")

    def version(self) -> Obj:
        """GET /version: the cheapest reachability probe (readiness)."""
        return self._call("GET", "/version")

    # -- writes ----------------------------------------------------------------------------
    def replace_deployment(self, deployment: Obj) -> Obj:
        """PUT the whole object; its metadata.resourceVersion makes the write conditional."""
        meta = deployment["metadata"]
        if not meta.get("resourceVersion"):
            raise ValueError("replace_deployment needs metadata.resourceVersion (conditional)")
        path = f"{APPS}/namespaces/{_ns(meta['namespace'])}/deployments/{_name(meta['name'])}"
        return self._call("PUT", path, body=deployment)

    def annotate_replicaset(
        self,
        namespace: str,
        name: str,
        annotations: dict[str, str | None],
        *,
        resource_version: str | None = None,
    ) -> Obj:
        """Merge-patch annotations onto a ReplicaSet; with `resource_version`, only if it is
        still at that version (else 409 Conflict).

        Only the named keys change (RFC 7386), server-side and atomically, so a mark needs no
        precondition (one would only fail each time the Deployment controller rescales the
        ReplicaSet); the health tracker's stamp, a verdict on what it read, carries one.
        """
        path = f"{APPS}/namespaces/{_ns(namespace)}/replicasets/{_name(name)}"
        metadata: dict[str, Any] = {"annotations": annotations}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return self._call(
            "PATCH", path, body={"metadata": metadata}, content_type="application/merge-patch+json"
        )

    def create_event(
        self,
        *,
        involved: Obj,
        reason: str,
        message: str,
        warning: bool = False,
    ) -> Obj:
        """Post a core/v1 Event on `involved` (a Deployment), as kubectl describe shows them."""
        meta = involved["metadata"]
        now = self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # converted
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", "apps/v1"),
                "kind": involved.get("kind", "Deployment"),
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "rollback-webhook"},
            "reportingComponent": "rollback-webhook",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        return self._call("POST", f"{CORE}/namespaces/{_ns(meta['namespace'])}/events", body=event)

    # -- leases (leader election) -----------------------------------------------------------
    def get_lease(self, namespace: str, name: str) -> Obj:
        return self._call("GET", f"{COORDINATION}/namespaces/{_ns(namespace)}/leases/{_name(name)}")

    def create_lease(self, lease: Obj) -> Obj:
        namespace = lease["metadata"]["namespace"]
        return self._call("POST", f"{COORDINATION}/namespaces/{_ns(namespace)}/leases", body=lease)

    def replace_lease(self, lease: Obj) -> Obj:
        meta = lease["metadata"]
        path = f"{COORDINATION}/namespaces/{_ns(meta['namespace'])}/leases/{_name(meta['name'])}"
        return self._call("PUT", path, body=lease)

    # -- GitOps owners (pause and resume; only the gitops overlay grants these) ----------------
    def get_application(self, namespace: str, name: str) -> Obj:
        """An Argo CD Application (argoproj.io/v1alpha1)."""
        return self._call("GET", _application_path(namespace, name))

    def patch_application(
        self, namespace: str, name: str, patch: Obj, *, resource_version: str, strict: bool = False
    ) -> Obj:
        """Merge-patch an Application, only if still at `resource_version` (else Conflict).

        With `strict`, the API server refuses a field its CRD schema does not know (Invalid)
        instead of dropping it: how a pause learns whether `automated.enabled` exists there.
        """
        return self._merge_patch(
            _application_path(namespace, name),
            patch,
            resource_version=resource_version,
            strict=strict,
        )

    def get_helmrelease(self, namespace: str, name: str) -> Obj:
        """A Flux HelmRelease (helm.toolkit.fluxcd.io/v2)."""
        return self._call("GET", _helmrelease_path(namespace, name))

    def patch_helmrelease(
        self, namespace: str, name: str, patch: Obj, *, resource_version: str
    ) -> Obj:
        """Merge-patch a HelmRelease, only if still at `resource_version` (else Conflict)."""
        return self._merge_patch(
            _helmrelease_path(namespace, name), patch, resource_version=resource_version
        )

    def _merge_patch(
        self, path: str, patch: Obj, *, resource_version: str, strict: bool = False
    ) -> Obj:
        body = {
            **patch,
            "metadata": {**patch.get("metadata", {}), "resourceVersion": resource_version},
        }
        query = [("fieldValidation", "Strict")] if strict else None
        return self._call(
            "PATCH", path, query=query, body=body, content_type="application/merge-patch+json"
        )


ARGOCD = "/apis/argoproj.io/v1alpha1"
HELM_TOOLKIT = "/apis/helm.toolkit.fluxcd.io/v2"


def _application_path(namespace: str, name: str) -> str:
    return f"{ARGOCD}/namespaces/{_ns(namespace)}/applications/{_name(name)}"


def _helmrelease_path(namespace: str, name: str) -> str:
    return f"{HELM_TOOLKIT}/namespaces/{_ns(namespace)}/helmreleases/{_name(name)}"
