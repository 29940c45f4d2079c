"""Fixtures of the webhook/prom.py tests: a PrometheusEvidence on the stub, recording sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.prom_stub import NOW, PROM
from webhook.prom import PrometheusEvidence


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def prom(sleeps: list[float]) -> Iterator[PrometheusEvidence]:
    evidence = PrometheusEvidence(PROM, clock=lambda: NOW, sleep=sleeps.append)
    yield evidence
    evidence.close()
