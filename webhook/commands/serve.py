"""`rollback-webhook serve`: the receiver under gunicorn, with gevent workers.

Why gunicorn: Flask's built-in server is a development server (no worker management, no graceful
shutdown on SIGTERM). gunicorn is the standard pre-fork WSGI server; server.workers defaults to 1
so the audit, metrics registry and health tracker stay in one process.

Why the gevent worker class: gunicorn's `gthread` worker hands a connection to a thread as soon
as its first bytes arrive, and that thread then waits for the rest of the request headers; a
client sending one header line every few seconds holds a thread for as long as it likes, so as
many slow clients as threads stopped every delivery and /healthz (no credentials needed). Under
gevent each connection is a greenlet: a slow client costs a few kilobytes and no thread, and the
worker keeps answering while up to WORKER_CONNECTIONS clients are connected; and the worker reads
each request's headers under a deadline (HEADER_SECONDS, gunicorn's keepalive), so a client that
drips headers is disconnected instead of held. The standard library
is monkey-patched once, here, before any client, lock or thread is made (a lock made before the
patch would block every greenlet while one holds it across I/O); psycopg detects the patch and
waits cooperatively. server.threads has no effect under this worker class.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from webhook.commands.failures import USAGE, report, settings_or_report
from webhook.config import ConfigError

# Concurrent connections per worker (gunicorn's worker_connections): slow or idle clients included.
WORKER_CONNECTIONS = 1000
# Seconds a client has to send a request's headers, and an idle keep-alive connection is kept.
HEADER_SECONDS = 5


def _cooperative() -> None:
    """Monkey-patch the standard library for gevent (idempotent; gunicorn's worker does it too)."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file (default: $ROLLBACK_WEBHOOK_CONFIG)")
    parser.add_argument("--host", help="override server.host")
    parser.add_argument("--port", type=int, help="override server.port")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = settings_or_report("serve", args.config)
    if settings is None:
        return USAGE
    if args.port is not None and not 0 < args.port <= 65535:
        report("serve", [f"--port: must be between 1 and 65535, got {args.port}"])
        return USAGE
    _cooperative()  # before any client, lock, thread or ssl import below
    from gunicorn.app.base import BaseApplication

    from webhook.audit import AuditUnavailable
    from webhook.preflight import check
    from webhook.reconcile import start_for_service as start_reconciler
    from webhook.runtime import build_app, build_service, log_effective_config

    # What check-config checks, checked here too: one line per problem, not a traceback.
    preflight = check(settings)
    if not preflight.ok:
        where = f"{args.config}: " if args.config else ""
        report("serve", (where + problem for problem in preflight.problems))
        return USAGE
    try:
        service = build_service(settings)
        app = build_app(service)
    except ConfigError as exc:
        report("serve", exc.problems)
        return USAGE
    except AuditUnavailable as exc:
        report("serve", [f"audit: {exc}"])
        return USAGE
    log_effective_config(settings)

    def _start_circuit_view(worker: Any) -> None:
        service.start_cluster_view()
        # Settles write-ahead intents left open (by a killed worker, a lost response): in the
        # worker, never the master, which does no audit I/O at all.
        start_reconciler(service)

    server = settings.server  # bound here: the class below does not see the narrowed type
    host = args.host or server.host
    port = args.port or server.port
    background = _start_background(service)
    _check_leader_election(app, service)

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", server.workers)
            # Each worker reads other replicas' rollbacks for the circuit breaker in the
            # background (a thread must start after the fork, in the worker itself).
            self.cfg.set("post_worker_init", _start_circuit_view)
            # Slow clients must not starve deliveries: see the module docstring.
            self.cfg.set("worker_class", "gevent")
            self.cfg.set("worker_connections", WORKER_CONNECTIONS)
            # gevent workers read each request's headers under this deadline (and close idle
            # keep-alive connections after it): a client dripping headers is cut off.
            self.cfg.set("keepalive", HEADER_SECONDS)
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", 20)
            # stdout carries only the decisions, one JSON line each: access lines go to stderr.
            self.cfg.set("accesslog", "/dev/stderr")
            # Our own limit answers 413 with a message; gunicorn's would cut the request line.
            self.cfg.set("limit_request_field_size", 16384)
            # gunicorn >= 25.1 opens a control socket for `gunicornc` under $HOME/.gunicorn (or
            # $XDG_RUNTIME_DIR) and only warns when it cannot: the shipped pod has a read-only
            # root filesystem, and nothing of ours drives gunicorn through it. Older releases
            # have no such setting (cfg.set would raise AttributeError).
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return app

    started_in = os.getpid()
    try:
        Server().run()
    finally:
        # gunicorn forks workers from here; a worker unwinding through this block must not
        # stop (and release the Lease of) the tracker that belongs to the master.
        if os.getpid() == started_in:
            for stop in background:
                stop()
    return 0


def _start_background(service: Any) -> list[Any]:
    """Start the health tracker (when tracker.enabled) in a process of its own, watched from
    here (webhook.tracker_process): the master does no tracker I/O, and a worker's death
    restarts no healthy-period clock. Returns the stop callables."""
    from webhook.tracker_process import start_tracker_process

    return list(start_tracker_process(service.settings))


def _check_leader_election(app: Any, service: Any) -> None:
    """Say at start-up when the Lease cannot be held, and make /readyz say it while it lasts."""
    settings = service.settings
    if not settings.tracker.enabled:
        return
    from functools import partial

    from webhook.app import READINESS_CHECKS
    from webhook.leader import lease_problem

    check = partial(
        lease_problem,
        service.cluster,
        namespace=settings.tracker.lease_namespace,
        name=settings.tracker.lease_name,
        clock=service.clock,
    )
    app.config.setdefault(READINESS_CHECKS, []).append(check)
    problem = check()
    if problem and "does not exist" in problem:
        logging.getLogger(__name__).error(
            "%s; until then no replica writes health stamps and /readyz answers 503", problem
        )
