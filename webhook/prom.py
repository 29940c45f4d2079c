"""Prometheus as a witness: revision health history and alert confirmation.

The only module that imports `prometheus_api_client`. Everything Prometheus says is turned
into a verdict with a human sentence; anything Prometheus cannot say (no data, 5xx, timeout)
becomes "unknown", never "healthy", so callers fall back to weaker evidence or act without
confirmation and say so.

Requests are bounded: each attempt has a client timeout (connect and read) and asks
Prometheus to give up evaluating after the same time; a question is retried at most
`retries` times, only on transient failures (timeouts, connection errors, 429 and 5xx), with
a short capped backoff. Worst case per question is about
`(retries + 1) * timeout_seconds` per socket phase plus `retries` backoffs of at most 1 s.
The library's own urllib3 retries (3 retries, 1 s backoff) are disabled so that bound holds.
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from webhook import contract
from webhook.config import Prometheus as PrometheusSettings
from webhook.promql import alerts_query, expr_from_generator_url, readiness_query

HEALTHY = contract.Health.HEALTHY
UNHEALTHY = contract.Health.UNHEALTHY
UNKNOWN = contract.Health.UNKNOWN
CONFIRMED = contract.Confirmation.CONFIRMED
NOT_CONFIRMED = contract.Confirmation.NOT_CONFIRMED

# A 10-minute window at 30 s steps is 20 evaluations: fine-grained enough to catch a pod that
# was unready for a scrape or two, cheap enough for one request (Prometheus' per-query limit
# is 11,000 points per series).
MAX_STEP_SECONDS = 30
BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 1.0
_DETAIL_LIMIT = 200


@dataclass(frozen=True)
class Evidence:
    """What Prometheus says about one revision's health over a window."""

    verdict: str  # "healthy" | "unhealthy" | "unknown"
    detail: str  # human sentence, goes into decision detail and `history`
    queries: tuple[str, ...]  # the PromQL sent, in order


@dataclass(frozen=True)
class Confirmation:
    """Whether Prometheus still confirms an alert's condition at decision time."""

    verdict: str  # "confirmed" | "not_confirmed" | "unknown"
    detail: str
    expr: str | None  # the expression re-evaluated, None when the URL gave none


