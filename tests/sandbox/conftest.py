"""Store-level fixtures for the controller, GC and metrics tests (no HTTP)."""

from __future__ import annotations

import pytest

from tests.sandbox.support import Clock
from webhook.sandbox.controller import Controller
from webhook.sandbox.store import Store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Store:
    """A store with the Deployment controller attached and namespace `shop`."""
    store = Store(clock=clock)
    Controller(store)
    store.create("namespaces", {"metadata": {"name": "shop"}, "spec": {}})
    return store
