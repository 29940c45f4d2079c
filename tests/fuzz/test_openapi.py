"""docs/openapi.yaml describes exactly the app's routes (path and method, nothing missing or
extra), and its payload schema is the one the receiver validates with."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from flask import Flask

from tests.oncall.support import OnCall
from webhook.alerts import PAYLOAD_SCHEMA
from webhook.contract import OUTCOMES

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = {"get", "post", "put", "patch", "delete"}


def spec() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return document


def app_routes(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI-style path, method) of every route but Flask's own static files."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        routes |= {(path, m.lower()) for m in rule.methods or () if m.lower() in METHODS}
    return routes


def spec_routes() -> set[tuple[str, str]]:
    return {(p, m) for p, item in spec()["paths"].items() for m in item if m in METHODS}


def test_the_spec_lists_exactly_the_apps_routes(oncall: OnCall) -> None:
    served, described = app_routes(oncall.app), spec_routes()
    assert served - described == set(), "routes missing from docs/openapi.yaml"
    assert described - served == set(), "docs/openapi.yaml describes routes the app lacks"


def test_path_parameters_are_declared(oncall: OnCall) -> None:
    for path, item in spec()["paths"].items():
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{([a-z_]+)}", path)), (method, path)


def test_the_payload_schema_is_the_receivers(oncall: OnCall) -> None:
    schemas = spec()["components"]["schemas"]
    payload, alert = schemas["AlertmanagerPayload"], schemas["Alert"]
    assert payload["required"] == PAYLOAD_SCHEMA["required"]
    assert set(payload["properties"]) == set(PAYLOAD_SCHEMA["properties"])
    ours = PAYLOAD_SCHEMA["properties"]
    assert payload["properties"]["truncatedAlerts"] == ours["truncatedAlerts"]
    assert payload["properties"]["version"]["enum"] == ours["version"]["enum"]
    assert alert["required"] == ours["alerts"]["items"]["required"]
    assert set(alert["properties"]) == set(ours["alerts"]["items"]["properties"])
    decision = schemas["Decision"]["properties"]["outcome"]["enum"]
    assert decision == [str(o) for o in OUTCOMES]
