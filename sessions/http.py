"""HTTP plumbing of the driver and operator APIs: problem+json errors and parameter parsing.

The middleware is the outermost handler of every ``/v1`` request: an :class:`ProblemError` or an
aiohttp HTTP error becomes ``application/problem+json``; anything else is logged with its
traceback and answered 500 without internals. Parameter helpers turn bad input into a 400 with a
``detail`` naming the parameter, never into a 500.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from sessions.errors import ProblemError, bad_request

logger = logging.getLogger(__name__)

API_PREFIX = "/v1"
PROBLEM_JSON = "application/problem+json"
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem_response(problem: ProblemError, instance: str | None = None) -> web.Response:
    """The RFC 9457 body of ``problem``."""
    body: dict[str, Any] = {
        "type": problem.problem_type,
        "title": problem.title or _phrase(problem.status),
        "status": problem.status,
        "detail": problem.detail,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(problem.extensions)
    return web.Response(
        status=problem.status, text=json.dumps(body), content_type=PROBLEM_JSON, headers=problem.headers
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error under ``/v1`` as problem+json; other paths (OCPP) pass through untouched."""
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except ProblemError as problem:
        return problem_response(problem, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
        return problem_response(ProblemError(exc.status, detail, headers=headers), request.path)
    except Exception:
        # Outermost handler of one API request: log it, tell the client nothing internal.
        logger.exception("%s %s failed", request.method, request.path)
        return problem_response(ProblemError(500, "internal error; it has been logged"), request.path)


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer (``default=str`` renders datetimes and decimals as text)."""
    return web.Response(
        status=status, text=json.dumps(body, default=str), content_type="application/json", headers=headers
    )


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (400 when it is not one, 415 when it is not JSON)."""
    if request.content_type != "application/json":
        raise ProblemError(415, "the request body must be application/json")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


def whole_number(raw: str) -> int | None:
    """``raw`` as a non-negative whole number of at most 18 ASCII digits, else ``None``.

    Not ``str.isdigit``: it passes superscripts ("²") that ``int`` refuses, and any number of
    digits, past ``int``'s 4,300-digit limit; both were 500s."""
    return int(raw) if _WHOLE_NUMBER.fullmatch(raw) else None


def query_float(
    request: web.Request,
    name: str,
    *,
    minimum: float,
    maximum: float,
    default: float | None = None,
) -> float:
    """Query parameter ``name`` as a finite number in ``[minimum, maximum]`` (400 otherwise)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise bad_request(f"query parameter {name!r} is required")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise bad_request(f"query parameter {name!r} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise bad_request(
            f"query parameter {name!r} must be between {minimum:g} and {maximum:g}, got {raw!r}"
        )
    return value


def query_bool(request: web.Request, name: str, *, default: bool = False) -> bool:
    """Query parameter ``name`` as ``true``/``false`` (also 1/0, yes/no)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise bad_request(f"query parameter {name!r} must be true or false, got {raw!r}")


def query_int(request: web.Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """Query parameter ``name`` as a whole number in ``[minimum, maximum]`` (400 otherwise)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"query parameter {name!r} must be a whole number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise bad_request(f"query parameter {name!r} must be between {minimum} and {maximum}, got {raw!r}")
    return value
