"""``/v1/operator/chargers``: list, show and command the caller's chargers; read their OCPP logs.

Commands go through the CSMS command bus (any node reaches the node holding the charger's
socket) and answer with the charger's own reply; one charger per request, so a client rolling
firmware out to many chargers shows progress as each answers. Configuration keys are 1.6 keys
(GetConfiguration / ChangeConfiguration) or, for 2.0.1, ``Component.Variable`` names
(GetVariables / SetVariables).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from csms.commands import CommandResult
from csms.commands.payloads import VariableRef, VariableSetting
from csms.protocol.versions import OcppVersion
from fairwatt.operator.common import (
    PREFIX,
    OperatorContext,
    body_int,
    body_str,
    command_answer,
    path_param,
    query_datetime,
    query_param,
    spec,
)
from sessions.errors import bad_request, conflict
from sessions.http import Handler, json_object, json_response, query_int
from sessions.openapi import Api, Operation

CHARGER = path_param("charger_id")
Sender = Callable[[str, dict[str, Any]], Awaitable[CommandResult]]
COMMAND_RESULT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "charger_id": {"type": "string"},
        "action": {"type": ["string", "null"]},
        "outcome": {"enum": ["accepted", "rejected", "call_error", "not_supported_by_version"]},
        "status": {"type": ["string", "null"]},
        "payload": {"type": "object"},
    },
}


def _variable(key: str) -> tuple[str, str]:
    component, dot, variable = key.partition(".")
    if not dot or not component or not variable:
        raise bad_request(f"a 2.0.1 configuration key is Component.Variable, got {key!r}")
    return component, variable


def register(api: Api, context: OperatorContext) -> None:
    csms = context.runtime.csms
    commands = csms.commands

    async def live(charger_id: str) -> dict[str, Any]:
        state = await csms.live_state.get(charger_id)
        if state is None:
            return {"connected": False}
        return {
            "connected": state.connected,
            "registration": state.registration.value if state.registration else None,
            "last_heartbeat_at": state.last_heartbeat_at,
            "last_seen_at": state.last_seen_at,
            "firmware_status": state.firmware_status,
            "diagnostics_status": state.diagnostics_status,
            "connectors": [
                {"evse_id": evse, "connector_id": conn, "status": c.ocpp_status, "error_code": c.error_code}
                for (evse, conn), c in sorted(state.connectors.items())
            ],
            "active_transactions": {str(k): v for k, v in state.active_transactions.items()},
        }

    async def list_chargers(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        rows = await context.pool.fetch(
            """SELECT charger_id, station_id, vendor, model, firmware_version, registration_status
               FROM chargers WHERE cpo_id = $1 ORDER BY charger_id""",
            principal.cpo_id,
        )
        station = request.query.get("station")
        out = []
        for row in rows:
            if station and row["station_id"] != station:
                continue
            state = await csms.live_state.get(row["charger_id"])
            out.append({**dict(row), "connected": bool(state and state.connected)})
        return json_response({"chargers": out})

    async def show_charger(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        assert principal.cpo_id is not None
        row = await context.charger_row(principal.cpo_id, request.match_info["charger_id"])
        connectors = await context.pool.fetch(
            """SELECT evse_id, connector_id, connector_type, max_power_kw FROM connectors
               WHERE charger_id = $1 ORDER BY evse_id, connector_id""",
            row["charger_id"],
        )
        session = csms.connected.get(row["charger_id"])
        return json_response(
            {
                **dict(row),
                "ocpp_version": session.version.value if session is not None else None,
                "connectors": [dict(c) for c in connectors],
                "live": await live(row["charger_id"]),
            }
        )

    def command(action: str, kind: str = "charger") -> Callable[[Sender], Handler]:
        """A handler decorator: the caller's charger, its body, the audit row, the command's answer."""

        def wrap(send: Sender) -> Handler:
            async def handler(request: web.Request) -> web.StreamResponse:
                principal = await context.caller(request)
                assert principal.cpo_id is not None
                row = await context.charger_row(principal.cpo_id, request.match_info["charger_id"])
                body = await json_object(request) if request.can_read_body else {}
                result = await send(row["charger_id"], body)
                await context.audit(
                    principal,
                    action,
                    kind,
                    row["charger_id"],
                    {"request": body, "outcome": result.outcome.value, "status": result.status},
                )
                return command_answer(result)

            return handler

        return wrap

    @command("charger.reset")
    async def reset(charger_id: str, body: dict[str, Any]) -> CommandResult:
        kind = body.get("type", "soft")
        if kind not in ("soft", "hard"):
            raise bad_request(f"'type' must be soft or hard, got {kind!r}")
        return await commands.reset(charger_id, hard=kind == "hard")

    @command("charger.availability")
    async def availability(charger_id: str, body: dict[str, Any]) -> CommandResult:
        operative = body.get("operative")
        if not isinstance(operative, bool):
            raise bad_request("'operative' must be true or false")
        return await commands.change_availability(charger_id, body_int(body, "evse_id", minimum=0), operative)

    @command("charger.unlock")
    async def unlock(charger_id: str, body: dict[str, Any]) -> CommandResult:
        evse_id = body_int(body, "evse_id", default=1, minimum=1)
        connector_id = body_int(body, "connector_id", default=1, minimum=1)
        assert evse_id is not None
        assert connector_id is not None
        return await commands.unlock_connector(charger_id, evse_id, connector_id)

    @command("charger.config.set")
    async def set_config(charger_id: str, body: dict[str, Any]) -> CommandResult:
        key = body_str(body, "key")
        value = body.get("value")
        if not isinstance(value, str):
            raise bad_request("'value' must be a string")
        assert key is not None
        if _version(charger_id) is OcppVersion.V16:
            return await commands.change_configuration(charger_id, key, value)
        component, variable = _variable(key)
        return await commands.set_variables(charger_id, [VariableSetting(component, variable, value)])

    @command("charger.firmware.update")
    async def firmware(charger_id: str, body: dict[str, Any]) -> CommandResult:
        location = body_str(body, "location")
        assert location is not None
        retrieve_at = datetime.now(UTC)
        if body.get("retrieve_at") is not None:
            try:
                retrieve_at = datetime.fromisoformat(str(body["retrieve_at"]).replace("Z", "+00:00"))
            except ValueError:
                raise bad_request("'retrieve_at' must be an ISO 8601 time") from None
            if retrieve_at.tzinfo is None:
                raise bad_request("'retrieve_at' must name its time zone")
        return await commands.update_firmware(charger_id, location, retrieve_at)

    @command("charger.diagnostics")
    async def diagnostics(charger_id: str, body: dict[str, Any]) -> CommandResult:
        location = body_str(body, "location")
        assert location is not None
        return await commands.get_diagnostics(charger_id, location)

    def _version(charger_id: str) -> OcppVersion:
        session = csms.connected.get(charger_id)
        if session is None or session.closed:
            raise conflict(f"charger {charger_id} is not connected")
        return session.version

    async def get_config(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        assert principal.cpo_id is not None
        row = await context.charger_row(principal.cpo_id, request.match_info["charger_id"])
        keys = request.query.getall("key", [])
        charger_id = row["charger_id"]
        if _version(charger_id) is OcppVersion.V16:
            return command_answer(await commands.get_configuration(charger_id, keys))
        if not keys:
            raise bad_request("name the 2.0.1 variables to read: ?key=Component.Variable")
        refs = [VariableRef(*_variable(key)) for key in keys]
        return command_answer(await commands.get_variables(charger_id, refs))

    async def logs(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        assert principal.cpo_id is not None
        row = await context.charger_row(principal.cpo_id, request.match_info["charger_id"])
        since = query_datetime(request, "since")
        after_id = query_int(request, "after_id", default=0, minimum=0, maximum=2**62)
        limit = query_int(request, "limit", default=200, minimum=1, maximum=5000)
        rows = await context.pool.fetch(
            """SELECT id, logged_at, direction, message_type_id, action, unique_id, payload
               FROM ocpp_messages
               WHERE charger_id = $1 AND id > $2 AND ($3::timestamptz IS NULL OR logged_at >= $3)
               ORDER BY id LIMIT $4""",
            row["charger_id"],
            after_id,
            since,
            limit,
        )
        return json_response({"messages": [dict(r) for r in rows]})

    base = f"{PREFIX}/chargers/{{charger_id}}"
    api.add(
        Operation(
            "GET",
            f"{PREFIX}/chargers",
            list_chargers,
            spec(
                "The caller's chargers",
                parameters=[query_param("station", {"type": "string"}, "only this station's")],
                not_found_too=False,
            ),
        )
    )
    api.add(
        Operation(
            "GET",
            base,
            show_charger,
            spec("One charger: registry, connectors, live state", parameters=[CHARGER]),
        )
    )
    commands_spec = [
        ("reset", reset, "Reboot (soft: when idle; hard: now)", {"type": {"enum": ["soft", "hard"]}}),
        (
            "availability",
            availability,
            "Make the charger or one EVSE operative or inoperative",
            {"evse_id": {"type": "integer", "minimum": 0}, "operative": {"type": "boolean"}},
        ),
        (
            "unlock",
            unlock,
            "Release the cable on a connector",
            {"evse_id": {"type": "integer", "minimum": 1}, "connector_id": {"type": "integer", "minimum": 1}},
        ),
        (
            "firmware",
            firmware,
            "Have the charger download and install firmware",
            {"location": {"type": "string"}, "retrieve_at": {"type": "string", "format": "date-time"}},
        ),
        (
            "diagnostics",
            diagnostics,
            "Have the charger upload its diagnostics",
            {"location": {"type": "string"}},
        ),
    ]
    for name, handler, summary, properties in commands_spec:
        api.add(
            Operation(
                "POST",
                f"{base}/{name}",
                handler,
                spec(
                    summary,
                    COMMAND_RESULT,
                    body={"type": "object", "properties": properties},
                    parameters=[CHARGER],
                ),
            )
        )
    config_params = [CHARGER, query_param("key", {"type": "string"}, "1.6 key or 2.0.1 Component.Variable")]
    api.add(
        Operation(
            "GET",
            f"{base}/config",
            get_config,
            spec("Read configuration", COMMAND_RESULT, parameters=config_params),
        )
    )
    api.add(
        Operation(
            "PUT",
            f"{base}/config",
            set_config,
            spec(
                "Set one configuration key",
                COMMAND_RESULT,
                body={"type": "object", "required": ["key", "value"], "properties": {"key": {}, "value": {}}},
                parameters=[CHARGER],
            ),
        )
    )
    api.add(
        Operation(
            "GET",
            f"{base}/logs",
            logs,
            spec(
                "The charger's OCPP messages (poll with after_id to follow)",
                parameters=[
                    CHARGER,
                    query_param("since", {"type": "string", "format": "date-time"}),
                    query_param("after_id", {"type": "integer"}),
                    query_param("limit", {"type": "integer"}),
                ],
            ),
        )
    )
