"""The console's page per Deployment, and what the decision page shows beyond the audit row.

`/deployments/<namespace>/<name>`: the current revision; every revision with its images,
change-cause, verdict, health evidence and bad mark; cooldown and circuit breaker state with
the times they end; the GitOps owner and any recorded pause, with the resume form
(webhook.console_resume) while this service's pause is on it; a server-rendered SVG timeline
(webhook.timeline) of the revisions' active spans, alerts and rollbacks; the Deployment's
decisions, with replay previews listed apart from real decisions.

Registered by `install_console` through `install_deployment_pages`, which receives the console's
session check and page helpers so login and session handling stay in webhook.console.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, request
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from webhook import contract
from webhook.config import Settings
from webhook.console_resume import resume_note
from webhook.durable_gate import ledger_since
from webhook.gitops import ownership
from webhook.history import History, build_history
from webhook.kube import InvalidName, KubeError, NotFound, Obj
from webhook.overrides import policy_for
from webhook.replay import OVERRIDABLE, OVERRIDE_KEYS
from webhook.revisions import json_annotation, last_action, last_action_time, parse_k8s_time
from webhook.service import Service, evidence_sources
from webhook.timeline import Lane, Mark, render_svg, spans_from_activations
from webhook.views import label_selector

DECISIONS_SHOWN = 100
CHANGE_CAUSE = "kubernetes.io/change-cause"


@dataclass(frozen=True)
class Clock:
    """A state that ends at a known time (cooldown, an open circuit)."""

    active: bool
    summary: str
    ends: datetime | None = None


@dataclass(frozen=True)
class ReplayChoice:
    """Whether the decision page offers the replay form, with which overrides, or why not."""

    offer: bool
    overrides: tuple[str, ...]
    why: str


def is_preview(decision: dict[str, Any]) -> bool:
    """A replay's dry run: a preview someone asked for, not a decision about an alert."""
    return decision.get("source") == contract.Source.REPLAY and bool(decision.get("dry_run"))


def split_previews(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(decisions, replay previews), each in the order given."""
    return [r for r in rows if not is_preview(r)], [r for r in rows if is_preview(r)]


def replay_choice(decision: dict[str, Any]) -> ReplayChoice:
    """The replay form only where an override can change the outcome (README: replay)."""
    reason = str(decision.get("reason") or "")
    override = OVERRIDABLE.get(reason)
    outcome = decision.get("outcome")
    if outcome == contract.ROLLED_BACK:
        return ReplayChoice(False, (), "this alert already rolled the Deployment back")
    if override and override not in (decision.get("overrides") or []):
        return ReplayChoice(True, OVERRIDE_KEYS, f"{reason} is overridable with {override}")
    if outcome == contract.DRY_RUN:
        return ReplayChoice(False, (), "a dry run: the alert would have rolled back as it was")
    return ReplayChoice(
        False,
        (),
        f"{reason or outcome} is never overridable by a replay (opt-out, namespace deny, bad "
        "marks, paused and the circuit breaker are not); `rollback-webhook replay --audit-id` "
        "re-runs it unchanged if the cluster has changed since",
    )


def images_of(service: Service, namespace: str, replicaset: str | None) -> list[str] | None:
    """The container images of a ReplicaSet as it is now (None: gone or unreadable)."""
    if not replicaset:
        return None
    try:
        replicaset_obj = service.cluster.get_replicaset(namespace, replicaset)
    except KubeError:
        return None
    containers = (((replicaset_obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    return [str(c.get("image", "?")) for c in containers]


def _parse(text: Any) -> datetime | None:
    return parse_k8s_time(str(text)) if text else None


def cooldown_state(service: Service, deployment: Obj, *, now: datetime) -> Clock:
    """The Deployment's cooldown after its last rollback by this service."""
    policy = policy_for(service.settings, deployment)
    acted = last_action_time(deployment)
    if acted is None:
        return Clock(False, f"no rollback recorded (cooldown would be {policy.cooldown}s)")
    ends = acted + timedelta(seconds=policy.cooldown)
    action = last_action(deployment) or {}
    what = f"last rollback {_utc(acted)} (audit {action.get('audit_id', '?')})"
    if now < ends:
        return Clock(True, f"in cooldown: {what}; alerts are skipped until", ends)
    return Clock(False, f"not in cooldown: {what}; the {policy.cooldown}s cooldown ended", ends)


def circuit_state(service: Service, *, now: datetime) -> Clock:
    """The cluster-wide circuit breaker: rollbacks within circuit_window against max_rollbacks."""
    settings = service.settings
    window = timedelta(seconds=int(settings.circuit_window))
    since = now - window
    rows = service.audit.query(outcome=contract.ROLLED_BACK, since=since, limit=500)
    times = sorted(t for t in (_parse(r.get("time")) for r in rows) if t is not None)
    span, unread = window, ""
    if service.ledger is not None:  # every replica's bookings, where they share no store
        try:
            start = ledger_since(settings, now)
            booked = sorted(slot.at for slot in service.ledger.slots() if slot.at >= start)
        except KubeError as exc:
            booked, unread = [], f" (the circuit ledger {service.ledger.what} unread: {exc})"
        unread += _ahead(booked, settings, now=now, span=now - start)
        if len(booked) > len(times):  # counted as the ledger counts them (durable_gate)
            times, span = booked, now - start
    elsewhere = service.cluster_rollbacks.count_since(since)
    count = max(len(times), elsewhere)
    limit = settings.max_rollbacks
    summary = f"{count} of {limit} rollbacks in the last {int(window.total_seconds())}s{unread}"
    if count < limit:
        return Clock(False, f"closed: {summary}")
    # Open until enough of the counted rollbacks leave the window (this replica's record).
    leaving = count - limit
    ends = times[leaving] + span if leaving < len(times) else None
    return Clock(True, f"open: {summary}; no rollbacks anywhere until", ends)


def _ahead(booked: list[datetime], settings: Settings, *, now: datetime, span: timedelta) -> str:
    """Say so when slots are dated beyond max_clock_skew ahead of this pod's clock (the ledger
    books nothing from a process whose clock is off the API server's, so a clock that was
    wrong, the API server's too, or a hand edit): they count until their own date has left the
    window the ledger counts (`span`: ledger_since) (never fewer counted; the price is a
    breaker held open longer)."""
    skew = timedelta(seconds=int(settings.max_clock_skew))
    ahead = [at for at in booked if at > now + skew]
    if not ahead:
        return ""
    last = max(ahead) + span
    return (
        f" ({len(ahead)} of them dated more than max_clock_skew {int(skew.total_seconds())}s "
        f"ahead of this pod's clock, as late as {_utc(max(ahead))}: they count until "
        f"{_utc(last)}; a clock was wrong when they were booked, or the Lease was edited)"
    )


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _was(marks: tuple[str, ...]) -> str:
    """' (was 1)' for a re-adopted ReplicaSet: the revision number it had before."""
    for mark in marks:
        if mark.startswith("re-adopted from "):
            return f" (was {mark.removeprefix('re-adopted from ')})"
    return ""


def _short(image: str) -> str:
    return image.rsplit("/", 1)[-1]


# The timeline's windows offered as links (no scripts): label -> seconds (0: everything).
WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "all": 0}


