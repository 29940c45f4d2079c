"""Store-level fixtures for the controller, GC and metrics tests (no HTTP)."""

from __future__ import annotations

import pytest

from sandbox.controller import Controller
from sandbox.store import Store
from tests.sandbox.support import Clock


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
