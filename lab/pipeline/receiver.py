"""The receiver of a pipeline: the real Flask app served over HTTP on loopback, in a thread.

Why a thread with werkzeug's server rather than `rollback-webhook serve` (gunicorn) in a
subprocess: the app, the service and the audit are the same code either way, but in-process
the tests read the audit directly, and no health tracker runs beside it (serve starts one),
whose background Kubernetes reads would consume a fault a test injects for the receiver's own
read. Alertmanager still reaches it over real HTTP with a bearer token from a file.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from lab.pipeline.configs import ReceiverTarget
from webhook.config import settings_from_dict
from webhook.runtime import build_app, build_service
from webhook.service import Service

ALERTS_PATH = "/api/v1/alerts"


class _QuietHandler(WSGIRequestHandler):
    """No access-log line per request on stderr: the decisions are logged, and the demo's
    terminal shows the story, not werkzeug's log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class AppServer:
    """A WSGI app served on 127.0.0.1:<free port> by werkzeug in a daemon thread (the
    receiver here; the on-call tests' live server too)."""

    def __init__(self, app: Any, *, name: str) -> None:
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`, no trailing slash."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


class ReceiverServer:
    """One receiver (settings -> service -> app) listening on 127.0.0.1:<free port>."""

    def __init__(
        self,
        *,
        name: str,
        workdir: Path,
        api_client: Any,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.token = "receiver-" + secrets.token_hex(12)
        self.token_file = workdir / f"{name}.token"
        self.token_file.write_text(self.token)
        self.token_file.chmod(0o600)
        config: dict[str, Any] = {
            "audit": {"path": str(workdir / f"{name}.audit.sqlite")},
            "auth": {"receiver": {"bearer_token_file": str(self.token_file)}},
            "kubernetes": {"timeout_seconds": 5},
            "tracker": {"enabled": False},
        }
        for key, value in (overrides or {}).items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        self.settings = settings_from_dict(config)
        self.service: Service = build_service(self.settings, api_client=api_client)
        self.app = build_app(self.service)
        self._server = AppServer(self.app, name=f"receiver-{name}")

    @property
    def url(self) -> str:
        """The alerts endpoint Alertmanager posts to."""
        return f"{self._server.base_url}{ALERTS_PATH}"

    @property
    def target(self) -> ReceiverTarget:
        return ReceiverTarget(url=self.url, token_file=self.token_file)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        self._server.stop()
