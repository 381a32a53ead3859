"""``POST``/``GET /v1/reservations``, ``GET``/``DELETE /v1/reservations/{reservation_id}`` for drivers.

A driver reserves one connector (the ``connector_id`` nearby search shows) from ``start_at``
(now when omitted, at most ``reservation_max_lead_s`` ahead) for ``duration_s`` (at most
``reservation_max_duration_s``); the connector is held until the reservation's hold runs out
(``reservation_hold_s``). A driver sees and cancels only their own reservations: anyone
else's answers 404, as if it did not exist.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from csms.tasks import TaskOwner
from sessions.app import SessionsRuntime
from sessions.auth import require_driver
from sessions.errors import ProblemError, bad_request, conflict, not_found
from sessions.http import json_object, json_response, whole_number
from sessions.openapi import Api, Operation, json_content, problem
from sessions.reservations import (
    ChargerRefusedError,
    ReservationOverlapError,
    Reservations,
    ReservationStatus,
    UnknownConnectorError,
)

COLLECTION = "/v1/reservations"
ITEM = "/v1/reservations/{reservation_id}"
_CHARGER_ID_PATTERN = r"^[!-.0-9;-~]{1,48}$"
"""Printable ASCII without '/' and ':' (what the OCPP endpoint accepts in its URL, without NUL)."""
_CHARGER_ID = re.compile(_CHARGER_ID_PATTERN)
_MIN_DURATION_S = 60
_MAX_CONNECTOR_ID = 1000
_ID_MAX = 2**31 - 1
_LIST_MAX = 100

RESERVATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "reservation_id",
        "charger_id",
        "connector_id",
        "status",
        "starts_at",
        "expires_at",
        "ends_at",
        "failure_reason",
        "created_at",
    ],
    "properties": {
        "reservation_id": {"type": "integer", "description": "Also the OCPP reservationId"},
        "charger_id": {"type": "string"},
        "connector_id": {"type": "integer"},
        "status": {"type": "string", "enum": [s.value for s in ReservationStatus]},
        "starts_at": {"type": "string", "format": "date-time"},
        "expires_at": {
            "type": "string",
            "format": "date-time",
            "description": "Released at this time unless a session started on it",
        },
        "ends_at": {"type": "string", "format": "date-time"},
        "failure_reason": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
    },
}


def register(api: Api, runtime: SessionsRuntime) -> None:
    """Declare the reservation endpoints, plug the claims port in and run the expiry worker."""
    settings = runtime.settings
    csms = runtime.csms
    feed = runtime.nearby
    reservations = Reservations(
        csms.database,
        csms.commands,
        hold_s=settings.reservation_hold_s,
        hold_by_station_s=settings.reservation_hold_by_station_s,
        check_interval_s=settings.reservation_check_interval_s,
        on_change=feed.reservations_changed if feed is not None else None,
    )
    runtime.reservations = reservations
    csms.service.subscribe(reservations.on_event)
    tasks = TaskOwner()

    async def start() -> None:
        tasks.start(reservations.run(lambda: datetime.now(UTC)), "reservations-worker")

    runtime.on_start.append(start)
    runtime.on_stop.append(tasks.cancel_all)

    async def create(request: web.Request) -> web.StreamResponse:
        driver = require_driver(request, runtime.issuer)
        body = await json_object(request)
        now = datetime.now(UTC)
        charger_id, evse_id, starts_at, duration_s = parse_request(
            body,
            now,
            max_lead_s=settings.reservation_max_lead_s,
            max_duration_s=settings.reservation_max_duration_s,
        )
        try:
            made = await reservations.create(driver.subject, charger_id, evse_id, starts_at, duration_s, now)
        except UnknownConnectorError as exc:
            raise not_found(str(exc)) from None
        except ReservationOverlapError as exc:
            raise conflict(str(exc)) from None
        except ChargerRefusedError as exc:
            raise conflict(str(exc), reservation=exc.reservation.as_json()) from None
        location = f"{COLLECTION}/{made.reservation_id}"
        return json_response(made.as_json(), status=201, headers={"Location": location})

    async def list_own(request: web.Request) -> web.StreamResponse:
        driver = require_driver(request, runtime.issuer)
        unknown = sorted(set(request.query) - {"limit"})
        if unknown:
            raise bad_request(f"unknown query parameter(s): {', '.join(unknown)}; accepted: limit")
        raw = request.query.get("limit", "20")
        limit = whole_number(raw)
        if limit is None or not 1 <= limit <= _LIST_MAX:
            raise bad_request(
                f"query parameter 'limit' must be a whole number from 1 to {_LIST_MAX}, got {raw[:40]!r}"
            )
        found = await reservations.of_driver(driver.subject, limit=limit)
        return json_response({"reservations": [r.as_json() for r in found]})

    async def read(request: web.Request) -> web.StreamResponse:
        driver = require_driver(request, runtime.issuer)
        reservation_id = _reservation_id(request)
        found = await reservations.get(reservation_id)
        if found is None or found.driver_id != driver.subject:
            raise not_found(f"no reservation {reservation_id}")
        return json_response(found.as_json())

    async def cancel(request: web.Request) -> web.StreamResponse:
        driver = require_driver(request, runtime.issuer)
        reservation_id = _reservation_id(request)
        found = await reservations.cancel(reservation_id, driver.subject)
        if found is None:
            raise not_found(f"no reservation {reservation_id}")
        return json_response(found.as_json())

    api.schema("Reservation", RESERVATION_SCHEMA)
    reservation = json_content({"$ref": "#/components/schemas/Reservation"}, "the reservation")
    path_id = {
        "name": "reservation_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": _ID_MAX},
    }
    common = {"401": problem("no valid bearer token"), "403": problem("not a driver's token")}
    api.add(
        Operation(
            "POST",
            COLLECTION,
            create,
            {
                "operationId": "createReservation",
                "summary": "Reserve a connector (ReserveNow is sent when the reservation starts)",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _request_schema(
                                settings.reservation_max_lead_s, settings.reservation_max_duration_s
                            )
                        }
                    },
                },
                "responses": {
                    "201": {**reservation, "description": "reserved (active) or scheduled"},
                    **common,
                    "404": problem("no such charger or connector"),
                    "409": problem("the connector is reserved for that time, or the charger refused"),
                    "415": problem("the body is not JSON"),
                },
            },
        )
    )
    api.add(
        Operation(
            "GET",
            COLLECTION,
            list_own,
            {
                "operationId": "listReservations",
                "summary": "The caller's reservations, newest first",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": _LIST_MAX, "default": 20},
                    }
                ],
                "responses": {
                    "200": json_content(
                        {
                            "type": "object",
                            "required": ["reservations"],
                            "properties": {
                                "reservations": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Reservation"},
                                }
                            },
                        },
                        "the reservations",
                    ),
                    **common,
                },
            },
        )
    )
    api.add(
        Operation(
            "GET",
            ITEM,
            read,
            {
                "operationId": "getReservation",
                "summary": "One of the caller's reservations",
                "security": [{"bearer": []}],
                "parameters": [path_id],
                "responses": {"200": reservation, **common, "404": problem("no such reservation of yours")},
            },
        )
    )
    api.add(
        Operation(
            "DELETE",
            ITEM,
            cancel,
            {
                "operationId": "cancelReservation",
                "summary": "Cancel a reservation (CancelReservation to the charger); harmless once ended",
                "security": [{"bearer": []}],
                "parameters": [path_id],
                "responses": {"200": reservation, **common, "404": problem("no such reservation of yours")},
            },
        )
    )


def _request_schema(max_lead_s: int, max_duration_s: int) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["charger_id", "connector_id"],
        "additionalProperties": False,
        "properties": {
            "charger_id": {"type": "string", "pattern": _CHARGER_ID_PATTERN},
            "connector_id": {"type": "integer", "minimum": 1, "maximum": _MAX_CONNECTOR_ID},
            "start_at": {
                "type": "string",
                "format": "date-time",
                "description": f"When the hold starts (default now; at most {max_lead_s} s ahead)",
            },
            "duration_s": {
                "type": "integer",
                "minimum": _MIN_DURATION_S,
                "maximum": max_duration_s,
                "description": f"How long the connector is wanted (default {max_duration_s} s)",
            },
        },
    }


def parse_request(
    body: dict[str, Any], now: datetime, *, max_lead_s: int, max_duration_s: int
) -> tuple[str, int, datetime, int]:
    """``(charger_id, connector_id, starts_at, duration_s)`` of a request body (400 otherwise)."""
    unknown = sorted(set(body) - {"charger_id", "connector_id", "start_at", "duration_s"})
    if unknown:
        raise bad_request(f"unknown field(s): {', '.join(unknown)}")
    charger_id = body.get("charger_id")
    if not isinstance(charger_id, str) or not _CHARGER_ID.fullmatch(charger_id):
        raise bad_request(
            "charger_id must be a charger's id (1 to 48 printable ASCII characters but ':' and '/')"
        )
    connector_id = body.get("connector_id")
    if isinstance(connector_id, float) and connector_id.is_integer():
        connector_id = int(connector_id)
    if (
        isinstance(connector_id, bool)
        or not isinstance(connector_id, int)
        or not 1 <= connector_id <= _MAX_CONNECTOR_ID
    ):
        raise bad_request(f"connector_id must be a whole number from 1 to {_MAX_CONNECTOR_ID}")
    starts_at = now
    raw_start = body.get("start_at")
    if raw_start is not None:
        if not isinstance(raw_start, str):
            raise bad_request("start_at must be an ISO 8601 date-time with a time zone")
        try:
            starts_at = datetime.fromisoformat(raw_start.replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"start_at is not an ISO 8601 date-time: {raw_start!r}") from None
        if starts_at.utcoffset() is None:
            raise bad_request("start_at must carry a time zone (e.g. 2026-01-01T12:00:00Z)")
        try:
            starts_at = starts_at.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:59:59-01:00 is past datetime's last UTC instant
            raise bad_request(f"start_at is out of range: {raw_start[:40]!r}") from None
        if starts_at < now - timedelta(minutes=1):
            raise bad_request("start_at is in the past")
        if starts_at > now + timedelta(seconds=max_lead_s):
            raise bad_request(f"start_at must be within the next {max_lead_s} s")
    duration_s = body.get("duration_s", max_duration_s)
    if isinstance(duration_s, float) and duration_s.is_integer():
        duration_s = int(duration_s)  # JSON Schema's integer: 600.0 is one
    if (
        isinstance(duration_s, bool)
        or not isinstance(duration_s, int)
        or not _MIN_DURATION_S <= duration_s <= max_duration_s
    ):
        raise bad_request(
            f"duration_s must be a whole number of seconds from {_MIN_DURATION_S} to {max_duration_s}"
        )
    return charger_id, connector_id, starts_at, duration_s


def _reservation_id(request: web.Request) -> int:
    raw = request.match_info["reservation_id"]
    reservation_id = whole_number(raw)
    if reservation_id is None or not 1 <= reservation_id <= _ID_MAX:
        raise ProblemError(400, f"reservation id must be a positive whole number, got {raw[:40]!r}")
    return reservation_id
