"""The audit's errors: the receiver answers 503 for both, so Alertmanager retries."""

from __future__ import annotations


class AuditUnavailable(Exception):
    """The audit store cannot be written: the receiver answers 503 so Alertmanager retries."""


class SchemaTooNew(AuditUnavailable):
    """The store was written by a newer rollback-webhook: refused, so nothing is lost."""
