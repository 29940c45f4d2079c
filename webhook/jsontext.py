"""JSON text the service can store: decoding that never raises past a ValueError, and the check
that every string of a document can be written as UTF-8.

JSON may carry a lone surrogate as an escape (`"\\ud800"`): Python decodes it into a `str` that
no UTF-8 store (SQLite, PostgreSQL) accepts. Such a document is refused up front, naming the
field, before anything is decided or written to the cluster (the alternative, storing an escaped
form, would audit a label value no Kubernetes object or Prometheus series can hold). So is a
NUL character (`"\\u0000"`): PostgreSQL text cannot hold one, and an alert carrying it would be
answered 503 and sent again forever instead of refused once. Nesting deeper than the decoder's
recursion limit is a ValueError too, not a RecursionError.
"""

from __future__ import annotations

import json
from typing import Any


class JsonTextError(ValueError):
    """The text is not JSON the service accepts; the message names the field (`where: ...`)."""


def loads(text: str | bytes, *, where: str = "body") -> Any:
    """`json.loads` whose every refusal is a JsonTextError naming `where`."""
    try:
        return json.loads(text)
    except RecursionError:
        raise JsonTextError(f"{where}: nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JsonTextError(f"{where}: not valid JSON ({exc})") from None


NUL = "\x00"


def _encodable(text: str) -> bool:
    """Whether `text` can be stored as it is: UTF-8, no NUL character."""
    if NUL in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _join(where: str, key: object) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


def unencodable_field(document: Any, *, root: str = "") -> str | None:
    """The path (`alerts[0].labels.alertname`) of the first string or key that cannot be stored
    (a lone surrogate, a NUL character), or None. Iterative: any depth json.loads returned is
    walked."""
    try:
        # The fast path, in C: one encode of the whole document (a NUL is written as \u0000).
        text = json.dumps(document, ensure_ascii=False)
        text.encode("utf-8")
        if "\\u0000" not in text:
            return None
    except (UnicodeEncodeError, RecursionError, TypeError, ValueError):
        pass
    stack: list[tuple[str, Any]] = [(root, document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return where or "payload"
        elif isinstance(value, dict):
            for key, item in value.items():
                path = _join(where, key if _encodable(str(key)) else ascii(key))
                if isinstance(key, str) and not _encodable(key):
                    return f"{path} (key)"
                stack.append((path, item))
        elif isinstance(value, list):
            stack.extend((_join(where, i), item) for i, item in enumerate(value))
    return None


def require_encodable(document: Any, *, root: str = "") -> None:
    """JsonTextError naming the first field that cannot be stored as UTF-8."""
    where = unencodable_field(document, root=root)
    if where is not None:
        raise JsonTextError(
            f"{where}: not text the audit can store (a NUL character or a lone surrogate escape)"
        )
