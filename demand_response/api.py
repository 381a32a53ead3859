"""The operator API's demand-response routes: declare, list and cancel peak events on your stations.

``register(api, runtime)`` is an ``extra_api`` module of :func:`sessions.app.install`; the
handlers find the demand-response runtime at ``app[DEMAND_RESPONSE]`` (503 until installed).
An operator sees and changes only events on the stations of their CPO (``stations.cpo_id``).

* ``POST /v1/operator/dr/events`` ``{"stations": [...], "cut_percent": 20, "start": ISO 8601,
  "duration_s": 7200}``: a manual event: each station may import ``100 - cut`` % of its grid limit.
* ``GET /v1/operator/dr/events``: events not over yet (manual and the utilities') on your stations.
* ``DELETE /v1/operator/dr/events/{event_id}``: cancel one of your manual events.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from demand_response.app import DEMAND_RESPONSE, DemandResponseRuntime
from demand_response.events import MANUAL_PROGRAM, DrEvent, EventStatus, Interval, Signal
from demand_response.mapping import Audience, targeted_stations
from sessions.app import SessionsRuntime
from sessions.auth import require_operator
from sessions.errors import bad_request, conflict, not_found, unavailable
from sessions.http import json_object, json_response
from sessions.openapi import Api, Operation, json_content, problem

PATH = "/v1/operator/dr/events"
MAX_DURATION = timedelta(days=2)
CUT_SIGNAL = ("LOAD_CONTROL", "x-loadControlPercentOffset")

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event_id", "program", "stations", "start", "end", "status", "manual"],
    "properties": {
        "event_id": {"type": "string"},
        "program": {"type": "string", "description": "the DR program, or 'manual' for operators' events"},
        "stations": {"type": "array", "items": {"type": "string"}},
        "start": {"type": "string", "format": "date-time"},
        "end": {"type": "string", "format": "date-time"},
        "status": {"type": "string", "enum": [s.value for s in EventStatus]},
        "manual": {"type": "boolean"},
        "cut_percent": {"type": ["number", "null"]},
        "signals": {"type": "array", "items": {"type": "string"}},
        "opt": {"type": ["string", "null"], "enum": ["optIn", "optOut", None]},
        "test_event": {"type": "boolean"},
        "modification_number": {"type": "integer"},
    },
}
DECLARE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["stations", "cut_percent", "start", "duration_s"],
    "properties": {
        "stations": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "cut_percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
        "start": {"type": "string", "format": "date-time", "description": "with its UTC offset"},
        "duration_s": {"type": "number", "exclusiveMinimum": 0},
    },
}


def _runtime(request: web.Request) -> DemandResponseRuntime:
    if DEMAND_RESPONSE not in request.app:
        raise unavailable("demand response is not running on this server")
    return request.app[DEMAND_RESPONSE]


async def _own_stations(runtime: SessionsRuntime, cpo_id: str) -> set[str]:
    rows = await runtime.csms.database.pool.fetch("SELECT station_id FROM stations WHERE cpo_id = $1", cpo_id)
    return {str(row["station_id"]) for row in rows}


def describe(event: DrEvent, stations: tuple[str, ...]) -> dict[str, Any]:
    """The API's view of an event."""
    cut = None
    if event.program == MANUAL_PROGRAM and event.signals and event.signals[0].intervals:
        cut = -event.signals[0].intervals[0].value
    return {
        "event_id": event.event_id,
        "program": event.program,
        "stations": list(stations),
        "start": event.start.isoformat(),
        "end": event.end.isoformat(),
        "status": event.status.value,
        "manual": event.program == MANUAL_PROGRAM,
        "cut_percent": cut,
        "signals": sorted({f"{s.name}/{s.signal_type}" for s in event.signals}),
        "opt": None if event.opt is None else event.opt.value,
        "test_event": event.test_event,
        "modification_number": event.modification_number,
    }


def _stations_of(runtime: DemandResponseRuntime, event: DrEvent) -> tuple[str, ...]:
    program = next((p for p in runtime.programs if p.name == event.program), None)
    return targeted_stations(event, None if program is None else Audience(program, program.ven_id))


def parse_declaration(
    body: dict[str, Any], now: datetime
) -> tuple[tuple[str, ...], float, datetime, timedelta]:
    """``(stations, cut_percent, start, duration)`` of a POST body (400 with a plain detail otherwise)."""
    stations = body.get("stations")
    if not isinstance(stations, list) or not stations or not all(isinstance(s, str) and s for s in stations):
        raise bad_request("'stations' must be a non-empty list of station ids")
    cut = body.get("cut_percent")
    if (
        isinstance(cut, bool)
        or not isinstance(cut, int | float)
        or not math.isfinite(cut)
        or not 0 < cut <= 100
    ):
        raise bad_request("'cut_percent' must be a number in (0, 100]")
    raw_start = body.get("start")
    try:
        start = datetime.fromisoformat(str(raw_start))
    except ValueError:
        raise bad_request(f"'start' must be an ISO 8601 time with its offset, got {raw_start!r}") from None
    if start.tzinfo is None:
        raise bad_request(f"'start' needs its UTC offset (e.g. 2026-07-01T17:00:00+02:00), got {raw_start!r}")
    duration_s = body.get("duration_s")
    if (
        isinstance(duration_s, bool)
        or not isinstance(duration_s, int | float)
        or not math.isfinite(duration_s)
    ):
        raise bad_request("'duration_s' must be a number of seconds")
    duration = timedelta(seconds=duration_s)
    if not timedelta(0) < duration <= MAX_DURATION:
        raise bad_request(f"'duration_s' must be between 0 and {MAX_DURATION.total_seconds():.0f} s")
    start = start.astimezone(UTC)
    if start + duration <= now:
        raise bad_request("the event would be over already")
    return tuple(dict.fromkeys(stations)), float(cut), start, duration


