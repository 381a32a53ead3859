"""The sessions package's exceptions: one base class; API problems carry their HTTP status.

:class:`ProblemError` becomes an RFC 9457 ``application/problem+json`` answer in one place
(:mod:`sessions.http`); everything else raised from a handler is a 500 and is logged there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SessionsError(Exception):
    """Base of every error raised by the sessions package."""


class ProblemError(SessionsError):
    """An error the API client caused or must hear about, as an HTTP status and a plain ``detail``."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        problem_type: str = "about:blank",
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.problem_type = problem_type
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})


def bad_request(detail: str, **extensions: Any) -> ProblemError:
    """400: the request is malformed or a parameter is out of range."""
    return ProblemError(400, detail, extensions=extensions)


def unauthorized(detail: str) -> ProblemError:
    """401: no valid bearer token."""
    return ProblemError(401, detail, headers={"WWW-Authenticate": 'Bearer realm="fairwatt"'})


def forbidden(detail: str) -> ProblemError:
    """403: authenticated, but not allowed to do this."""
    return ProblemError(403, detail)


def not_found(detail: str) -> ProblemError:
    """404: no such resource (or not the caller's to see)."""
    return ProblemError(404, detail)


def conflict(detail: str, **extensions: Any) -> ProblemError:
    """409: the request conflicts with the resource's state or an earlier request."""
    return ProblemError(409, detail, extensions=extensions)


def too_many_requests(detail: str, retry_after_s: int) -> ProblemError:
    """429 with ``Retry-After``."""
    return ProblemError(429, detail, headers={"Retry-After": str(max(1, retry_after_s))})


def unavailable(detail: str, retry_after_s: int | None = None) -> ProblemError:
    """503: a dependency (the charger, the payment provider) cannot be reached now."""
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return ProblemError(503, detail, headers=headers)
