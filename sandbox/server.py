"""The sandbox's HTTP server: the Kubernetes REST API, /metrics, and test controls.

A `ThreadingHTTPServer` on loopback speaking HTTP/1.1 (kubectl and urllib3 keep
connections alive; watches are chunked). Each request is matched against injected faults,
then any interleaved write runs, then the API answers, and the request is recorded with
its bearer token. Controls under /sandbox/v1 are neither faulted nor recorded.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sandbox import api, controls_api, discovery, fieldcheck, metrics, openapi, reads, tables, watch
from sandbox.apply import ensure_namespace
from sandbox.controller import Controller
from sandbox.errors import STATUS_REASONS, ApiError, path_not_found
from sandbox.faults import Faults
from sandbox.record import RequestRecord
from sandbox.routing import RequestInfo, parse_request
from sandbox.store import Store

LOG = logging.getLogger(__name__)
CONTROL_PREFIX = "/sandbox/v1/"


class SandboxServer:
    """A running sandbox API: `start()` binds and serves in a daemon thread."""

    def __init__(
        self,
        *,
        store: Store | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        kube_version: str = "v1.30.0",
    ) -> None:
        self.store = store if store is not None else Store()
        self.controller = Controller(self.store)  # subscribes itself to the store
        self.kube_version = kube_version
        self.faults = Faults()
        self.record = RequestRecord()
        self.stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.sandbox = self
        self._thread: threading.Thread | None = None
        self._seed_namespaces()
        # Now rather than inside the first write: the first rollback is not 0.3 s slower.
        fieldcheck.preload()

    def _seed_namespaces(self) -> None:
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            ensure_namespace(self.store, name)

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sandbox-api",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: watches end, the socket closes (also for a server never started)."""
        self.stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()  # waits for serve_forever, so only when it runs
            self._thread.join(timeout=5)
        self._httpd.server_close()


