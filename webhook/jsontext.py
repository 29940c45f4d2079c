"""JSON text the service can store: decoding that never raises past a ValueError, and the check
that every string of a document can be written as UTF-8.

JSON may carry a lone surrogate as an escape (`"\\ud800"`): Python decodes it into a `str` that
no UTF-8 store (SQLite, PostgreSQL) accepts. Such a document is refused up front, naming the
field, before anything is decided or written to the cluster (the alternative, storing an escaped
form, would audit a label value no Kubernetes object or Prometheus series can hold). So is a
NUL character (`"\\u0000"`): PostgreSQL text cannot hold one, and an alert carrying it would be
answered 503 and sent again forever instead of refused once.

What JSON itself does not allow is refused as not JSON: `NaN` and `Infinity`, and a number too
large for a float (`1e400`, which Python decodes as infinity): the audit would answer them back
to strict clients as no JSON at all; and an integer of more digits than Python converts (4,300).
Nesting deeper than MAX_DEPTH is refused too: no alert, replay or resume body needs more than a
few levels, and a document the decoder could just take would fail later, wherever it is written
out again from a deeper stack (the audit's API).
"""

from __future__ import annotations

import json
import math
from typing import Any

# Levels of arrays and objects a document may nest (an Alertmanager payload uses four).
MAX_DEPTH = 64


class JsonTextError(ValueError):
    """The text is not JSON the service accepts; the message names the field (`where: ...`)."""


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotFinite(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotFinite(f"{text} is too large for a number")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def loads(text: str | bytes, *, where: str = "body") -> Any:
    """`json.loads` whose every refusal is a JsonTextError naming `where` (a field of a request
    body is named from the body's top, `alerts[0].labels`, as every other check names it)."""
    try:
        if isinstance(text, bytes | bytearray):
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        document = _DECODER.decode(text)
    except RecursionError:
        raise JsonTextError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    except _NotFinite as exc:  # found again, with its path, by Python's own decoder
        try:
            path = _non_finite_path(json.loads(text)) or ""
        except (RecursionError, ValueError):
            path = ""
        named = path if where == "body" and path else _join(where, path) if path else where
        raise JsonTextError(f"{named}: not a JSON number ({exc})") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer too long
        raise JsonTextError(f"{where}: not valid JSON ({exc})") from None
    if _may_nest_deeper(text) and _depth(document) > MAX_DEPTH:
        raise JsonTextError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    return document


def _non_finite_path(document: Any) -> str | None:
    """The path of the first NaN or infinite number of a document (iterative)."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return where or None
        if isinstance(value, dict):
            stack.extend((_join(where, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((_join(where, i), item) for i, item in reversed(list(enumerate(value))))
    return None


def _may_nest_deeper(text: str) -> bool:
    """Whether the text opens enough arrays and objects to nest past MAX_DEPTH (counted in C:
    a body of a few alerts costs no walk; one of about 20 or more is walked, iteratively)."""
    return text.count("[") + text.count("{") > MAX_DEPTH


def _depth(document: Any) -> int:
    """How many levels of arrays and objects the document nests (iterative)."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


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
