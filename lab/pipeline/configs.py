"""Rendered configuration for a pipeline: the rule file, prometheus.yml and alertmanager.yml.

Everything comes from the shipped bundle in the checkout's `rules/` folder: the rule groups
through `rules/extract.py render()` (the one documented way to shorten `for:` and the
interval), and the Alertmanager route and receiver from `rules/alertmanager.yaml`
with only the URL, the credentials file and the waits replaced.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

import rules
from lab.pipeline.timing import Timing, prom_duration
from rules import extract

RULES_MANIFEST = "rollback-rules.yaml"
# The self-monitoring alerts; they read the receivers' /metrics, scraped as this job.
MONITORING_MANIFEST = "rollback-webhook-monitoring.yaml"
RECEIVER_JOB = "rollback-webhook"
# The kube-state-metrics series (the sandbox's /metrics, or real kube-state-metrics on the
# control plane) are scraped as the job they have on a cluster; the rules aggregate `job` away.
KSM_JOB = "kube-state-metrics"
ALERTMANAGER_FRAGMENT = "alertmanager.yaml"
RECEIVER_NAME = "rollback-webhook"
DRY_RUN_RECEIVER_NAME = "rollback-webhook-dry-run"
# The root route's receiver: alerts that match no child route go nowhere.
NULL_RECEIVER = "blackhole"


class PipelineUnavailable(RuntimeError):
    """The pipeline cannot run here (no binaries, no rules folder); the message says which."""


def rules_dir() -> Path:
    """The `rules` package's folder: the shipped manifest and Alertmanager fragment."""
    folder = Path(str(resources.files(rules)))
    if not (folder / RULES_MANIFEST).is_file() or not (folder / ALERTMANAGER_FRAGMENT).is_file():
        raise PipelineUnavailable(
            f"{folder}: the rules bundle ({RULES_MANIFEST}, {ALERTMANAGER_FRAGMENT}) is not "
            "there; run from a checkout of the repository"
        )
    return folder


def render_rule_file(timing: Timing, *, folder: Path | None = None) -> str:
    """The shipped groups as a rule file with `for:`, `keep_firing_for:` and the evaluation
    interval shortened."""
    folder = folder or rules_dir()
    text: str = extract.render(
        folder / RULES_MANIFEST,
        for_override=prom_duration(timing.for_seconds),
        interval_override=prom_duration(timing.evaluation_interval),
        keep_firing_for_override=prom_duration(timing.keep_firing_seconds),
    )
    return text


def render_monitoring_rule_file(timing: Timing, *, folder: Path | None = None) -> str:
    """The self-monitoring groups, shortened as render_rule_file shortens the rules."""
    folder = folder or rules_dir()
    text: str = extract.render(
        folder / MONITORING_MANIFEST,
        for_override=prom_duration(timing.for_seconds),
        interval_override=prom_duration(timing.evaluation_interval),
    )
    return text


def prometheus_config(
    *,
    sandbox_target: str,
    alertmanager_target: str,
    rule_file: Path,
    timing: Timing,
    receiver_targets: tuple[str, ...] = (),
    monitoring_rule_file: Path | None = None,
) -> dict[str, Any]:
    """prometheus.yml: scrape the sandbox as job kube-state-metrics with honor_labels (its series
    carry `namespace` and `pod` that must survive; its request-duration histogram comes with
    them, under the same job), evaluate the rule file, send to the one Alertmanager; with
    `receiver_targets`, also scrape the receivers' /metrics as job rollback-webhook (what the
    self-monitoring alerts and the dashboard read) and evaluate `monitoring_rule_file`."""
    interval = prom_duration(timing.scrape_interval)
    return {
        "global": {
            "scrape_interval": interval,
            # 2.42 refuses a scrape timeout longer than the interval (default 10s).
            "scrape_timeout": interval,
            "evaluation_interval": prom_duration(timing.evaluation_interval),
        },
        "rule_files": [str(rule_file)]
        + ([str(monitoring_rule_file)] if monitoring_rule_file is not None else []),
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}],
        },
        "scrape_configs": [
            {
                "job_name": KSM_JOB,
                "honor_labels": True,
                "static_configs": [{"targets": [sandbox_target]}],
            }
        ]
        + (
            [{"job_name": RECEIVER_JOB, "static_configs": [{"targets": list(receiver_targets)}]}]
            if receiver_targets
            else []
        ),
    }


@dataclass(frozen=True)
class ReceiverTarget:
    """Where one receiver listens and the file holding the bearer token Alertmanager sends."""

    url: str
    token_file: Path


def _fragment(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    path = folder / ALERTMANAGER_FRAGMENT
    document = yaml.safe_load(path.read_text())
    try:
        (route,) = document["routes"]
        (receiver,) = document["receivers"]
        webhook_config = receiver["webhook_configs"][0]
        webhook_config["http_config"]["authorization"]["credentials_file"]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise PipelineUnavailable(
            f"{path}: expected one route and one receiver with a webhook_configs entry using "
            f"http_config.authorization.credentials_file ({exc!r})"
        ) from exc
    return route, receiver


def _shortened(route: dict[str, Any], timing: Timing) -> dict[str, Any]:
    short = copy.deepcopy(route)
    short["group_wait"] = prom_duration(timing.group_wait)
    short["group_interval"] = prom_duration(timing.group_interval)
    short["repeat_interval"] = prom_duration(timing.repeat_interval)
    return short


def _pointed(receiver: dict[str, Any], *, name: str, target: ReceiverTarget) -> dict[str, Any]:
    pointed = copy.deepcopy(receiver)
    pointed["name"] = name
    config = pointed["webhook_configs"][0]
    config["url"] = target.url
    config["http_config"]["authorization"]["credentials_file"] = str(target.token_file)
    return pointed


def alertmanager_config(
    *,
    receiver: ReceiverTarget,
    timing: Timing,
    dry_run_receiver: ReceiverTarget | None = None,
    dry_run_namespaces: tuple[str, ...] = (),
    folder: Path | None = None,
) -> dict[str, Any]:
    """alertmanager.yml as docs tell users to build it: the shipped route as the root route's
    first child and the shipped receiver, with the URL, token file and waits replaced.

    With `dry_run_receiver`, the alerts of `dry_run_namespaces` go to a second, watch-only
    receiver first (a staged install); it is the same shipped route with one more matcher.
    """
    route, shipped_receiver = _fragment(folder or rules_dir())
    routes = []
    receivers = [{"name": NULL_RECEIVER}]
    if dry_run_receiver is not None and dry_run_namespaces:
        staged = _shortened(route, timing)
        staged["receiver"] = DRY_RUN_RECEIVER_NAME
        pattern = "|".join(dry_run_namespaces)
        staged["matchers"] = [*staged.get("matchers", []), f'namespace=~"{pattern}"']
        staged["continue"] = False
        routes.append(staged)
        receivers.append(
            _pointed(shipped_receiver, name=DRY_RUN_RECEIVER_NAME, target=dry_run_receiver)
        )
    main = _shortened(route, timing)
    main["receiver"] = RECEIVER_NAME
    routes.append(main)
    receivers.append(_pointed(shipped_receiver, name=RECEIVER_NAME, target=receiver))
    return {
        "route": {"receiver": NULL_RECEIVER, "group_by": ["alertname"], "routes": routes},
        "receivers": receivers,
    }


def write_yaml(path: Path, document: dict[str, Any]) -> Path:
    """Write a YAML document and return its path."""
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
