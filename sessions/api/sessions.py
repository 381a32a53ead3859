"""``/v1/sessions``: a driver starts, watches and stops charging sessions.

``POST`` creates the session (INITIATED) under the driver's ``Idempotency-Key`` and sends the
remote start in the background: the answer does not wait for the charger; it may give the
driver's needs (departure, energy: ``sessions.api.session_needs``, which also serves ``PATCH``).
``GET`` shows one session or the driver's history; ``DELETE`` stops. A driver sees only their own sessions
(another's answers 404, as if it did not exist).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from csms.domain.events import ConnectorStatus
from sessions.api.session_needs import NEEDS_PROPERTIES, needs_view, parse_needs
from sessions.api.session_tokens import expired_with_session
from sessions.auth import Principal, Role, principal_of, require_driver
from sessions.authorizer import DriverAuthorizer
from sessions.errors import (
    ProblemError,
    bad_request,
    conflict,
    forbidden,
    not_found,
    too_many_requests,
    unauthorized,
)
from sessions.events import SessionOrigin, SessionState
from sessions.http import json_object, json_response, whole_number
from sessions.lifecycle import SessionLifecycle, new_app_token
from sessions.live import LiveHub
from sessions.openapi import Api, Operation, json_content, problem
from sessions.ratelimit import RateLimiter
from sessions.session_store import IdempotencyConflictError, NewSession, SessionRecord, SessionStore

if TYPE_CHECKING:
    from sessions.app import SessionsRuntime

# Spelled out so Python and JSON Schema's regex dialect agree: no control characters, space, ':' or '/'.
_CHARGER_ID = re.compile(r"^[^\x00-\x20\x7f:/]{1,48}$")
_TOKEN_ID = re.compile(r"^[\x21-\x7e]{1,255}$")
_MAX_CONNECTOR = 1000
_UNUSABLE = (ConnectorStatus.FAULTED, ConnectorStatus.UNAVAILABLE)
ONE_STARTING_PER_EVSE = "charging_sessions_one_initiated"
"""The unique index letting one INITIATED session per EVSE in (migration 0024)."""

SESSION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        *("session_id", "state", "charger_id", "connector_id", "origin", "energy_kwh", "power_kw"),
        *NEEDS_PROPERTIES,
    ],
    "properties": {
        **NEEDS_PROPERTIES,
        "session_id": {"type": "string", "format": "uuid"},
        "state": {"type": "string", "enum": [state.value for state in SessionState]},
        "charger_id": {"type": "string"},
        "connector_id": {"type": "integer"},
        "origin": {"type": "string", "enum": [origin.value for origin in SessionOrigin]},
        "failure_reason": {"type": ["string", "null"]},
        "transaction_id": {"type": ["string", "null"]},
        "reservation_id": {"type": ["integer", "null"]},
        "energy_kwh": {"type": "number", "minimum": 0},
        "power_kw": {"type": "number"},
        "elapsed_s": {"type": ["integer", "null"], "minimum": 0},
        "cost_so_far": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["amount", "currency"],
                    "properties": {"amount": {"type": "string"}, "currency": {"type": "string"}},
                },
            ]
        },
        "offline": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "ended_at": {"type": ["string", "null"], "format": "date-time"},
        "stop_command": {"type": ["string", "null"]},
    },
}
START_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["charger_id", "connector_id", "payment_method_id"],
    "additionalProperties": False,
    "properties": {
        "charger_id": {"type": "string", "pattern": _CHARGER_ID.pattern},
        "connector_id": {"type": "integer", "minimum": 1, "maximum": _MAX_CONNECTOR},
        "payment_method_id": {"type": "string", "pattern": _TOKEN_ID.pattern},
        **NEEDS_PROPERTIES,
    },
}
SESSION_REF = {"$ref": "#/components/schemas/Session"}
SESSION_ID_PARAMETER = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def session_id_of(request: web.Request) -> str:
    raw = request.match_info["session_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise bad_request(f"session_id must be a UUID, got {raw!r}") from None


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _text_field(body: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise bad_request(f"{name} is required and must be a string")
    if not pattern.match(value):
        raise bad_request(f"{name} is not a valid id: {value[:60]!r}")
    return value


def parse_start(body: dict[str, Any]) -> tuple[str, int, str]:
    """``charger_id``, ``connector_id`` and ``payment_method_id`` of a start request (400 otherwise)."""
    unknown = sorted(set(body) - set(START_SCHEMA["properties"]))
    if unknown:
        raise bad_request(f"unknown field(s): {', '.join(unknown)}")
    charger_id = _text_field(body, "charger_id", _CHARGER_ID)
    connector_id = body.get("connector_id")
    if isinstance(connector_id, float) and connector_id.is_integer():
        connector_id = int(connector_id)  # JSON Schema counts 1.0 as an integer
    if not isinstance(connector_id, int) or isinstance(connector_id, bool):
        raise bad_request("connector_id is required and must be an integer")
    if not 1 <= connector_id <= _MAX_CONNECTOR:
        raise bad_request(f"connector_id must be between 1 and {_MAX_CONNECTOR}, got {connector_id}")
    return charger_id, connector_id, _text_field(body, "payment_method_id", _TOKEN_ID)


def idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None or not key.strip():
        raise bad_request("an Idempotency-Key header is required")
    if not _TOKEN_ID.match(key):
        raise bad_request("the Idempotency-Key must be 1 to 255 printable characters without spaces")
    return key


async def session_view(lifecycle: SessionLifecycle, record: SessionRecord) -> dict[str, Any]:
    return {
        "session_id": record.session_id,
        "charger_id": record.charger_id,
        "connector_id": record.evse_id,
        "origin": record.origin.value,
        "failure_reason": record.failure_reason,
        "transaction_id": record.transaction_id,
        "reservation_id": record.reservation_id,
        "offline": record.offline,
        "created_at": record.created_at.isoformat(),
        "started_at": record.started_at.isoformat() if record.started_at else None,
        "ended_at": record.ended_at.isoformat() if record.ended_at else None,
        **needs_view(record.departure_at, record.energy_needed_kwh),
        **await lifecycle.snapshot(record),
    }


async def visible_session(request: web.Request, runtime: SessionsRuntime) -> tuple[Principal, SessionRecord]:
    """The session of the path if the caller may see it: its driver, or a token for that session."""
    session_id = session_id_of(request)
    principal = principal_of(request, runtime.issuer)
    if principal.role is Role.OPERATOR:
        raise forbidden("this endpoint is for drivers")
    assert runtime.lifecycle is not None
    record = await runtime.lifecycle.store.get(session_id)
    mine = record is not None and (
        (principal.role is Role.DRIVER and record.driver_id == principal.subject)
        or (principal.role is Role.SESSION and principal.session_id == session_id)
    )
    if record is None or not mine:
        raise not_found(f"no session {session_id}")
    if principal.role is Role.SESSION and record.state.final:
        ended_at = record.ended_at or record.created_at  # a FAILED start has no end
        if expired_with_session(ended_at, datetime.now(UTC)):
            raise unauthorized("the session token expired with its session")
    return principal, record


def register(api: Api, runtime: SessionsRuntime) -> None:
    """Build the lifecycle, plug the driver authoriser into the CSMS and declare the routes."""
    csms = runtime.csms
    store = SessionStore(csms.database)
    lifecycle = SessionLifecycle(
        store,
        csms,
        runtime.tariffs,
        remote_start_timeout_s=runtime.settings.remote_start_timeout_s,
        listeners=runtime.session_listeners,
        completion_sinks=runtime.completion_sinks,
        hub=LiveHub(),
    )
    runtime.lifecycle = lifecycle
    csms.service.use_authorizer(
        DriverAuthorizer(
            csms.database, store, cache_lifetime_s=runtime.settings.authorization_cache_lifetime_s
        )
    )
    runtime.on_start.append(lifecycle.start)
    runtime.on_stop.append(lifecycle.stop)
    node = csms.redis_node
    limiter = RateLimiter(
        runtime.settings.session_create_per_minute,
        redis=node.redis if node is not None else None,
        key_prefix=csms.settings.redis_key_prefix + "sessions:",
    )
    api.schema("Session", SESSION_SCHEMA)
    api.schema("StartSession", START_SCHEMA)

    async def replay(driver_id: str, key: str, digest: str) -> web.StreamResponse | None:
        found = await store.find_key(driver_id, key)
        if found is None:
            return None
        if found[0] != digest:
            raise conflict("this Idempotency-Key was used with a different request", session_id=found[1])
        record = await store.get(found[1])
        assert record is not None
        return json_response(await session_view(lifecycle, record))

    async def check_startable(driver_id: str, charger_id: str, evse_id: int, payment_method_id: str) -> None:
        driver = await csms.database.pool.fetchrow(
            """SELECT d.blocked, EXISTS (SELECT 1 FROM payment_methods p WHERE p.payment_method_id = $2
                                            AND p.driver_id = d.driver_id) AS pays
               FROM drivers d WHERE d.driver_id = $1""",
            driver_id,
            payment_method_id,
        )
        if driver is None or driver["blocked"]:
            raise forbidden("this driver may not start sessions")
        if not driver["pays"]:
            raise not_found(f"payment method {payment_method_id!r} is not one of yours")
        charger = await csms.chargers.get(charger_id)
        if charger is None:
            raise not_found(f"no charger {charger_id}")
        if charger.connectors and all(spec.evse_id != evse_id for spec in charger.connectors):
            raise not_found(f"charger {charger_id} has no connector {evse_id}")
        state = await csms.live_state.get(charger_id)
        if state is None or not state.connected:
            raise conflict(f"charger {charger_id} is offline")
        statuses = [s.status for (evse, _), s in state.connectors.items() if evse == evse_id]
        if any(status in _UNUSABLE for status in statuses):
            raise conflict(f"connector {evse_id} of charger {charger_id} is out of service")
        if await store.open_on_evse(charger_id, evse_id) is not None:
            raise conflict(f"connector {evse_id} of charger {charger_id} is in use")

    async def start_session(request: web.Request) -> web.StreamResponse:
        driver = require_driver(request, runtime.issuer)
        key = idempotency_key(request)
        body = await json_object(request)
        charger_id, evse_id, payment_method_id = parse_start(body)
        digest = request_hash(body)
        replayed = await replay(driver.subject, key, digest)
        if replayed is not None:
            return replayed
        now = datetime.now(UTC)
        needs = parse_needs(body, now)  # after the replay: a departure given then may be past now
        retry_after = await limiter.retry_after_s(driver.subject)
        if retry_after is not None:
            raise too_many_requests("too many sessions started; try again later", retry_after)
        await check_startable(driver.subject, charger_id, evse_id, payment_method_id)
        reservation_id = None
        if runtime.reservations is not None:
            if await runtime.reservations.held_by_other(driver.subject, charger_id, evse_id, now):
                raise conflict(f"connector {evse_id} of charger {charger_id} is reserved by another driver")
            # claimed only once the payment hold is placed: a declined card keeps the reservation
            reservation_id = await runtime.reservations.own_at(driver.subject, charger_id, evse_id, now)
        new = NewSession(
            driver_id=driver.subject,
            charger_id=charger_id,
            evse_id=evse_id,
            state=SessionState.INITIATED,
            origin=SessionOrigin.APP,
            id_token=new_app_token(),
            payment_method_id=payment_method_id,
            remote_start_id=csms.commands.next_request_id(),
            reservation_id=reservation_id,
            departure_at=needs.departure_at,
            energy_needed_kwh=needs.energy_needed_kwh,
        )
        try:
            created = await store.create_idempotent(
                new, key=key, request_hash=digest, data={"state": SessionState.INITIATED.value}
            )
        except IdempotencyConflictError as exc:
            raise conflict(
                "this Idempotency-Key was used with a different request", session_id=exc.session_id
            ) from None
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != ONE_STARTING_PER_EVSE:
                raise
            # another start on this connector won the race past check_startable (migration 0024)
            raise conflict(f"connector {evse_id} of charger {charger_id} is in use") from None
        record = created.record
        if created.event is None:
            return json_response(await session_view(lifecycle, record))
        await lifecycle.created(created.event)
        if runtime.payment_holds is not None:
            refused = await runtime.payment_holds.authorize(
                record.session_id, driver.subject, payment_method_id
            )
            if refused is not None:
                await lifecycle.fail(record.session_id, f"payment not authorised: {refused}")
                raise ProblemError(
                    402,
                    f"the payment method was not authorised: {refused}",
                    extensions={"session_id": record.session_id},
                )
        if reservation_id is not None and runtime.reservations is not None:
            await runtime.reservations.claim(driver.subject, charger_id, evse_id, now)
        lifecycle.begin_remote_start(record)
        location = f"/v1/sessions/{record.session_id}"
        return json_response(
            await session_view(lifecycle, record), status=201, headers={"Location": location}
        )

    async def get_session(request: web.Request) -> web.StreamResponse:
        _, record = await visible_session(request, runtime)
        return json_response(await session_view(lifecycle, record))

    async def list_sessions(request: web.Request) -> web.StreamResponse:
        driver = require_driver(request, runtime.issuer)
        if request.query.get("driver", "me") != "me":
            raise bad_request("driver must be 'me': drivers see only their own sessions")
        raw_limit = request.query.get("limit", "20")
        limit = whole_number(raw_limit)
        if limit is None or not 1 <= limit <= 100:
            raise bad_request(f"limit must be an integer from 1 to 100, got {raw_limit[:40]!r}")
        before = None
        if "before" in request.query:
            try:
                before = datetime.fromisoformat(request.query["before"])
            except ValueError:
                raise bad_request("before must be an ISO 8601 date-time") from None
            if before.utcoffset() is None:
                raise bad_request("before must carry a time zone offset")
            try:
                before = before.astimezone(UTC)
            except OverflowError:  # 9999-12-31T23:59:59-01:00 is past datetime's last UTC instant
                raise bad_request("before is out of range") from None
        records = await store.for_driver(driver.subject, limit=limit, before=before)
        return json_response({"sessions": [await session_view(lifecycle, record) for record in records]})

    async def stop_session(request: web.Request) -> web.StreamResponse:
        principal, record = await visible_session(request, runtime)
        if principal.role is not Role.DRIVER:
            raise forbidden("only the session's driver may stop it")
        current, result = await lifecycle.stop_session(record)
        view = await session_view(lifecycle, current)
        view["stop_command"] = result.outcome.value if result is not None else None
        return json_response(view, status=200 if current.state.final else 202)

    _declare(api, start_session, get_session, list_sessions, stop_session)


def _declare(api: Api, start: Any, get: Any, listing: Any, stop: Any) -> None:
    session = json_content(SESSION_REF, "the session")
    common = {"401": problem("no valid bearer token"), "403": problem("not a driver's token")}
    api.add(
        Operation(
            "POST",
            "/v1/sessions",
            start,
            {
                "summary": "Start charging: authorise, send the remote start, answer at once (INITIATED); "
                "optionally say when the car leaves and the energy it needs",
                "operationId": "startSession",
                "security": BEARER,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "pattern": _TOKEN_ID.pattern},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/StartSession"}}
                    },
                },
                "responses": {
                    "201": session,
                    "200": json_content(SESSION_REF, "the session this Idempotency-Key created before"),
                    **common,
                    "402": problem("the payment method was not authorised"),
                    "404": problem("no such charger, connector, or payment method of this driver"),
                    "409": problem(
                        "the connector is busy, reserved, offline, or the key was used differently"
                    ),
                    "415": problem("the body is not JSON"),
                    "429": problem("too many sessions started in the last minute"),
                },
            },
        )
    )
    api.add(
        Operation(
            "GET",
            "/v1/sessions",
            listing,
            {
                "summary": "The calling driver's sessions, newest first",
                "operationId": "listSessions",
                "security": BEARER,
                "parameters": [
                    {"name": "driver", "in": "query", "schema": {"type": "string", "enum": ["me"]}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                    {"name": "before", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                ],
                "responses": {
                    "200": json_content(
                        {
                            "type": "object",
                            "required": ["sessions"],
                            "properties": {"sessions": {"type": "array", "items": SESSION_REF}},
                        },
                        "the sessions",
                    ),
                    **common,
                },
            },
        )
    )
    one = {"security": BEARER, "parameters": [SESSION_ID_PARAMETER]}
    api.add(
        Operation(
            "GET",
            "/v1/sessions/{session_id}",
            get,
            {
                "summary": "State, energy, power, elapsed time and cost so far",
                "operationId": "getSession",
                **one,
                "responses": {"200": session, **common, "404": problem("no such session of this driver")},
            },
        )
    )
    api.add(
        Operation(
            "DELETE",
            "/v1/sessions/{session_id}",
            stop,
            {
                "summary": "Stop charging (STOPPING, then COMPLETED when the charger ends the transaction)",
                "operationId": "stopSession",
                **one,
                "responses": {
                    "202": json_content(SESSION_REF, "stopping"),
                    "200": json_content(SESSION_REF, "the session had ended already"),
                    **common,
                    "404": problem("no such session of this driver"),
                },
            },
        )
    )
