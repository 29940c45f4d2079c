"""The stubbed Prometheus of the webhook/prom.py tests: `responses` answers /api/v1/query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import responses
from responses import matchers

PROM = "http://prometheus.test:9090"
QUERY_URL = f"{PROM}/api/v1/query"
NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
END = NOW - timedelta(minutes=10)


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, object]:
    """A Prometheus instant-vector answer."""
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": labels, "value": [END.timestamp(), value]} for labels, value in samples
            ],
        },
    }


def answer(query: str, body: dict[str, object]) -> None:
    responses.get(
        QUERY_URL,
        json=body,
        match=[matchers.query_param_matcher({"query": query}, strict_match=False)],
    )


def sent_params(call_index: int) -> dict[str, str]:
    request = responses.calls[call_index].request
    assert request.url is not None
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