class _QueryFailed(Exception):
    """A query that got no usable answer; `reason` is a short human phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clip(text: str, limit: int = _DETAIL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _require_aware(name: str, moment: datetime) -> None:
    # A naive datetime would be read in the host's local zone: silently wrong windows.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")


class PrometheusEvidence:
    """Asks one Prometheus about revision health and alert conditions, with bounded retries."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 5,
        retries: int = 2,
        clock: Callable[[], datetime] = _utcnow,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Connect lazily to the Prometheus at `url` (requests go there only, never to the
        host named in an alert's generatorURL).

        `headers` (e.g. an Authorization bearer) go with every request and are never logged.
        `sleep` is the backoff between retries (tests pass a recorder).
        """
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"prometheus url must be http(s)://host[:port][/path], got {url!r}")
        if not timeout_seconds > 0:
            raise ValueError(f"prometheus timeout_seconds must be > 0, got {timeout_seconds!r}")
        if retries < 0:
            raise ValueError(f"prometheus retries must be >= 0, got {retries!r}")
        self._url = url.rstrip("/")
        # Shown in details: without user:password@ so credentials never reach the audit.
        netloc = parts.netloc.rpartition("@")[2]
        self._display_url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._timeout = float(timeout_seconds)
        self._retries = retries
        self._clock = clock
        self._sleep = sleep
        self._client = PrometheusConnect(
            url=self._url,
            headers=dict(headers) if headers else None,
            # We retry ourselves, bounded; read=False makes a read timeout surface as
            # requests' ReadTimeout instead of a generic ConnectionError.
            retry=Retry(total=0, read=False, redirect=0),
            timeout=self._timeout,  # annotated int upstream; requests takes any number
        )

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    def reachable(self) -> str | None:
        """None when Prometheus answers a trivial query, else why not (for `check-config`)."""
        try:
            self._query("vector(1)", at=self._clock())
        except _QueryFailed as exc:
            return str(exc)
        return None

    def revision_health(
        self, *, namespace: str, deployment: str, replicaset: str, start: datetime, end: datetime
    ) -> Evidence:
        """Whether a revision was healthy over [start, end] according to Prometheus.

        Healthy means every pod owned by the ReplicaSet was Ready at every step of the window
        (`readiness_query`) and no `ALERTS` series with a `rollback_trigger` label fired for
        that namespace/replicaset (`alerts_query`). Both are instant queries at `end`. Missing
        readiness data, a window ending in the future, or Prometheus failing after retries give
        "unknown"; firing alerts give "unhealthy" even when readiness data is missing.
        """
        for label, value in (("namespace", namespace), ("replicaset", replicaset)):
            if not value:
                raise ValueError(f"revision_health needs a non-empty {label}")
        _require_aware("start", start)
        _require_aware("end", end)
        window = round((end - start).total_seconds())
        if window < 1:
            raise ValueError(
                f"revision_health window must be at least 1s, got "
                f"start={start.isoformat()} end={end.isoformat()}"
            )
        who = f"ReplicaSet {namespace}/{replicaset} (Deployment {deployment})"
        span = f"{_iso(start)}..{_iso(end)}"
        now = self._clock()
        if end > now:
            # Lookback would let samples from before `now` stand in for the future part.
            return Evidence(
                UNKNOWN,
                f"Prometheus cannot vouch for {who} over {span}: the "
                f"window ends after now ({_iso(now)})",
                (),
            )
        step = max(1, min(MAX_STEP_SECONDS, window // 10))
        # Steps fall on multiples of `step`; a full window has at least window // step of them
        # (one more when Prometheus includes the left edge, as 2.x does).
        expected_steps = window // step
        sent: list[str] = []

        def ask(promql: str) -> list[Any]:
            sent.append(promql)
            return self._query(promql, at=end)

        try:
            stats = _by_label(
                ask(
                    readiness_query(
                        namespace=namespace,
                        replicaset=replicaset,
                        window_seconds=window,
                        step_seconds=step,
                    )
                ),
                "stat",
            )
            worst, steps = stats.get("worst"), stats.get("steps")
            if worst is not None and worst < 1:
                # Unready pods are evidence even when part of the window has no data.
                return Evidence(
                    UNHEALTHY,
                    f"Prometheus: not every pod of {who} was ready over "
                    f"{span} (at worst {max(worst, 0):.0%} ready)",
                    tuple(sent),
                )
            # Readiness is fine or unknown: firing alerts can still prove the revision bad.
            alerts = ask(
                alerts_query(namespace=namespace, replicaset=replicaset, window_seconds=window)
            )
        except _QueryFailed as failed:
            return Evidence(
                UNKNOWN, f"no Prometheus evidence for {who}: {failed.reason}", tuple(sent)
            )
        if alerts:
            names = sorted(
                f"{a.get('metric', {}).get('alertname', '?')} "
                f"({a.get('metric', {}).get('rollback_trigger', '?')})"
                for a in alerts
            )
            return Evidence(
                UNHEALTHY,
                f"Prometheus: rollback-trigger alerts fired for {who} "
                f"over {span}: {_clip(', '.join(names))}",
                tuple(sent),
            )
        if worst is None or steps is None or steps < expected_steps:
            return Evidence(
                UNKNOWN,
                f"Prometheus has pod readiness data (kube_pod_owner, kube_pod_status_ready) "
                f"for {who} at only {int(steps or 0)} of {expected_steps} {step}s steps of "
                f"{span}; missing data is not evidence of health",
                tuple(sent),
            )
        return Evidence(
            HEALTHY,
            f"Prometheus: every pod of {who} was ready over {span} "
            f"({step}s steps) and no rollback-trigger alert fired for it",
            tuple(sent),
        )

    def confirm(
        self, *, generator_url: str, at: datetime, labels: Mapping[str, str] | None = None
    ) -> Confirmation:
        """Re-evaluate an alert's expression (from its generatorURL) as an instant query at `at`.

        Non-empty result: "confirmed"; empty: "not_confirmed"; a URL without `g0.expr`, a
        non-vector result or Prometheus failing after retries: "unknown" (the caller acts
        without confirmation and says so). With `labels` (the alert's labels), only result
        series whose every label equals the alert's are counted, so a rule that watches every
        Deployment is not confirmed by another Deployment's series.
        """
        _require_aware("at", at)
        expr = expr_from_generator_url(generator_url)
        if expr is None:
            return Confirmation(
                UNKNOWN,
                f"cannot confirm: generatorURL has no g0.expr: {_clip(repr(generator_url))}",
                None,
            )
        shown = _clip(expr, 120)
        try:
            result = self._query(expr, at=at)
        except _QueryFailed as failed:
            return Confirmation(UNKNOWN, f"cannot confirm `{shown}`: {failed.reason}", expr)
        if not all(isinstance(s, dict) for s in result):
            return Confirmation(
                UNKNOWN, f"cannot confirm `{shown}`: it does not return an instant vector", expr
            )
        if labels is not None:
            result = [s for s in result if _is_subset(s.get("metric", {}), labels)]
        scope = " matching the alert's labels" if labels is not None else ""
        if result:
            return Confirmation(
                CONFIRMED,
                f"Prometheus confirms `{shown}` at {_iso(at)}: {len(result)} series{scope}",
                expr,
            )
        return Confirmation(
            NOT_CONFIRMED,
            f"Prometheus no longer confirms `{shown}` at {_iso(at)}: no series{scope}",
            expr,
        )

    def _query(self, promql: str, *, at: datetime) -> list[Any]:
        """One instant query at `at`, retried on transient failures; raises _QueryFailed."""
        params = {
            "time": f"{at.timestamp():.3f}",
            # Prometheus stops evaluating when we stop waiting.
            "timeout": f"{self._timeout:g}s",
        }
        attempts = self._retries + 1
        reason = ""
        for attempt in range(attempts):
            if attempt:
                self._sleep(min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)))
            try:
                result = self._client.custom_query(query=promql, params=params)
            except requests.exceptions.ConnectTimeout:
                reason = f"connecting timed out after {self._timeout:g}s"
            except requests.exceptions.Timeout:
                reason = f"no answer within {self._timeout:g}s"
            except requests.exceptions.ConnectionError as exc:
                reason = f"connection failed: {_root_cause(exc)}"
            except PrometheusApiClientException as exc:
                status, message = _http_failure(str(exc))
                reason = f"HTTP {status}: {message}" if status else _clip(str(exc))
                if status is not None and status < 500 and status != 429:
                    # A bad query or a refused token does not get better by asking again.
                    raise _QueryFailed(
                        f"Prometheus at {self._display_url} answered {reason}"
                    ) from exc
            except (requests.exceptions.RequestException, ValueError, KeyError, TypeError) as exc:
                # 200 without Prometheus' JSON shape (a proxy's HTML page, a wrong URL path).
                raise _QueryFailed(
                    f"Prometheus at {self._display_url} gave an unreadable answer: "
                    f"{type(exc).__name__}: {_clip(str(exc), 120)}"
                ) from exc
            else:
                if not isinstance(result, list):
                    raise _QueryFailed(
                        f"Prometheus at {self._display_url} gave an unreadable answer: "
                        f"result is {type(result).__name__}, not a list"
                    )
                return result
        raise _QueryFailed(
            f"Prometheus at {self._display_url} failed after {attempts} "
            f"attempt{'s' if attempts > 1 else ''}: {reason}"
        )


def _by_label(result: list[Any], label: str) -> dict[str, float]:
    """Values of an instant vector keyed by one label; NaN and malformed samples are dropped."""
    values: dict[str, float] = {}
    for sample in result:
        try:
            key = str(sample["metric"][label])
            value = float(sample["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if not math.isnan(value):
            values[key] = value
    return values


_STATUS = re.compile(r"HTTP Status Code (\d{3}) \((b(['\"]).*\3)\)\s*$", re.DOTALL)


def _http_failure(message: str) -> tuple[int | None, str]:
    """Status code and Prometheus' `error` field from the library's exception message.

    prometheus_api_client raises `HTTP Status Code <n> (<repr of the body bytes>)` and keeps
    no response object, so the body is recovered from that repr.
    """
    match = _STATUS.search(message)
    if not match:
        return None, _clip(message, 160)
    text = match.group(2)
    if len(text) > 65536:  # a huge proxy page: its opening says enough
        return int(match.group(1)), _clip(text, 160)
    try:
        text = ast.literal_eval(text).decode("utf-8", "replace").strip() or "(empty body)"
        text = str(json.loads(text)["error"])
    except (ValueError, SyntaxError, TypeError, KeyError, AttributeError):
        pass  # not Prometheus' JSON error shape: the body text (or its repr) stands
    return int(match.group(1)), _clip(text, 160)


def _root_cause(exc: BaseException) -> str:
    """The OS-level reason under requests' and urllib3's wrappers ("Connection refused").

    The wrappers' own text repeats the pool, the full query URL and object addresses.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        todo.extend(
            e
            for e in (
                getattr(current, "reason", None),
                current.__cause__,
                current.__context__,
                *current.args,
            )
            if isinstance(e, BaseException)
        )
    return type(exc).__name__


def _is_subset(series_labels: Mapping[str, Any], alert_labels: Mapping[str, str]) -> bool:
    # Rule labels (rollback_trigger, severity) are added on top of the expression's output, so
    # the output's labels are a subset of the alert's.
    return all(
        alert_labels.get(name) == value
        for name, value in series_labels.items()
        if name != "__name__"
    )


def from_settings(
    settings: PrometheusSettings, *, clock: Callable[[], datetime] = _utcnow
) -> PrometheusEvidence | None:
    """The one place the client is built from the configuration (None without a URL)."""
    if not settings.url:
        return None
    return PrometheusEvidence(
        settings.url,
        timeout_seconds=settings.timeout_seconds,
        retries=settings.retries,
        clock=clock,
    )
