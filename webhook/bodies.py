"""Request bodies read whole, capped at server.max_body_bytes whether or not they are chunked.

Werkzeug caps a chunked body (no Content-Length) only through a stream that raises once its
limit is reached, so a body of exactly the limit is refused and what a route reads before the
error is a cut body. Here the cap is the same for both framings: a body of `limit` bytes is
accepted, one byte more is a 413, and a route never sees part of a body.
"""

from __future__ import annotations

from typing import IO, Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request

_CHUNK = 64 * 1024


def read_body(request: Request, *, limit: int) -> bytes:
    """The whole body of `request`; RequestEntityTooLarge when it is longer than `limit`."""
    length = request.content_length
    if length is not None:
        if length > limit:
            raise RequestEntityTooLarge()
        return request.get_data(cache=False)
    environ: dict[str, Any] = request.environ
    if "wsgi.input_terminated" not in environ:
        # No length and a server that does not end the stream: WSGI gives no safe way to
        # read it (werkzeug reads it as empty too).
        return b""
    stream: IO[bytes] = environ["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge()
        parts.append(chunk)
