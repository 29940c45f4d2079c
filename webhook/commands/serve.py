"""`rollback-webhook serve`: the receiver under gunicorn.

Why gunicorn: Flask's built-in server is a development server (no worker management, no graceful
shutdown on SIGTERM). gunicorn is the standard pre-fork WSGI server; the `gthread` worker lets one
process hold many concurrent deliveries while the audit, metrics registry and health tracker stay
in one process (server.workers defaults to 1 for that reason; threads scale the concurrency).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from webhook.commands.failures import USAGE, report, settings_or_report
from webhook.config import ConfigError


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
    from gunicorn.app.base import BaseApplication

    from webhook.audit import AuditUnavailable
    from webhook.preflight import check
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
        service.decider.cluster_rollbacks.start()

    server = settings.server  # bound here: the class below does not see the narrowed type
    host = args.host or server.host
    port = args.port or server.port
    background = _start_background(service)

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", server.workers)
            self.cfg.set("threads", server.threads)
            # Each worker reads other replicas' rollbacks for the circuit breaker in the
            # background (a thread must start after the fork, in the worker itself).
            self.cfg.set("post_worker_init", _start_circuit_view)
            self.cfg.set("worker_class", "gthread")
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
    """Start the health tracker (when tracker.enabled); returns its stop callables."""
    from webhook.tracker import start_for_service

    return list(start_for_service(service))
