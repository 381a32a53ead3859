"""``POST /v1/sessions/{session_id}/token``: a token that may only watch one session.

A driver's app (or the car's display it pairs with, e.g. for a Plug & Charge session the driver
never touched) gets a bearer token scoped to that one session: it may read the session and its
live stream (``GET /v1/sessions/{id}``, ``/live``) and nothing else, and it expires with the
session: :data:`AFTER_END` after the session completed or failed it is refused, whatever its
``exp`` says (:func:`sessions.api.sessions.visible_session` checks it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web

from sessions.auth import Role, require_driver
from sessions.errors import conflict, not_found
from sessions.http import json_response
from sessions.openapi import Api, Operation, json_content, problem

if TYPE_CHECKING:
    from sessions.app import SessionsRuntime

AFTER_END = timedelta(minutes=5)
"""How long a session token still reads its session once it ended (the final event, the receipt link)."""
MAX_TTL = timedelta(hours=24)

TOKEN_SCHEMA = {
    "type": "object",
    "required": ["token", "session_id", "expires_at"],
    "properties": {
        "token": {"type": "string"},
        "session_id": {"type": "string", "format": "uuid"},
        "expires_at": {"type": "string", "format": "date-time"},
    },
}


def register(api: Api, runtime: SessionsRuntime) -> None:
    from sessions.api.sessions import SESSION_ID_PARAMETER, session_id_of

    api.schema("SessionToken", TOKEN_SCHEMA)

    async def mint(request: web.Request) -> web.StreamResponse:
        driver = require_driver(request, runtime.issuer)
        session_id = session_id_of(request)
        assert runtime.lifecycle is not None
        record = await runtime.lifecycle.store.get(session_id)
        if record is None or record.driver_id != driver.subject:
            raise not_found(f"no session {session_id}")
        if record.state.final:
            raise conflict(f"session {session_id} is {record.state.value}: a token would be of no use")
        now = datetime.now(UTC)
        expires_at = now + MAX_TTL
        token = runtime.issuer.mint(
            session_id, Role.SESSION, session_id=session_id, ttl_s=int(MAX_TTL.total_seconds()), now=now
        )
        body = {"token": token, "session_id": session_id, "expires_at": expires_at.isoformat()}
        return json_response(body, status=201)

    api.add(
        Operation(
            "POST",
            "/v1/sessions/{session_id}/token",
            mint,
            {
                "summary": "A bearer token that may only watch this session, expiring with it",
                "operationId": "mintSessionToken",
                "security": [{"bearer": []}],
                "parameters": [SESSION_ID_PARAMETER],
                "responses": {
                    "201": json_content({"$ref": "#/components/schemas/SessionToken"}, "the token"),
                    "401": problem("no valid bearer token"),
                    "403": problem("not a driver"),
                    "404": problem("no such session of yours"),
                    "409": problem("the session is over"),
                },
            },
        )
    )


def expired_with_session(ended_at: datetime | None, now: datetime) -> bool:
    """Whether a session token of a session that ended at ``ended_at`` is spent."""
    return ended_at is not None and now - ended_at > AFTER_END