def window_start(
    choice: str | None, decisions: list[dict[str, Any]], *, now: datetime
) -> datetime | None:
    """Where the timeline starts: the chosen window, else the recent story (the decisions
    with a quarter of their span before them, at least ten minutes), else everything."""
    if choice in WINDOWS:
        seconds = WINDOWS[choice]
        return now - timedelta(seconds=seconds) if seconds else None
    times = [
        t for t in (_parse(d.get("starts_at")) or _parse(d.get("time")) for d in decisions) if t
    ]
    if not times:
        return None
    first = min(times)
    return first - max((now - first) / 4, timedelta(minutes=10))


def timeline(
    history: History,
    decisions: list[dict[str, Any]],
    bad_marks: dict[str, Any],
    *,
    now: datetime,
    since: datetime | None = None,
) -> Markup:
    """The SVG picture of the page (decisions: real ones only, previews left out)."""
    lanes = [
        Lane(
            row.replicaset,
            f"rev {row.number}{_was(row.marks)} {', '.join(map(_short, row.images))}",
        )
        for row in history.rows
    ]
    known = {lane.key for lane in lanes}
    activations = [(row.created, row.replicaset) for row in history.rows]
    activations += [
        (row.active_since, row.replicaset)
        for row in history.rows
        if row.verdict == "current" and row.active_since is not None
    ]
    marks: list[Mark] = []
    for d in decisions:
        at, lane = _parse(d.get("time")), d.get("from_replicaset")
        if at is None or lane not in known:
            continue
        if d.get("outcome") == contract.ROLLED_BACK and d.get("to_replicaset") in known:
            activations.append((at, str(d["to_replicaset"])))
            marks.append(
                Mark(
                    "rollback",
                    str(lane),
                    at,
                    f"rolled back rev {d.get('from_revision')} -> {d.get('to_revision')} "
                    f"at {at.isoformat()} ({d.get('alertname')}, audit {d.get('id')})",
                    to_lane=str(d["to_replicaset"]),
                )
            )
        started = _parse(d.get("starts_at")) or at
        acted = d.get("outcome") in (contract.ROLLED_BACK, contract.DRY_RUN)
        marks.append(
            Mark(
                "alert" if acted else "skipped",
                str(lane),
                started,
                f"{d.get('alertname')} started {started.isoformat()}: {d.get('outcome')}"
                + (f" ({d.get('reason')})" if d.get("reason") else ""),
            )
        )
    for replicaset, mark in bad_marks.items():
        at = _parse(mark.get("time"))
        if at is not None:
            why = f"{mark.get('alertname') or '?'} ({mark.get('trigger') or '?'})"
            audit = f", audit {mark['audit_id']}" if mark.get("audit_id") else ""
            marks.append(
                Mark("bad", replicaset, at, f"marked bad at {at.isoformat()}: {why}{audit}")
            )
    spans = spans_from_activations(activations)
    wide = render_svg(lanes=lanes, spans=spans, marks=marks, now=now, since=since)
    # A second, narrower drawing for phones (CSS shows one): a scaled-down wide one would
    # have unreadable labels, a scrolled one hides the recent end.
    narrow = render_svg(
        lanes=lanes,
        spans=spans,
        marks=marks,
        now=now,
        since=since,
        width=360,
        label_width=84,
        element_id="timeline-narrow",
    )
    return Markup(f'<div class="wide">{wide}</div><div class="narrow">{narrow}</div>')  # noqa: S704 - escaped in render_svg


