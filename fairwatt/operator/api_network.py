"""``/v1/operator/network/diff``, ``/network/apply`` and ``/audit``: the declarative side of the API.

The client sends the network file's text (one or more named YAML documents, as a folder would
give); the server parses it with the same loader as ``fairwatt validate``, so an invalid file is a
422 whose ``errors`` list every ``file:line:column`` problem, and resolves secret references in
its own environment when it applies.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fairwatt.config.network import NetworkConfigError, parse_network
from fairwatt.config.network_model import Network
from fairwatt.operator.common import PREFIX, OperatorContext, query_param, spec
from fairwatt.operator.effects import after_apply
from fairwatt.operator.engine import Applier, ApplyError, plan
from sessions.errors import ProblemError, bad_request
from sessions.http import json_object, json_response, query_int
from sessions.openapi import Api, Operation, problem

MAX_FILES = 200
NETWORK_BODY = {
    "type": "object",
    "required": ["files"],
    "properties": {
        "files": {
            "type": "object",
            "description": "file name -> YAML text of the network file(s)",
            "additionalProperties": {"type": "string"},
        }
    },
}
CHANGE_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"enum": ["create", "update", "delete"]},
        "kind": {"type": "string"},
        "id": {"type": "string"},
        "fields": {"type": "array", "items": {"type": "string"}},
        "before": {},
        "after": {},
    },
}


async def _network(request: web.Request) -> Network:
    body = await json_object(request)
    files = body.get("files")
    if not isinstance(files, dict) or not files or len(files) > MAX_FILES:
        raise bad_request(f"'files' must map 1 to {MAX_FILES} file names to YAML text")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise bad_request("'files' must map file names to YAML text")
    try:
        return parse_network(files)
    except NetworkConfigError as exc:
        errors = [
            {"file": e.file, "line": e.line, "column": e.column, "field": e.field, "message": e.detail}
            for e in exc.errors
        ]
        raise ProblemError(
            422, f"the network file has {len(errors)} error(s)", extensions={"errors": errors}
        ) from None


def register(api: Api, context: OperatorContext) -> None:
    runtime = context.runtime

    async def diff_network(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        assert principal.cpo_id is not None
        network = await _network(request)
        try:
            changes = await plan(context.pool, principal.cpo_id, network)
        except ApplyError as exc:
            raise ProblemError(exc.status, str(exc)) from None
        return json_response({"changes": [c.to_json() for c in changes]})

    async def apply_network(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        assert principal.cpo_id is not None
        network = await _network(request)
        applier = Applier(
            context.pool,
            runtime.tariffs,
            environ=context.settings.environ,
            secrets_dir=context.settings.secrets_dir,
        )
        try:
            outcome = await applier.apply(principal.cpo_id, principal.subject, network)
        except ApplyError as exc:
            raise ProblemError(exc.status, f"nothing was changed: {exc}") from None
        effects = await after_apply(request.app, runtime.csms.commands, runtime.tariffs, network, outcome)
        return json_response({"changes": [c.to_json() for c in outcome.changes], "effects": effects})

    async def audit_log(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        limit = query_int(request, "limit", default=100, minimum=1, maximum=1000)
        rows = await context.pool.fetch(
            """SELECT id, at, actor, action, kind, resource_id, before, after, detail
               FROM operator_audit_log WHERE cpo_id = $1 ORDER BY id DESC LIMIT $2""",
            principal.cpo_id,
            limit,
        )
        entries: list[dict[str, Any]] = [dict(row) for row in rows]
        return json_response({"entries": entries})

    unprocessable = problem("the network file has errors (each in 'errors' with file, line, column)")
    diff_spec = spec(
        "What applying a network file would change",
        {"type": "object", "properties": {"changes": {"type": "array", "items": CHANGE_SCHEMA}}},
        body=NETWORK_BODY,
        not_found_too=False,
    )
    diff_spec["responses"]["422"] = unprocessable
    apply_spec = spec(
        "Apply a network file atomically (all or nothing), then re-solve stations and push local lists",
        {
            "type": "object",
            "properties": {"changes": {"type": "array", "items": CHANGE_SCHEMA}, "effects": {}},
        },
        body=NETWORK_BODY,
        not_found_too=False,
    )
    apply_spec["responses"]["422"] = unprocessable
    apply_spec["responses"]["409"] = problem("a change conflicts with the system; nothing was changed")
    api.add(Operation("POST", f"{PREFIX}/network/diff", diff_network, diff_spec))
    api.add(Operation("POST", f"{PREFIX}/network/apply", apply_network, apply_spec))
    api.add(
        Operation(
            "GET",
            f"{PREFIX}/audit",
            audit_log,
            spec(
                "Who changed what and when (newest first)",
                parameters=[query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
                not_found_too=False,
            ),
        )
    )
