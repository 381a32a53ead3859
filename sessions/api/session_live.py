"""``GET /v1/sessions/{id}/live`` (Server-Sent Events) and ``GET /v1/sessions/{id}/receipt``.

The stream replays the session's stored events after ``Last-Event-ID`` (header, or the
``last_event_id`` query parameter), then sends each new one as it is stored: ``progress``
(energy, power, cost so far, charger status), ``state`` (a transition) and, last, ``final`` (the
COMPLETED or FAILED transition), after which the stream ends. Event ids are the events' ``seq``,
so a client that reconnects with the last id it saw misses nothing and sees nothing twice. A
reconnect after the ``final`` event (an ``EventSource`` reconnects whenever a stream ends) is
answered 204 No Content, which tells it to stop (HTML Living Standard, server-sent events). A
quiet stream sends a ``: keep-alive`` comment every :data:`KEEPALIVE_S` so proxies keep it open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from sessions.api.sessions import BEARER, SESSION_ID_PARAMETER, visible_session
from sessions.errors import bad_request, not_found
from sessions.events import SessionEvent
from sessions.http import json_response, whole_number
from sessions.openapi import Api, Operation, json_content, problem

if TYPE_CHECKING:
    from sessions.app import SessionsRuntime

POLL_INTERVAL_S = 10.0
"""A stream re-reads PostgreSQL at least this often, in case a wake-up from another node was lost
(Redis pub/sub is at most once); wake-ups in this process are not lost. 10,000 streams cost 1,000
indexed reads a second."""
KEEPALIVE_S = 15.0
"""A quiet stream sends a comment line this often [s]."""
_MAX_EVENT_ID = 10**18 - 1


def last_event_id(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or "0"
    seq = whole_number(raw)
    if seq is None:
        raise bad_request(f"Last-Event-ID must be a non-negative integer, got {raw[:40]!r}")
    return seq


def sse_frame(event: SessionEvent) -> bytes:
    name = "final" if event.kind == "state" and event.state.final else event.kind
    data = {
        "session_id": event.session_id,
        "at": event.at.isoformat(),
        "state": event.state.value,
        **event.data,
    }
    return f"id: {event.seq}\nevent: {name}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def register(api: Api, runtime: SessionsRuntime) -> None:
    async def live(request: web.Request) -> web.StreamResponse:
        _, record = await visible_session(request, runtime)
        after = last_event_id(request)
        lifecycle = runtime.lifecycle
        assert lifecycle is not None
        if record.state.final and not await lifecycle.store.events_after(record.session_id, after, limit=1):
            # the client saw the final event: 204 makes an EventSource stop reconnecting
            return web.Response(status=204, headers={"Cache-Control": "no-cache"})
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        with lifecycle.hub.watch(record.session_id) as wake:
            try:
                await response.write(b"retry: 1000\n\n")
                quiet_since = loop.time()
                while True:
                    wake.clear()
                    events = await lifecycle.store.events_after(record.session_id, after)
                    for event in events:
                        await response.write(sse_frame(event))
                        after = event.seq
                        if event.kind == "state" and event.state.final:
                            return response
                    if events:
                        quiet_since = loop.time()
                    elif loop.time() - quiet_since >= KEEPALIVE_S:
                        await response.write(b": keep-alive\n\n")
                        quiet_since = loop.time()
                    # wake up for the next keep-alive on time, not at the next poll after it
                    until_keepalive_s = quiet_since + KEEPALIVE_S - loop.time()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), max(0.0, min(POLL_INTERVAL_S, until_keepalive_s)))
            except (ConnectionResetError, ClientConnectionResetError):
                return response  # the client went away

    async def receipt(request: web.Request) -> web.StreamResponse:
        _, record = await visible_session(request, runtime)
        if runtime.receipts is None:
            raise not_found("receipts are not available on this server (billing is not installed)")
        if "text/html" in request.headers.get("Accept", "") and "application/json" not in request.headers.get(
            "Accept", ""
        ):
            html = await runtime.receipts.receipt_html(record.session_id)
            if html is None:
                raise not_found(f"session {record.session_id} has no receipt yet")
            return web.Response(text=html, content_type="text/html")
        body = await runtime.receipts.receipt_json(record.session_id)
        if body is None:
            raise not_found(f"session {record.session_id} has no receipt yet")
        return json_response(body)

    one: dict[str, Any] = {"security": BEARER}
    api.add(
        Operation(
            "GET",
            "/v1/sessions/{session_id}/live",
            live,
            {
                "summary": "Live events of a session (Server-Sent Events); resume with Last-Event-ID",
                "operationId": "watchSession",
                **one,
                "parameters": [
                    SESSION_ID_PARAMETER,
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                    },
                    {
                        "name": "last_event_id",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": _MAX_EVENT_ID},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "events: progress, state, and a last one named final",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "204": {"description": "the session has ended and its final event was seen: stop"},
                    "401": problem("no valid bearer token"),
                    "403": problem("an operator's token"),
                    "404": problem("no such session of this driver"),
                },
            },
        )
    )
    api.add(
        Operation(
            "GET",
            "/v1/sessions/{session_id}/receipt",
            receipt,
            {
                "summary": "The receipt once billing has rated the session (JSON; HTML on Accept: text/html)",
                "operationId": "getReceipt",
                **one,
                "parameters": [SESSION_ID_PARAMETER],
                "responses": {
                    "200": {
                        **json_content({"type": "object"}, "the receipt"),
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/html": {"schema": {"type": "string"}},
                        },
                    },
                    "401": problem("no valid bearer token"),
                    "403": problem("an operator's token"),
                    "404": problem("no such session, or no receipt yet"),
                },
            },
        )
    )
