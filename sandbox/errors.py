"""API errors as the apiserver writes them: `Status` objects with a code and a reason.

Messages follow k8s.io/apimachinery/pkg/api/errors/errors.go (NewNotFound, NewAlreadyExists,
NewConflict, NewInvalid, NewBadRequest, NewMethodNotSupported, ...), so clients that match
on them (kubectl prints them verbatim) see what a cluster says.
"""

from __future__ import annotations

from typing import Any

from sandbox.discovery import ResourceInfo

# The reason the apiserver gives with each status code (metav1.StatusReason*).
STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """An error answer: HTTP `code`, Kubernetes `reason`, and a message."""

    def __init__(
        self, code: int, reason: str, message: str, *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The metav1.Status body for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def qualified(info: ResourceInfo) -> str:
    """ "deployments.apps", or "pods" for the core group, as error messages name them."""
    return f"{info.resource}.{info.group}" if info.group else info.resource


def _details(info: ResourceInfo, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": info.resource}
    if info.group:
        details["group"] = info.group
    return details


def not_found(info: ResourceInfo, name: str) -> ApiError:
    """404 NotFound for a named object."""
    return ApiError(
        404, "NotFound", f'{qualified(info)} "{name}" not found', details=_details(info, name)
    )


def already_exists(info: ResourceInfo, name: str) -> ApiError:
    """409 AlreadyExists on create."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(info)} "{name}" already exists',
        details=_details(info, name),
    )


def conflict(info: ResourceInfo, name: str, why: str | None = None) -> ApiError:
    """409 Conflict for a stale resourceVersion (or another optimistic-concurrency failure)."""
    reason = why or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(info)} "{name}": {reason}',
        details=_details(info, name),
    )


def invalid(info: ResourceInfo, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid with field causes: (field path, message)."""
    kind = info.kind
    group_kind = f"{kind}.{info.group}" if info.group else kind
    text = "; ".join(f"{field}: {message}" for field, message in causes)
    details = _details(info, name)
    details["kind"] = kind
    details["causes"] = [
        {"reason": "FieldValueInvalid", "message": message, "field": field}
        for field, message in causes
    ]
    return ApiError(422, "Invalid", f'{group_kind} "{name}" is invalid: {text}', details=details)


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, "BadRequest", message)


def method_not_allowed(method: str, what: str) -> ApiError:
    """405 MethodNotAllowed."""
    return ApiError(
        405,
        "MethodNotAllowed",
        f"{method} is not supported on resources of kind {what!r}"
        if what
        else "the server does not allow this method on the requested resource",
    )


def unsupported_media_type(content_type: str, accepted: tuple[str, ...]) -> ApiError:
    """415 UnsupportedMediaType for a body format the endpoint does not take."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)} (got {content_type!r})",
    )


def path_not_found(path: str) -> ApiError:
    """404 for a path the server does not serve at all."""
    return ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")


def gone(message: str) -> ApiError:
    """410 Gone (Expired) for a watch from a compacted resourceVersion."""
    return ApiError(410, "Expired", message)
