"""Helpers shared by the store-level sandbox tests."""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    """A settable clock for the store."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now
