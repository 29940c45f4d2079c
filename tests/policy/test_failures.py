"""The README's `failed` row: what each cluster error means for the decision (the shell maps
errors the facts raised; the policy itself never catches them). Errors only, no client."""

from __future__ import annotations

import pytest

from webhook.contract import FailReason, Outcome
from webhook.decide import failure_for
from webhook.kube import Conflict, Forbidden, Invalid, InvalidName, KubeError, NotFound, Transient
from webhook.policy import Found


@pytest.mark.parametrize(
    ("error", "reason", "retry"),
    [
        (Transient("GET: timed out", timeout=True), FailReason.TIMEOUT, True),
        (Transient("GET: HTTP 503", status=503), FailReason.API_ERROR, True),
        (Forbidden("PUT: HTTP 403", status=403), FailReason.FORBIDDEN, False),
        (Invalid("PUT: HTTP 422", status=422), FailReason.API_ERROR, False),
        (InvalidName("refused to build an API path"), FailReason.API_ERROR, False),
        (NotFound("PATCH: HTTP 404", status=404), FailReason.API_ERROR, False),
        (Conflict("POST: HTTP 409", status=409), FailReason.API_ERROR, False),
    ],
)
def test_a_cluster_error_is_failed_with_its_reason(
    error: KubeError, reason: FailReason, retry: bool
) -> None:
    concluded = failure_for(error, Found(deployment="web"))
    assert (concluded.outcome, concluded.reason) == (Outcome.FAILED, reason)
    # Only what is worth Alertmanager's retry answers 503 (transient).
    assert concluded.transient is retry
    assert str(error) in concluded.detail
