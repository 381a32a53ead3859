"""``/v1/operator/sessions``, ``/stations`` (with the live schedule) and ``/tariffs`` of the caller's network.

Sessions are read from ``charging_sessions`` on the caller's chargers. Stopping one goes through
the session lifecycle when it is installed (``runtime.lifecycle``: STOPPING, then RemoteStop /
RequestStopTransaction), else straight to the command bus; either way the session ends with the
charger's own StopTransaction / TransactionEvent, as a driver's stop does.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from csms.smart_charging import SMART_CHARGING
from fairwatt.operator.common import (
    PREFIX,
    OperatorContext,
    command_answer,
    path_param,
    query_param,
    spec,
)
from sessions.errors import bad_request, conflict, not_found
from sessions.http import json_object, json_response, query_int
from sessions.openapi import Api, Operation
from tariffs.errors import TariffError

SESSION_STATES = ("INITIATED", "ACTIVE", "STOPPING", "COMPLETED", "FAILED")
_SESSION_COLUMNS = """s.session_id, s.driver_id, s.charger_id, s.evse_id, s.connector_id, s.state, s.origin,
    s.failure_reason, s.transaction_id, s.tariff_id, s.meter_start_wh, s.meter_last_wh, s.meter_stop_wh,
    s.power_w, s.created_at, s.started_at, s.ended_at"""


def _uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise not_found(f"no session {raw!r}") from None


def register(api: Api, context: OperatorContext) -> None:
    runtime = context.runtime
    commands = runtime.csms.commands

    async def session_row(cpo_id: str, session_id: str) -> Any:
        row = await context.pool.fetchrow(
            f"""SELECT {_SESSION_COLUMNS} FROM charging_sessions s
                JOIN chargers c ON c.charger_id = s.charger_id
                WHERE s.session_id = $1 AND c.cpo_id = $2""",
            _uuid(session_id),
            cpo_id,
        )
        if row is None:
            raise not_found(f"no session {session_id!r} in your network")
        return row

    async def list_sessions(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        state = request.query.get("state")
        if state is not None and state.upper() not in SESSION_STATES:
            raise bad_request(f"'state' must be one of {', '.join(SESSION_STATES)}, got {state!r}")
        limit = query_int(request, "limit", default=100, minimum=1, maximum=1000)
        rows = await context.pool.fetch(
            f"""SELECT {_SESSION_COLUMNS} FROM charging_sessions s
                JOIN chargers c ON c.charger_id = s.charger_id
                WHERE c.cpo_id = $1 AND ($2::text IS NULL OR s.state = $2)
                  AND ($3::text IS NULL OR s.charger_id = $3)
                ORDER BY s.created_at DESC LIMIT $4""",
            principal.cpo_id,
            state.upper() if state else None,
            request.query.get("charger") or None,
            limit,
        )
        return json_response({"sessions": [dict(r) for r in rows]})

    async def show_session(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        assert principal.cpo_id is not None
        row = await session_row(principal.cpo_id, request.match_info["session_id"])
        events = await context.pool.fetch(
            "SELECT seq, kind, state, at, data FROM session_events WHERE session_id = $1 ORDER BY seq",
            row["session_id"],
        )
        return json_response({**dict(row), "events": [dict(e) for e in events]})

    async def stop_session(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        assert principal.cpo_id is not None
        row = await session_row(principal.cpo_id, request.match_info["session_id"])
        if row["state"] not in ("INITIATED", "ACTIVE", "STOPPING"):
            raise conflict(f"session {row['session_id']} is {row['state']}: it has ended")
        lifecycle = runtime.lifecycle
        record = await lifecycle.store.get(str(row["session_id"])) if lifecycle is not None else None
        if lifecycle is not None and record is not None:  # STOPPING, then the stop at the charger
            current, stopped = await lifecycle.stop_session(record)
            if stopped is None:  # not started at the charger yet: it ends when the start times out
                return json_response({"session_id": str(row["session_id"]), "state": current.state.value})
            result = stopped
        elif row["transaction_id"] is None:
            raise conflict(f"session {row['session_id']} has no transaction at the charger yet")
        else:
            result = await commands.remote_stop(row["charger_id"], row["transaction_id"])
        await context.audit(
            principal,
            "session.stop",
            "session",
            str(row["session_id"]),
            {"outcome": result.outcome.value, "status": result.status},
        )
        return command_answer(result)

    async def list_stations(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        rows = await context.pool.fetch(
            """SELECT s.station_id, s.name, s.time_zone, s.latitude_deg, s.longitude_deg, s.address,
                      count(c.charger_id) AS chargers
               FROM stations s LEFT JOIN chargers c ON c.station_id = s.station_id
               WHERE s.cpo_id = $1 GROUP BY s.station_id ORDER BY s.station_id""",
            principal.cpo_id,
        )
        return json_response({"stations": [dict(r) for r in rows]})

    async def station_schedule(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        station_id = request.match_info["station_id"]
        owned = await context.pool.fetchval(
            "SELECT 1 FROM stations WHERE station_id = $1 AND cpo_id = $2", station_id, principal.cpo_id
        )
        if owned is None:
            raise not_found(f"no station {station_id!r} in your network")
        periods = query_int(request, "periods", default=48, minimum=1, maximum=2016)
        loop = request.app.get(SMART_CHARGING)
        if loop is None or station_id not in loop.station_ids:
            raise conflict(f"station {station_id} is not planned by this server's smart-charging loop")
        return json_response(schedule_document(loop, station_id, periods))

    async def list_tariffs(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        rows = await context.pool.fetch(
            """SELECT DISTINCT ON (tariff_id) tariff_id, version, created_at, created_by
               FROM tariffs WHERE cpo_id = $1 ORDER BY tariff_id, version DESC""",
            principal.cpo_id,
        )
        return json_response({"tariffs": [dict(r) for r in rows]})

    async def tariff_owner(tariff_id: str) -> str | None:
        owner: str | None = await context.pool.fetchval(
            "SELECT cpo_id FROM tariffs WHERE tariff_id = $1 ORDER BY version DESC LIMIT 1", tariff_id
        )
        return owner

    async def show_tariff(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        tariff_id = request.match_info["tariff_id"]
        if await tariff_owner(tariff_id) != principal.cpo_id:
            raise not_found(f"no tariff {tariff_id!r} in your network")
        rows = await context.pool.fetch(
            "SELECT version, body, created_at, created_by FROM tariffs WHERE tariff_id = $1 ORDER BY version",
            tariff_id,
        )
        assignments = await context.pool.fetch(
            "SELECT scope, scope_id FROM tariff_assignments WHERE tariff_id = $1 ORDER BY scope, scope_id",
            tariff_id,
        )
        return json_response(
            {
                "tariff_id": tariff_id,
                "current": rows[-1]["body"],
                "versions": [{k: r[k] for k in ("version", "created_at", "created_by")} for r in rows],
                "assignments": [dict(a) for a in assignments],
            }
        )

    async def set_tariff(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        assert principal.cpo_id is not None
        tariff_id = request.match_info["tariff_id"]
        body = await json_object(request)
        if body.get("id", tariff_id) != tariff_id:
            raise bad_request(f"the tariff's 'id' ({body.get('id')!r}) differs from the path ({tariff_id!r})")
        owner = await tariff_owner(tariff_id)
        if owner is not None and owner != principal.cpo_id:
            raise not_found(f"no tariff {tariff_id!r} in your network")
        assign = request.query.getall("station", []), request.query.getall("charger", [])
        for scope, ids in (("station", assign[0]), ("charger", assign[1])):
            table = "stations" if scope == "station" else "chargers"
            for scope_id in ids:
                found = await context.pool.fetchval(
                    f"SELECT 1 FROM {table} WHERE {scope}_id = $1 AND cpo_id = $2", scope_id, principal.cpo_id
                )
                if found is None:
                    raise not_found(f"no {scope} {scope_id!r} in your network")
        try:
            tariff = await runtime.tariffs.publish(
                {**body, "id": tariff_id}, cpo_id=principal.cpo_id, created_by=principal.subject
            )
        except TariffError as exc:
            raise bad_request(f"not a valid OCPI tariff: {exc}") from None
        for scope, ids in (("station", assign[0]), ("charger", assign[1])):
            for scope_id in ids:
                await runtime.tariffs.assign(scope, scope_id, tariff_id)
        versions = await runtime.tariffs.versions(tariff_id, fresh=True)
        await context.audit(
            principal,
            "tariff.set",
            "tariff",
            tariff_id,
            {
                "stations": assign[0],
                "chargers": assign[1],
                "versions": len(versions.versions) if versions else 0,
            },
        )
        return json_response(
            {"tariff_id": tariff.tariff_id, "versions": len(versions.versions) if versions else 0}
        )

    session = path_param("session_id")
    api.add(
        Operation(
            "GET",
            f"{PREFIX}/sessions",
            list_sessions,
            spec(
                "Charging sessions on the caller's chargers (newest first)",
                parameters=[
                    query_param("state", {"enum": list(SESSION_STATES)}),
                    query_param("charger", {"type": "string"}),
                    query_param("limit", {"type": "integer"}),
                ],
                not_found_too=False,
            ),
        )
    )
    api.add(
        Operation(
            "GET",
            f"{PREFIX}/sessions/{{session_id}}",
            show_session,
            spec("One session", parameters=[session]),
        )
    )
    api.add(
        Operation(
            "POST",
            f"{PREFIX}/sessions/{{session_id}}/stop",
            stop_session,
            spec("Stop a session at the charger", parameters=[session]),
        )
    )
    api.add(
        Operation(
            "GET", f"{PREFIX}/stations", list_stations, spec("The caller's stations", not_found_too=False)
        )
    )
    api.add(
        Operation(
            "GET",
            f"{PREFIX}/stations/{{station_id}}/schedule",
            station_schedule,
            spec(
                "The smart-charging loop's current schedule per EVSE against the station's limits and caps",
                parameters=[path_param("station_id"), query_param("periods", {"type": "integer"})],
            ),
        )
    )
    api.add(
        Operation("GET", f"{PREFIX}/tariffs", list_tariffs, spec("The caller's tariffs", not_found_too=False))
    )
    tariff = path_param("tariff_id")
    api.add(
        Operation(
            "GET",
            f"{PREFIX}/tariffs/{{tariff_id}}",
            show_tariff,
            spec("A tariff and its versions", parameters=[tariff]),
        )
    )
    api.add(
        Operation(
            "PUT",
            f"{PREFIX}/tariffs/{{tariff_id}}",
            set_tariff,
            spec(
                "Publish a new version of an OCPI tariff (and assign it to stations or chargers)",
                body={"type": "object", "description": "OCPI 2.2.1 Tariff"},
                parameters=[
                    tariff,
                    query_param("station", {"type": "string"}, "assign to this station (repeatable)"),
                    query_param("charger", {"type": "string"}, "assign to this charger (repeatable)"),
                ],
            ),
        )
    )


def schedule_document(loop: Any, station_id: str, periods: int) -> dict[str, Any]:
    """The station's latest schedule (first ``periods`` periods), its limits and caps, as JSON."""
    state = loop.state(station_id)
    site = state.site
    schedule = loop.schedule(station_id)
    caps = [
        {"start": c.start, "end": c.end, "limit_kw": c.limit_kw, "fraction": c.fraction, "source": c.source}
        for c in site.caps
    ]
    bindings = {b.evse_id: b for b in state.setup.evses}
    document: dict[str, Any] = {
        "station_id": station_id,
        "grid_limit_kw": site.grid_limit_kw,
        "caps": caps,
        "schedule": None,
    }
    if schedule is None:
        return document
    shown = min(periods, schedule.periods)
    sessions = dict(zip(schedule.evse_ids, schedule.session_ids, strict=True))
    evses = []
    for k, evse_id in enumerate(schedule.evse_ids):
        binding = bindings[evse_id]
        evses.append(
            {
                "evse_id": evse_id,
                "charger_id": binding.charger_id,
                "connector_id": binding.ocpp_evse_id,
                "session_id": sessions[evse_id],
                "max_current_a": binding.evse.max_current_a,
                "current_a": [round(float(v), 3) for v in schedule.current_a[k, :shown]],
                "power_kw": [round(float(v), 3) for v in schedule.power_kw[k, :shown]],
            }
        )
    document["schedule"] = {
        "start": schedule.start,
        "period_s": schedule.period_s,
        "periods": shown,
        "status": schedule.status.value,
        "solve_time_s": schedule.solve_time_s,
        "station_power_kw": [round(float(v), 3) for v in schedule.power_kw[:, :shown].sum(axis=0)],
        "evses": evses,
    }
    return document
