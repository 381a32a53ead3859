"""Shared pieces of the session tests: seeded drivers, registered chargers, an SSE reader, and a
listener that waits for session events (no sleeps to synchronise)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from csms.storage.chargers import ChargerRecord, ConnectorSpec
from sessions.events import SessionEvent, SessionState
from tests.sessions.conftest import RunningApi

WAIT_S = 10.0


async def seed_driver(
    api: RunningApi, driver_id: str, *, rfid: str | None = None, blocked: bool = False
) -> str:
    """A driver with a payment method ``PM-{driver_id}`` (returned) and optionally an RFID token."""
    pool = api.csms.database.pool
    await pool.execute("INSERT INTO drivers (driver_id, blocked) VALUES ($1, $2)", driver_id, blocked)
    payment_method_id = f"PM-{driver_id}"
    await pool.execute(
        """INSERT INTO payment_methods (payment_method_id, driver_id, provider_token)
           VALUES ($1, $2, 'tok_test')""",
        payment_method_id,
        driver_id,
    )
    if rfid is not None:
        await pool.execute("INSERT INTO driver_tokens (id_token, driver_id) VALUES ($1, $2)", rfid, driver_id)
    return payment_method_id


async def register_charger(api: RunningApi, charger_id: str, evses: int = 1) -> None:
    connectors = tuple(ConnectorSpec(evse, 1, "Type2", 22.0) for evse in range(1, evses + 1))
    await api.csms.chargers.save(ChargerRecord(charger_id=charger_id, connectors=connectors))


async def reserve(api: RunningApi, driver: str, **body: Any) -> tuple[int, dict[str, Any]]:
    """POST /v1/reservations with ``body`` as ``driver``: the status and the answer."""
    async with api.http.post(f"{api.base_url}/v1/reservations", json=body, headers=api.headers(driver)) as r:
        return r.status, await r.json()


@dataclass
class EventLog:
    """Collects every session event the lifecycle publishes (a ``session_listeners`` entry)."""

    events: list[SessionEvent] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def __call__(self, event: SessionEvent) -> None:
        async with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    async def wait_state(self, session_id: str, state: SessionState) -> SessionEvent:
        def found() -> SessionEvent | None:
            return next(
                (
                    e
                    for e in self.events
                    if e.session_id == session_id and e.kind == "state" and e.state is state
                ),
                None,
            )

        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: found() is not None), WAIT_S)
        event = found()
        assert event is not None
        return event

    async def wait_for(self, predicate: Any) -> SessionEvent:
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: any(predicate(e) for e in self.events)), WAIT_S
            )
        return next(e for e in self.events if predicate(e))


def event_log(api: RunningApi) -> EventLog:
    log = EventLog()
    api.sessions.session_listeners.append(log)
    return log


@dataclass(frozen=True)
class Sse:
    id: int
    event: str
    data: dict[str, Any]


class SseReader:
    """Reads ``text/event-stream`` frames from an aiohttp response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self) -> Sse:
        return await asyncio.wait_for(self._next(), WAIT_S)

    async def _next(self) -> Sse:
        fields: dict[str, str] = {}
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if line == "":
                if "data" in fields:
                    return Sse(int(fields["id"]), fields.get("event", "message"), json.loads(fields["data"]))
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value

    async def until(self, event: str) -> Sse:
        while True:
            frame = await self.next()
            if frame.event == event:
                return frame

    async def rest(self) -> list[Sse]:
        frames = []
        while True:
            try:
                frames.append(await self.next())
            except EOFError:
                return frames
