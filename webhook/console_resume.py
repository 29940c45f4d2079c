"""The console's resume form: hand a paused GitOps owner back from the Deployment's page.

`POST /deployments/<namespace>/<name>/resume` (endpoint console_resume), form fields
`csrf_token` and `reason`, calls `webhook.resume.run_resume` with the session's name as the
actor, then redirects (303) to the Deployment's page, which shows the outcome:
`?resume=<decision id>` (the recorded `resumed` or `failed` decision) or `?resume=nothing`
(no pause by this service on it any more: someone already resumed or changed it). Any other
refusal (a resume of it in progress; a pause record its owner does not carry) is a page with
its status saying why.
A bad field is a 400 page naming it; no session goes to the login page; a CSRF token that is
not this session's is a 403. Registered by `install_console` with its session and CSRF checks,
so login and session handling stay in webhook.console.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from webhook import contract
from webhook.audit import AuditStore
from webhook.jsontext import unencodable_field
from webhook.resume import NothingPaused, ResumeError, parse_target, run_resume
from webhook.service import Service

NOTHING = "nothing"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class ResumeNote:
    """What the page says about the last resume asked from it."""

    done: bool
    text: str
    audit_id: str | None = None


def raw_field_problem(field: str) -> str | None:
    """`field: ...` when the urlencoded body holds bytes for `field` that are not UTF-8 (a lone
    surrogate's encoding, say): the form parser would re-quote or drop them, not refuse them."""
    if request.mimetype != FORM:
        return None
    raw = request.get_data(cache=True).decode("utf-8", "surrogateescape")
    for key, value in parse_qsl(raw, keep_blank_values=True, errors="surrogateescape"):
        if key == field and unencodable_field(value) is not None:
            return f"{field}: not text the audit can store (invalid UTF-8, a lone surrogate, a NUL)"
    return None


def resume_note(
    audit: AuditStore, choice: str | None, *, namespace: str, name: str
) -> ResumeNote | None:
    """The outcome the redirect points at, read back from the audit (never text from the URL)."""
    if not choice:
        return None
    if choice == NOTHING:
        return ResumeNote(
            False,
            f"nothing resumed: {namespace}/{name} carries no pause by rollback-webhook (someone "
            "already resumed it or changed its annotations)",
        )
    row = audit.get(choice)
    if row is None or row.get("source") != contract.Source.RESUME:
        return None
    if (row.get("namespace"), row.get("deployment")) != (namespace, name):
        return None
    done = row.get("outcome") == contract.Outcome.RESUMED
    verb = "resumed" if done else f"resume failed ({row.get('reason')})"
    return ResumeNote(done, f"{verb} by {row.get('actor')}: {row.get('detail')}", str(row["id"]))


def install_resume_form(
    app: Flask,
    service: Service,
    *,
    session_page: Callable[[Callable[..., BaseResponse]], Callable[..., BaseResponse]],
    csrf_ok: Callable[[Any], bool],
    problem: Callable[..., BaseResponse],
    secure: Callable[[BaseResponse], BaseResponse],
    max_reason: int,
) -> None:
    """POST /deployments/<namespace>/<name>/resume (see module doc)."""

    @app.post("/deployments/<namespace>/<name>/resume", endpoint="console_resume")
    @session_page
    def resume_form(session: Any, namespace: str, name: str) -> BaseResponse:
        bad = raw_field_problem("reason")  # before request.form: it reads the cached body
        if not csrf_ok(session):
            return problem(403, "CSRF token missing or invalid: reload the page", session)
        if bad:
            return problem(400, bad, session)
        reason = request.form.get("reason", "")
        if not reason.strip():
            return problem(400, "reason: required, say why the owner gets control back", session)
        if len(reason) > max_reason:
            return problem(400, f"reason: longer than {max_reason} characters", session)
        try:
            namespace, name, reason = parse_target(
                {"namespace": namespace, "deployment": name, "reason": reason}
            )
            decision = run_resume(
                service, namespace=namespace, deployment=name, actor=session.name, reason=reason
            )
            outcome = decision.id
        except NothingPaused:
            outcome = NOTHING  # the page says so; any other refusal is its own page
        except ResumeError as exc:
            return problem(exc.status, str(exc), session)
        target = url_for("console_deployment", namespace=namespace, name=name, resume=outcome)
        return secure(redirect(target, code=303))