def register(api: Api, runtime: SessionsRuntime) -> None:
    """Declare the demand-response operations on ``api``."""
    api.schema("DrEvent", EVENT_SCHEMA)
    api.schema("DrDeclaration", DECLARE_SCHEMA)
    ref = {"$ref": "#/components/schemas/DrEvent"}

    async def declare(request: web.Request) -> web.StreamResponse:
        operator = require_operator(request, runtime.issuer)
        dr = _runtime(request)
        stations, cut, start, duration = parse_declaration(await json_object(request), datetime.now(UTC))
        assert operator.cpo_id is not None
        own = await _own_stations(runtime, operator.cpo_id)
        for station in stations:
            if station not in own:
                raise not_found(f"no station {station!r} of yours")
            if station not in dr.enforcer.stations:
                raise conflict(f"station {station!r} is not planned by this server's smart charging")
        event = DrEvent(
            program=MANUAL_PROGRAM,
            event_id=f"m-{uuid.uuid4().hex[:10]}",
            modification_number=0,
            start=start,
            duration=duration,
            signals=(Signal(*CUT_SIGNAL, (Interval(start, duration, -cut),)),),
            stations=stations,
            created_by=operator.subject,
        )
        event = await dr.enforcer.declare(event, cpo_id=operator.cpo_id)
        return json_response(
            describe(event, stations), status=201, headers={"Location": f"{PATH}/{event.event_id}"}
        )

    async def listing(request: web.Request) -> web.StreamResponse:
        operator = require_operator(request, runtime.issuer)
        dr = _runtime(request)
        assert operator.cpo_id is not None
        own = await _own_stations(runtime, operator.cpo_id)
        now = datetime.now(UTC)
        rows = []
        for event in dr.enforcer.events():
            if event.end + event.recovery + event.start_after <= now:
                continue
            stations = tuple(s for s in _stations_of(dr, event) if s in own)
            if stations:
                rows.append(describe(event, stations))
        return json_response({"events": rows})

    async def cancel(request: web.Request) -> web.StreamResponse:
        operator = require_operator(request, runtime.issuer)
        dr = _runtime(request)
        event_id = request.match_info["event_id"]
        assert operator.cpo_id is not None
        known = dr.enforcer.event(MANUAL_PROGRAM, event_id)
        own = await _own_stations(runtime, operator.cpo_id)
        if known is None or not set(known.stations) <= own:
            if any(e.event_id == event_id and set(_stations_of(dr, e)) & own for e in dr.enforcer.events()):
                raise conflict("a utility's event cannot be cancelled here; the VTN cancels it")
            raise not_found(f"no manual event {event_id!r} on your stations")
        if known.status is EventStatus.CANCELLED:
            raise conflict(f"event {event_id!r} is already cancelled")
        cancelled = await dr.enforcer.cancel(MANUAL_PROGRAM, event_id)
        assert cancelled is not None
        return json_response(describe(cancelled, cancelled.stations))

    api.add(
        Operation(
            "POST",
            PATH,
            declare,
            {
                "summary": "Declare a peak event: cut your stations' import for a while",
                "operationId": "declareDrEvent",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/DrDeclaration"}}
                    },
                },
                "responses": {
                    "201": json_content(ref, "the event, enforced from its start"),
                    "404": problem("a station that is not yours"),
                    "409": problem("a station this server does not plan"),
                },
            },
        )
    )
    api.add(
        Operation(
            "GET",
            PATH,
            listing,
            {
                "summary": "Demand-response events not over yet on your stations",
                "operationId": "listDrEvents",
                "security": [{"bearer": []}],
                "responses": {
                    "200": json_content(
                        {"type": "object", "properties": {"events": {"type": "array", "items": ref}}},
                        "events",
                    )
                },
            },
        )
    )
    api.add(
        Operation(
            "DELETE",
            PATH + "/{event_id}",
            cancel,
            {
                "summary": "Cancel one of your manual events",
                "operationId": "cancelDrEvent",
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": json_content(ref, "the cancelled event"),
                    "404": problem("no such manual event on your stations"),
                    "409": problem("already cancelled, or a utility's event"),
                },
            },
        )
    )
