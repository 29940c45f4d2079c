"""Assembly: Settings -> clients -> Service -> WSGI app. Called by `serve` and by tests."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask

from webhook.app import create_app
from webhook.audit import open_store
from webhook.auth import Credentials
from webhook.config import ConfigError, Settings, as_dict
from webhook.evidence import PrometheusSource
from webhook.kube import Cluster, api_client_from_settings, runs_in_pod
from webhook.service import Service, utc_now

log = logging.getLogger(__name__)

AppExtension = Callable[[Flask, Service, Credentials], None]


def build_prometheus(settings: Settings, clock: Callable[[], datetime]) -> PrometheusSource | None:
    """The Prometheus evidence client, or None when no URL is configured."""
    from webhook import prom

    return prom.from_settings(settings.prometheus, clock=clock)


def build_service(
    settings: Settings,
    *,
    api_client: Any | None = None,
    clock: Callable[[], datetime] = utc_now,
    prometheus: PrometheusSource | None = None,
) -> Service:
    """A Service for `settings`; `api_client` (a kubernetes ApiClient) overrides kubeconfig."""
    in_pod = api_client is None and runs_in_pod(settings.kubernetes.kubeconfig)
    if api_client is None:
        api_client = api_client_from_settings(
            kubeconfig=settings.kubernetes.kubeconfig, context=settings.kubernetes.context
        )
    cluster = Cluster(api_client, timeout_seconds=settings.kubernetes.timeout_seconds, clock=clock)
    try:
        audit = open_store(
            backend=settings.audit.backend,
            path=settings.audit.path,
            dsn_file=settings.audit.dsn_file,
            max_connections=settings.server.threads + 2,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if prometheus is None:
        prometheus = build_prometheus(settings, clock)
    return Service(
        settings=settings,
        cluster=cluster,
        audit=audit,
        clock=clock,
        prometheus=prometheus,
        in_pod=in_pod,
    )


def default_extensions() -> list[AppExtension]:
    """Route groups beyond the receiver: the on-call API, the console, resume."""
    from webhook.console import install_console
    from webhook.oncall import install as install_oncall
    from webhook.resume_api import install_resume

    return [install_oncall, install_console, install_resume]


def build_app(
    service: Service,
    *,
    credentials: Credentials | None = None,
) -> Flask:
    """The WSGI app for a service, with every route group of this build."""
    credentials = credentials or Credentials.load(service.settings)
    if credentials.allow_unauthenticated and not (
        credentials.receiver_token or credentials.receiver_password
    ):
        log.warning("auth.receiver.allow_unauthenticated: anyone can post alerts to this receiver")
    return create_app(service, credentials=credentials, extensions=default_extensions())


def log_effective_config(settings: Settings) -> None:
    """One line with the effective configuration at start-up (no secrets: only file paths)."""
    log.info("effective configuration: %s", json.dumps(as_dict(settings), sort_keys=True))
    if settings.dry_run:
        log.info("**DRY-RUN**: rollbacks are decided and recorded, the cluster is not changed")
