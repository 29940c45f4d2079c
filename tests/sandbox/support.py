"""Helpers shared by the store-level sandbox tests."""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    """A settable clock for the store."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


# A two-replica Deployment `shop/web` for the store-level tests.
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "shop/web:1"}]
"""
