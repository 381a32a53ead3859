"""2.0.1 stations at the protocol layer: raw frames over an in-memory connection to a session whose
charging service runs on the real PostgreSQL (live state in process), and a command bus to it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from csms.commands import CommandBus
from csms.domain.events import RegistrationStatus
from csms.domain.service import AcceptAllAuthorizer, ChargingService
from csms.live_state import InProcessLiveState
from csms.protocol.handlers import build_router
from csms.protocol.registry import ConnectedChargers
from csms.protocol.session import LoggedMessage, OcppSession
from csms.protocol.versions import OcppVersion
from csms.storage.chargers import ChargerRepository
from csms.storage.database import Database
from csms.storage.device_model import DeviceModelRepository
from csms.storage.transactions import TransactionRepository
from tests.csms.memory import MemoryConnection

NOW = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
"""What the sessions' clock reads: the time every message is received."""
V201 = OcppVersion.V201


@dataclass
class ListLog:
    """A message log that keeps what it is given."""

    messages: list[LoggedMessage] = field(default_factory=list)

    def record(self, message: LoggedMessage) -> None:
        self.messages.append(message)


@dataclass
class ServiceCsms:
    """The central system without its WebSocket server."""

    service: ChargingService
    device_model: DeviceModelRepository
    live_state: InProcessLiveState
    connected: ConnectedChargers
    commands: CommandBus


@asynccontextmanager
async def service_csms(database_dsn: str) -> AsyncIterator[ServiceCsms]:
    database = Database(database_dsn, max_connections=2)
    await database.open()
    device_model = DeviceModelRepository(database)
    live_state = InProcessLiveState()
    service = ChargingService(
        ChargerRepository(database),
        TransactionRepository(database),
        live_state,
        AcceptAllAuthorizer(),
        device_model=device_model,
        heartbeat_interval_s=300,
        pending_retry_interval_s=30,
    )
    connected = ConnectedChargers()
    try:
        yield ServiceCsms(
            service, device_model, live_state, connected, CommandBus(connected, default_timeout_s=5.0)
        )
    finally:
        await database.close()


@dataclass
class Station:
    """The station's end of the connection; its CALLs get ids ``m1``, ``m2``, ..."""

    connection: MemoryConnection
    log: ListLog
    next_id: int = 0

    async def send(self, action: str, payload: dict[str, Any]) -> list[Any]:
        self.next_id += 1
        return await self.connection.exchange(json.dumps([2, f"m{self.next_id}", action, payload]))

    async def answer_csms(self, payload: dict[str, Any]) -> list[Any]:
        """Read the CALL the CSMS sent and answer it with ``payload``; return the CALL."""
        sent: list[Any] = json.loads(await self.connection.outgoing.get())
        await self.connection.incoming.put(json.dumps([3, sent[1], payload]))
        return sent


@asynccontextmanager
async def station(
    csms: ServiceCsms, charger_id: str, registration: RegistrationStatus | None = None
) -> AsyncIterator[Station]:
    """A 2.0.1 station's session, registered with the command bus, its clock reading ``NOW``."""
    connection, log = MemoryConnection(), ListLog()
    router = build_router(V201, csms.service, registration=registration)
    session = OcppSession(
        charger_id, V201, connection, router, max_message_bytes=65536, message_log=log, clock=lambda: NOW
    )
    csms.connected.register(session)
    task = asyncio.create_task(session.run())
    try:
        yield Station(connection, log)
    finally:
        await connection.incoming.put(None)
        await task
        csms.connected.unregister(session)


def answered(answer: list[Any], payload: dict[str, Any]) -> None:
    """``answer`` is a CALLRESULT carrying ``payload``."""
    assert answer[0] == 3, answer
    assert answer[2] == payload


def event_data(event_id: int, at: str, **extra: Any) -> dict[str, Any]:
    """An ``EventDataType``: a hard-wired problem on connector 1 of EVSE 1 (fields overridable)."""
    return {
        "eventId": event_id,
        "timestamp": at,
        "trigger": "Alerting",
        "actualValue": "true",
        "eventNotificationType": "HardWiredNotification",
        "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
        "variable": {"name": "Problem"},
        **extra,
    }


def report_data(component: str, variable: str, *attributes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A ``ReportDataType`` of ``component``'s ``variable`` with ``attributes``."""
    return {
        "component": {"name": component},
        "variable": {"name": variable},
        "variableAttribute": list(attributes),
        **extra,
    }


def report(request_id: int, seq_no: int, generated_at: str, data: list[dict[str, Any]], **extra: Any) -> Any:
    """A NotifyReport payload (no ``reportData`` when ``data`` is empty)."""
    payload: dict[str, Any] = {"requestId": request_id, "generatedAt": generated_at, "seqNo": seq_no, **extra}
    if data:
        payload["reportData"] = data
    return payload
