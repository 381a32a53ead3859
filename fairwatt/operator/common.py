"""What every operator endpoint shares: the caller's CPO, ownership checks, command answers, audit rows.

An operator sees and controls only its own stations and chargers: every lookup filters on the
caller's ``cpo`` claim, and a charger or station of another operator answers 404 exactly like one
that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from csms.commands import CommandResult
from csms.commands.results import CommandOutcome, result_document
from fairwatt.operator.keys import OperatorAuth
from sessions.app import SessionsRuntime
from sessions.auth import Principal
from sessions.errors import ProblemError, bad_request, conflict, not_found
from sessions.http import json_response
from sessions.openapi import json_content, problem

logger = logging.getLogger(__name__)

PREFIX = "/v1/operator"
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
TAG = "operator"


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """Where the server reads secrets a network file refers to (``env:NAME``, ``file:PATH``)."""

    environ: Mapping[str, str] = field(default_factory=dict)
    secrets_dir: Path | None = None
    """Base of relative ``file:`` references (default: the server's working directory)."""


@dataclass(frozen=True, slots=True)
class OperatorContext:
    runtime: SessionsRuntime
    auth: OperatorAuth
    settings: OperatorSettings

    @property
    def pool(self) -> Any:
        return self.runtime.csms.database.pool

    async def caller(self, request: web.Request) -> Principal:
        return await self.auth.principal(request)

    async def charger_row(self, cpo_id: str, charger_id: str) -> Any:
        """The caller's charger (404 when it does not exist or belongs to another operator)."""
        row = await self.pool.fetchrow(
            """SELECT charger_id, station_id, vendor, model, serial_number, firmware_version,
                      registration_status, last_boot_at, created_at
               FROM chargers WHERE charger_id = $1 AND cpo_id = $2""",
            charger_id,
            cpo_id,
        )
        if row is None:
            raise not_found(f"no charger {charger_id!r} in your network")
        return row

    async def audit(
        self, principal: Principal, action: str, kind: str, resource_id: str, detail: Mapping[str, Any]
    ) -> None:
        await self.pool.execute(
            """INSERT INTO operator_audit_log (cpo_id, actor, action, kind, resource_id, detail)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            principal.cpo_id,
            principal.subject,
            action,
            kind,
            resource_id,
            dict(detail),
        )


def command_answer(result: CommandResult, *, extra: Mapping[str, Any] | None = None) -> web.Response:
    """200 with the charger's answer (and ``extra`` fields); 409 when it is not connected or its
    registration (Pending, Rejected) forbids the command, 504 when it did not answer."""
    if result.outcome is CommandOutcome.NOT_CONNECTED:
        raise conflict(f"charger {result.charger_id} is not connected")
    if result.outcome is CommandOutcome.NOT_REGISTERED:
        raise conflict(f"charger {result.charger_id}: {result.action} not sent: {result.error_description}")
    if result.outcome is CommandOutcome.TIMEOUT:
        raise ProblemError(504, f"charger {result.charger_id} did not answer {result.action} in time")
    return json_response({**result_document(result), **(extra or {})})


def body_int(
    body: Mapping[str, Any], name: str, *, default: int | None = None, minimum: int = 0
) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise bad_request(f"{name!r} must be a whole number >= {minimum}, got {value!r}")
    return value


def body_str(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{name!r} must be a non-empty string")
    return value


def query_datetime(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"query parameter {name!r} must be an ISO 8601 time, got {raw!r}") from None
    if value.tzinfo is None:
        raise bad_request(f"query parameter {name!r} must name its time zone (e.g. 2024-05-01T08:00:00Z)")
    return value


def spec(
    summary: str,
    response_schema: Mapping[str, Any] | None = None,
    *,
    body: Mapping[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    not_found_too: bool = True,
) -> dict[str, Any]:
    """An OpenAPI operation object for an operator endpoint."""
    out: dict[str, Any] = {
        "summary": summary,
        "tags": [TAG],
        "security": SECURITY,
        "responses": {
            "200": json_content(response_schema or {"type": "object"}, "OK"),
            "401": problem("no valid operator key"),
            "403": problem("not an operator key"),
        },
    }
    if not_found_too:
        out["responses"]["404"] = problem("not in the caller's network")
    if parameters:
        out["parameters"] = parameters
    if body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": dict(body)}}}
    return out


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def query_param(name: str, schema: Mapping[str, Any], description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": dict(schema),
        "description": description,
    }