def _as_table(
    sandbox: SandboxServer, request: RequestInfo, reply: reads.Reply | reads.WatchPlan | Any
) -> Any:
    """kubectl get asks for a Table: turn a 200 get/list/watch of an object into one."""
    info = discovery.find_resource(request.group, request.version, request.resource)
    if info is None or request.subresource or request.verb not in {"get", "list", "watch"}:
        return reply
    include = request.query.get("includeObject", "PartialObjectMetadata")
    if isinstance(reply, reads.WatchPlan):
        reply.render = lambda obj: tables.table(
            info, [obj], now=sandbox.store.now(), include_object=include
        )
        return reply
    if not isinstance(reply, reads.Reply) or reply.code != 200:
        return reply
    if request.verb == "get":
        items, meta = [reply.body], {"resourceVersion": reply.body["metadata"]["resourceVersion"]}
    else:
        items, meta = reply.body["items"], reply.body["metadata"]
    body = tables.table(
        info, items, now=sandbox.store.now(), list_meta=meta, include_object=include
    )
    return reads.Reply(200, body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a client opening more connections at once
    # (the receiver's pool, 8 Deployments decided side by side) overflowed it, the kernel
    # dropped the SYN, and that request waited out the 1 s SYN retransmit. As the Go
    # apiserver does: the system's limit.
    request_queue_size = socket.SOMAXCONN
    sandbox: SandboxServer


class _Dropped(Exception):
    """The fault said: close the connection without an answer."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # (server, request, method) of the API request being served and not yet recorded.
    _pending: tuple[SandboxServer, RequestInfo, str] | None = None
    # Headers and body are separate writes; with Nagle on, each answer waits for a delayed ACK.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # ---- plumbing ---------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _token(self) -> str | None:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def _record(self, status: int) -> None:
        """Record the current API request once, before its answer leaves, so a client that
        has the answer also finds the request in the record."""
        pending, self._pending = self._pending, None
        if pending is not None:
            sandbox, request, method = pending
            sandbox.record.add(
                request,
                method=method,
                token=self._token(),
                status=status,
                time=datetime.now().astimezone().isoformat(timespec="milliseconds"),
            )

    def _send_json(
        self,
        code: int,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        extra = list((headers or {}).items())
        # RFC 7234 warn-code 299, as the apiserver sends
        extra += [("Warning", '299 - "' + w.replace('"', '\\"') + '"') for w in warnings or []]
        data = json.dumps(body, separators=(",", ":")).encode()
        self._send(code, data, content_type="application/json", headers=extra)

    def _send_text(self, code: int, text: str, content_type: str) -> None:
        self._send(code, text.encode(), content_type=content_type, headers=[])

    def _send(
        self, code: int, data: bytes, *, content_type: str, headers: list[tuple[str, str]]
    ) -> None:
        self._record(code)
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        """Close the connection without an answer (after the request is recorded)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- dispatch ---------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        sandbox = self.server.sandbox
        body = self._body()
        if self.path.startswith(CONTROL_PREFIX):
            code, answer = controls_api.handle(sandbox, method=method, path=self.path, body=body)
            self._send_json(code, answer)
            return
        request = parse_request(method, self.path)
        self._pending = (sandbox, request, method)
        try:
            self._serve_api(sandbox, request, method=method, body=body)
        except _Dropped:
            self._record(0)  # status 0: no answer
            self._drop()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:  # a bug must reach the client, not kill the connection
            # As the apiserver's panic handler does: 500 InternalError, the cause in the message.
            LOG.exception("sandbox: %s %s failed", method, self.path)
            if self._pending is not None:
                self._send_json(
                    500,
                    ApiError(
                        500,
                        "InternalError",
                        f"Internal error occurred: {type(error).__name__}: {error}",
                    ).status(),
                )
        finally:
            self._record(0)  # only if nothing was recorded yet

    def _serve_api(
        self, sandbox: SandboxServer, request: RequestInfo, *, method: str, body: bytes
    ) -> int:
        fault = sandbox.faults.take_fault(method, request.path)
        if fault is not None:
            if fault.action in {"delay", "hang"}:
                time.sleep(fault.delay)
            if fault.action in {"drop", "hang"}:
                raise _Dropped
            if fault.action == "status":
                reason = STATUS_REASONS.get(fault.status, "InternalError")
                throttled = fault.status in {429, 503}
                error = ApiError(
                    fault.status,
                    reason,
                    f"injected fault: {reason} for {method} {request.path}",
                    details={"retryAfterSeconds": 1} if throttled else None,
                )
                # The apiserver's 429s (max-in-flight, priority and fairness) say when to
                # come back; clients that honour Retry-After need it to be there.
                headers = {"Retry-After": "1"} if throttled else {}
                self._send_json(fault.status, error.status(), headers=headers)
                return fault.status
        interleave = sandbox.faults.take_interleave(method, request.path)
        if interleave is not None:
            controls_api.run_interleave(sandbox.store, interleave)
        try:
            reply = self._answer(sandbox, request, method=method, body=body)
            if tables.wants_table(self.headers.get("Accept", "")):
                reply = _as_table(sandbox, request, reply)
        except ApiError as error:
            self._send_json(error.code, error.status())
            return error.code
        if isinstance(reply, reads.WatchPlan):
            self._stream(sandbox, reply)
            return 200
        if isinstance(reply, reads.Reply):
            self._send_json(reply.code, reply.body, warnings=reply.warnings)
            return reply.code
        code, text, content_type = reply
        self._send_text(code, text, content_type)
        return code

    def _answer(
        self, sandbox: SandboxServer, request: RequestInfo, *, method: str, body: bytes
    ) -> reads.Reply | reads.WatchPlan | tuple[int, str, str]:
        if request.is_resource:
            return api.handle(
                sandbox.store,
                request,
                method=method,
                body=body,
                content_type=self.headers.get("Content-Type", ""),
            )
        path = request.path.rstrip("/") or "/"
        if method != "GET":
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if path == "/version":
            return reads.Reply(200, discovery.version_info(sandbox.kube_version))
        if path == "/api":
            host = sandbox.url.removeprefix("http://")
            return reads.Reply(200, discovery.api_versions(host))
        if path == "/apis":
            return reads.Reply(200, discovery.api_group_list())
        if path in {"/healthz", "/livez", "/readyz"}:
            return (200, "ok", "text/plain; charset=utf-8")
        if path == "/openapi/v3":
            return reads.Reply(200, openapi.index(sandbox.kube_version))
        if path.startswith("/openapi/v3/"):
            document = openapi.group_version_document(
                path.removeprefix("/openapi/v3/"), sandbox.kube_version
            )
            if document is None:
                raise path_not_found(request.path)
            return reads.Reply(200, document)
        if path == "/metrics":
            return (200, metrics.render(sandbox.store), "text/plain; version=0.0.4; charset=utf-8")
        return self._discovery(request)

    def _discovery(self, request: RequestInfo) -> reads.Reply:
        parts = [part for part in request.path.split("/") if part]
        answer: dict[str, Any] | None = None
        if len(parts) == 2 and parts[0] == "api":
            answer = discovery.api_resource_list("", parts[1])
        elif len(parts) == 2 and parts[0] == "apis":
            answer = discovery.api_group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            answer = discovery.api_resource_list(parts[1], parts[2])
        if answer is None:
            raise path_not_found(request.path)
        return reads.Reply(200, answer)

    def _stream(self, sandbox: SandboxServer, plan: reads.WatchPlan) -> None:
        self._record(200)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

        def write(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        watch.stream(sandbox.store, plan, write=write, stopping=sandbox.stopping)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
