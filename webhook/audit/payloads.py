"""Payloads received and not yet stored: each is written in the transaction of the first row
that names it (an intent before a rollback's write, or the payload's decisions), or alone by
`AuditStore.flush_payload` before the answer.

A payload is accepted only by its 2xx, which comes after every row that names it is stored, so
writing the payload with them loses nothing: a payload whose worker dies before any of them was
never answered and Alertmanager sends it again. It saves a transaction per payload (a WAL flush
on PostgreSQL), and a row that names a payload always finds it in the same commit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from webhook.audit.rows import PayloadRow, column_names

__all__ = ["INSERT_PAYLOAD", "PendingPayloads"]

_COLUMNS = column_names(PayloadRow)
# Idempotent: two transactions of one payload (decided side by side) may both carry it.
INSERT_PAYLOAD = (
    f"INSERT INTO payloads ({', '.join(_COLUMNS)}) "  # noqa: S608 - constants only
    f"VALUES ({', '.join('?' for _ in _COLUMNS)}) ON CONFLICT (id) DO NOTHING"
)


class PendingPayloads:
    """Thread-safe: a payload's alerts may be decided on several threads."""

    def __init__(self) -> None:
        self._rows: dict[str, PayloadRow] = {}
        self._lock = threading.Lock()

    def add(self, row: PayloadRow) -> None:
        with self._lock:
            self._rows[row.id] = row

    def rows_for(self, ids: Iterable[str | None]) -> list[PayloadRow]:
        """The pending rows among `ids`; they stay pending until `stored` (a transaction that
        carried them may still roll back)."""
        with self._lock:
            return [self._rows[i] for i in set(ids) if i is not None and i in self._rows]

    def stored(self, rows: Iterable[PayloadRow]) -> None:
        """Their transaction committed."""
        with self._lock:
            for row in rows:
                self._rows.pop(row.id, None)

    def forget(self, payload_id: str) -> None:
        with self._lock:
            self._rows.pop(payload_id, None)
