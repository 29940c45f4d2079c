"""schemathesis against docs/openapi.yaml, in-process through the app's WSGI interface, on
every operation: generated requests (valid and invalid, with this server's credentials so they
get past authentication) never get a 5xx, and every answer is a status, content type and body
the spec declares. A fixed budget per operation, derandomised (tests/fuzz/budget.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lab.receiver_harness import TOKEN, Harness, hours, minutes
from tests.fuzz.budget import SCHEMATHESIS_EXAMPLES, budget
from tests.hostile.support import console_login
from tests.oncall.support import ALICE, OnCall
from webhook.console import SESSION_COOKIE

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class Api:
    """The app under test and the credentials each kind of operation is called with."""

    def __init__(self, oncall: OnCall) -> None:
        self.oncall = oncall
        harness: Harness = oncall.h
        harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
        response = console_login(oncall.client, ALICE)
        assert response.status_code == 302
        cookie = oncall.client.get_cookie(SESSION_COOKIE)
        assert cookie is not None
        self.session = cookie.value

    def credentials(self, path: str) -> dict[str, Any]:
        if path == "/api/v1/alerts":
            return {"headers": {"Authorization": f"Bearer {TOKEN}"}}
        if path.startswith("/api/"):
            return {"headers": {"Authorization": f"Bearer {ALICE}"}}
        return {"cookies": {SESSION_COOKIE: self.session}}


@pytest.fixture
def api(oncall: OnCall) -> Api:
    return Api(oncall)


# Loaded eagerly (schemathesis' fixture-based lazy loading fails under pytest 9); each case is
# sent to the test's own app in-process with `app=`.
schema = schemathesis.openapi.from_path(SPEC)


@schema.parametrize()
@budget(SCHEMATHESIS_EXAMPLES)
def test_no_generated_request_gets_a_5xx_or_an_undeclared_answer(case: Any, api: Api) -> None:
    response = case.call(app=api.oncall.app, **api.credentials(case.operation.path))
    case.validate_response(response, checks=CHECKS)
