"""A driver's needs of a session: when the car leaves and how much energy it needs.

``departure_at`` (RFC 3339 with an offset, in the future and at most :data:`MAX_AHEAD` ahead) and
``energy_needed_kwh`` (the session's total, more than 0 and at most :data:`MAX_ENERGY_KWH`) are
optional in ``POST /v1/sessions``; ``PATCH /v1/sessions/{id}`` changes them on the driver's own
INITIATED or ACTIVE session (``null`` clears one: the car's word or the station's defaults apply
again). They are stored with the session, shown by ``GET`` and told to the planner
(:func:`sessions.needs.tell_planner`; without Redis, again at every start). A bad value is a 400
whose ``field`` names it.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sessions.auth import Role
from sessions.errors import ProblemError, bad_request, conflict, forbidden
from sessions.events import SessionState
from sessions.http import json_object, json_response
from sessions.needs import tell_planner, tell_planner_again
from sessions.openapi import Api, Operation, json_content, problem
from sessions.session_store import NeedsChange

if TYPE_CHECKING:
    from sessions.app import SessionsRuntime

MAX_AHEAD = timedelta(days=7)
"""How far ahead a departure may be: a session is a stay at a charger, not a parking contract."""
MAX_ENERGY_KWH = 1000.0
"""The most energy one session may ask for (a heavy truck's battery; catches Wh typed as kWh)."""
CHANGEABLE = (SessionState.INITIATED, SessionState.ACTIVE)

# RFC 3339 section 5.6: a full date, 'T', a full time with seconds and an offset (Z or +hh:mm).
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE)

NEEDS_PROPERTIES: dict[str, Any] = {
    "departure_at": {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "when the car leaves (RFC 3339 with an offset, in the future, within 7 days)",
    },
    "energy_needed_kwh": {
        "type": ["number", "null"],
        "exclusiveMinimum": 0,
        "maximum": MAX_ENERGY_KWH,
        "description": "the session's total energy need [kWh]",
    },
}
NEEDS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": NEEDS_PROPERTIES,
}


def _invalid(name: str, detail: str) -> ProblemError:
    return bad_request(f"{name} {detail}", field=name)


def parse_departure(value: object, now: datetime) -> datetime | None:
    """``departure_at`` as a UTC instant after ``now`` and within :data:`MAX_AHEAD` (400 otherwise)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise _invalid("departure_at", f"must be an RFC 3339 date-time with an offset, got {value!r:.60}")
    try:
        departure = datetime.fromisoformat(value.upper())
    except ValueError:
        raise _invalid("departure_at", f"is not a valid date-time: {value!r:.60}") from None
    if departure <= now:
        raise _invalid("departure_at", f"must be in the future, got {value}")
    if departure - now > MAX_AHEAD:
        raise _invalid("departure_at", f"must be within {MAX_AHEAD.days} days, got {value}")
    return departure.astimezone(now.tzinfo)


def parse_energy(value: object) -> float | None:
    """``energy_needed_kwh`` as a number in (0, :data:`MAX_ENERGY_KWH`] (400 otherwise)."""
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise _invalid("energy_needed_kwh", f"must be a number of kWh, got {value!r:.60}")
    if not 0 < value <= MAX_ENERGY_KWH:
        raise _invalid(
            "energy_needed_kwh", f"must be more than 0 and at most {MAX_ENERGY_KWH:g}, got {value}"
        )
    return float(value)


def parse_needs(body: dict[str, Any], now: datetime) -> NeedsChange:
    """The needs ``body`` names (others left as they are); ``now`` is UTC."""
    fields = frozenset(name for name in NEEDS_PROPERTIES if name in body)
    return NeedsChange(
        departure_at=parse_departure(body.get("departure_at"), now),
        energy_needed_kwh=parse_energy(body.get("energy_needed_kwh")),
        fields=fields,
    )


def needs_view(departure_at: datetime | None, energy_needed_kwh: float | None) -> dict[str, Any]:
    """The needs as the Session resource shows them."""
    return {
        "departure_at": departure_at.isoformat() if departure_at else None,
        "energy_needed_kwh": energy_needed_kwh,
    }


def register(api: Api, runtime: SessionsRuntime) -> None:
    from sessions.api.sessions import BEARER, SESSION_ID_PARAMETER, SESSION_REF, session_view, visible_session

    api.schema("SessionNeeds", NEEDS_SCHEMA)
    if runtime.csms.redis_node is None:  # with Redis, live state keeps them across a node's restart

        async def tell_again() -> None:
            assert runtime.lifecycle is not None  # registered by sessions.api.sessions, before us
            await tell_planner_again(runtime.csms, runtime.lifecycle.store)

        runtime.on_start.append(tell_again)

    async def change_needs(request: web.Request) -> web.StreamResponse:
        principal, record = await visible_session(request, runtime)
        if principal.role is not Role.DRIVER:
            raise forbidden("only the session's driver may change its needs")
        body = await json_object(request)
        unknown = sorted(set(body) - set(NEEDS_PROPERTIES))
        if unknown:
            raise bad_request(f"unknown field(s): {', '.join(unknown)}", field=unknown[0])
        if not body:
            raise bad_request("name departure_at or energy_needed_kwh to change")
        if record.state not in CHANGEABLE:
            raise conflict(f"session {record.session_id} is {record.state.value}: its needs are settled")
        change = parse_needs(body, datetime.now(UTC))
        lifecycle = runtime.lifecycle
        assert lifecycle is not None
        assert record.driver_id is not None  # a driver's own session
        changed = await lifecycle.store.change_needs(record.session_id, record.driver_id, change)
        if changed is None:
            raise conflict(f"session {record.session_id} is no longer open to changes")
        await tell_planner(runtime.csms, changed, even_if_unset=True)
        return json_response(await session_view(lifecycle, changed))

    api.add(
        Operation(
            "PATCH",
            "/v1/sessions/{session_id}",
            change_needs,
            {
                "summary": "Change the departure or energy need of an open session (null clears one)",
                "operationId": "changeSessionNeeds",
                "security": BEARER,
                "parameters": [SESSION_ID_PARAMETER],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/SessionNeeds"}}
                    },
                },
                "responses": {
                    "200": json_content(SESSION_REF, "the session with its needs changed"),
                    "401": problem("no valid bearer token"),
                    "403": problem("not the session's driver"),
                    "404": problem("no such session of this driver"),
                    "409": problem("the session is stopping or has ended"),
                    "415": problem("the body is not JSON"),
                },
            },
        )
    )