def deployment_context(
    service: Service, namespace: str, name: str, *, window: str | None = None
) -> dict[str, Any]:
    """Everything the page shows (KubeError when the Deployment cannot be read)."""
    now = service.clock()
    deployment = service.cluster.get_deployment(namespace, name)
    replicasets = service.cluster.list_replicasets(
        namespace, label_selector=label_selector(deployment)
    )
    annotations = {
        str(rs["metadata"]["name"]): rs["metadata"].get("annotations") or {} for rs in replicasets
    }
    history = build_history(
        cluster=service.cluster,
        settings=service.settings,
        namespace=namespace,
        name=name,
        sources=evidence_sources(service.prometheus),
    )
    bad_marks: dict[str, Any] = {}
    for replicaset, values in annotations.items():
        mark = json_annotation(values, contract.ANNOTATION_BAD_REVISION)
        if mark:  # a mark edited past reading is still shown as a mark
            bad_marks[replicaset] = mark if "reason" in mark else {**mark, "reason": "unreadable"}
    rows = service.audit.query(namespace=namespace, deployment=name, limit=DECISIONS_SHOWN)
    decisions, previews = split_previews(rows)
    current = next((row for row in history.rows if row.verdict == "current"), None)
    owned = ownership(deployment, service.settings.gitops)
    return {
        "namespace": namespace,
        "name": name,
        "now": now,
        "history": history,
        "current": current,
        "change_causes": {rs: a.get(CHANGE_CAUSE, "") for rs, a in annotations.items()},
        "bad_marks": bad_marks,
        "cooldown": cooldown_state(service, deployment, now=now),
        "circuit": circuit_state(service, now=now),
        "ownership": owned.lines(),
        "resumable": owned.paused is not None,
        "paused": bool((deployment.get("spec") or {}).get("paused")),
        "decisions": decisions,
        "previews": previews,
        "timeline": timeline(
            history,
            decisions,
            bad_marks,
            now=now,
            since=window_start(window, decisions, now=now),
        ),
        "windows": list(WINDOWS),
        "window": window if window in WINDOWS else None,
        "dry_run": service.settings.dry_run,
    }


def decision_extras(service: Service, decision: dict[str, Any]) -> dict[str, Any]:
    """What the decision page adds to the audit row: the images rolled back from and to (as
    the ReplicaSets hold them now), the cooldown's end for a cooldown skip, the replay choice."""
    namespace = str(decision.get("namespace") or "")
    extras: dict[str, Any] = {
        "from_images": images_of(service, namespace, decision.get("from_replicaset")),
        "to_images": images_of(service, namespace, decision.get("to_replicaset")),
        "replay": replay_choice(decision),
        "cooldown": None,
    }
    if decision.get("reason") == contract.SkipReason.COOLDOWN and decision.get("deployment"):
        try:
            deployment = service.cluster.get_deployment(namespace, str(decision["deployment"]))
        except KubeError:
            return extras
        extras["cooldown"] = cooldown_state(service, deployment, now=service.clock())
    return extras


def install_deployment_pages(
    app: Flask,
    service: Service,
    *,
    session_page: Callable[[Callable[..., BaseResponse]], Callable[..., BaseResponse]],
    page: Callable[..., BaseResponse],
    problem: Callable[..., BaseResponse],
) -> None:
    """GET /deployments/<namespace>/<name> (endpoint console_deployment)."""

    @app.get("/deployments/<namespace>/<name>", endpoint="console_deployment")
    @session_page
    def deployment_page(session: Any, namespace: str, name: str) -> BaseResponse:
        try:
            context = deployment_context(
                service, namespace, name, window=request.args.get("window")
            )
        except NotFound:
            return problem(404, f"no Deployment {namespace}/{name}", session)
        except InvalidName as exc:  # a name no Deployment can have: none to show, not an outage
            return problem(404, str(exc), session)
        except KubeError as exc:
            return problem(503, f"cannot read {namespace}/{name}: {exc}", session)
        resumed = request.args.get("resume")
        note = resume_note(service.audit, resumed, namespace=namespace, name=name)
        return page("deployment.html", session=session, resume_note=note, **context)
