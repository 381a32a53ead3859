"""The server restarts mid-transaction and nothing is lost (issue 3).

One OCPP 1.6 charger and one 2.0.1 charging station (the ``ocpp`` package) run a transaction
against the real server and a real PostgreSQL database. Meter values flow and are answered; one
more is in flight (sent, answer not awaited) when the server stops, either cleanly (the
in-process app shut down) or abruptly (a ``fairwatt serve`` process killed with SIGKILL). While
the server is away the chargers queue meter values. The server starts again on the same port and
database, the chargers reconnect (the test drives the reconnect: the ``ocpp`` library does not),
resend the in-flight message, send their queue and stop the transaction, then replay the stop.

Read back from PostgreSQL: each transaction is stored once with the right meter start and stop,
every meter value acknowledged before the stop and every one sent after is stored exactly once,
and the replayed StopTransaction / TransactionEvent Ended changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.server import create_app
from tests.csms.chargers import Charger16, Charger201, ChargerDisconnectedError, ClientConnection
from tests.csms.conftest import make_settings

pytestmark = pytest.mark.asyncio

ENERGY = "Energy.Active.Import.Register"
_LISTENING = re.compile(r"wss?://[^:]+:(\d+)/ocpp/")
# Guards against a hang, not timing assertions: each awaits an event that ends it earlier.
START_TIMEOUT_S = 120.0
DISCONNECT_TIMEOUT_S = 30.0


class RestartableServer(Protocol):
    """A CSMS that can be started, stopped and started again on the same port and database."""

    port: int

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class InProcessServer:
    """``create_app`` in this process; :meth:`stop` shuts the app down cleanly."""

    def __init__(self, database_dsn: str) -> None:
        self._database_dsn = database_dsn
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        runner = web.AppRunner(create_app(make_settings(self._database_dsn, auto_register=True)))
        await runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        self.port = listener.getsockname()[1]
        await web.SockSite(runner, listener).start()
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class KilledServeProcess:
    """``fairwatt serve`` as a process; :meth:`stop` kills it with SIGKILL, :meth:`shutdown` with SIGTERM."""

    def __init__(self, database_dsn: str, log: IO[bytes]) -> None:
        self._database_dsn = database_dsn
        self._log = log
        self._process: asyncio.subprocess.Process | None = None
        self.port = 0

    async def start(self) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fairwatt.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--auto-register",
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            env=_environment(DATABASE_URL=self._database_dsn),
        )
        self._process = process
        assert process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            line = (await process.stdout.readline()).decode()
        match = _LISTENING.search(line)
        assert match is not None, f"fairwatt serve did not announce its endpoint: {line!r}"
        self.port = int(match.group(1))

    async def stop(self) -> None:
        """The abrupt stop: no shutdown code runs in the server."""
        process = self._process
        assert process is not None
        process.kill()
        assert await process.wait() == -signal.SIGKILL

    async def shutdown(self) -> int:
        """The clean stop at the end of the test; the exit status."""
        process = self._process
        assert process is not None
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(START_TIMEOUT_S):
            return await process.wait()

    async def kill_if_running(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()


def _environment(**values: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    environ.update(values)
    return environ


@dataclass
class Link:
    """A charger connected to the server; ``serving`` ends when the server closes the socket."""

    charger: Any
    serving: asyncio.Task[None]

    async def send_without_waiting(self, unique_id: str, action: str, payload: dict[str, Any]) -> None:
        """A CALL on the wire whose answer nobody waits for: in flight when the server stops."""
        await self.charger._connection.send(json.dumps([2, unique_id, action, payload]))

    async def until_disconnected(self) -> None:
        async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
            ended = await asyncio.gather(self.serving, return_exceptions=True)
        assert isinstance(ended[0], ChargerDisconnectedError), ended[0]


@asynccontextmanager
async def online(
    charger_class: type[Any], port: int, charger_id: str, subprotocol: str
) -> AsyncIterator[Link]:
    url = f"ws://127.0.0.1:{port}/ocpp/{charger_id}"
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, protocols=(subprotocol,)) as websocket,
    ):
        charger = charger_class(charger_id, ClientConnection(websocket))
        serving = asyncio.create_task(charger.start())
        try:
            yield Link(charger, serving)
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)


def at(minute: int) -> str:
    return f"2026-03-02T10:{minute:02d}:00Z"


def meter16(minute: int, energy_wh: float, context: str = "Sample.Periodic") -> dict[str, Any]:
    return {
        "timestamp": at(minute),
        "sampledValue": [
            {"value": f"{energy_wh:.0f}", "unit": "Wh", "measurand": ENERGY, "context": context}
        ],
    }


def meter201(minute: int, energy_wh: float, context: str = "Sample.Periodic") -> dict[str, Any]:
    return {
        "timestamp": at(minute),
        "sampledValue": [
            {"value": energy_wh, "measurand": ENERGY, "context": context, "unitOfMeasure": {"unit": "Wh"}}
        ],
    }


@dataclass
class Expected:
    """What one charger sent and was (or will be) answered: the samples PostgreSQL must hold."""

    charger_id: str
    samples: set[tuple[datetime, float]] = field(default_factory=set)

    def add(self, minute: int, energy_wh: float) -> None:
        self.samples.add((datetime.fromisoformat(at(minute)), energy_wh))


TX201 = "TX-RESTART-201"


def event201(event_type: str, seq_no: int, minute: int, energy_wh: float, **extra: Any) -> dict[str, Any]:
    """A TransactionEvent payload (camelCase, as on the wire)."""
    context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(event_type, "Sample.Periodic")
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": at(minute),
        "triggerReason": {"Started": "Authorized", "Ended": "EVDeparted"}.get(
            event_type, "MeterValuePeriodic"
        ),
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": TX201},
        "meterValue": [meter201(minute, energy_wh, context)],
    }
    payload.update(extra)
    return payload


def transaction_event(payload: dict[str, Any]) -> Any:
    """The ``ocpp`` call object of a TransactionEvent payload."""
    return call201.TransactionEvent(
        event_type=payload["eventType"],
        timestamp=payload["timestamp"],
        trigger_reason=payload["triggerReason"],
        seq_no=payload["seqNo"],
        transaction_info=payload["transactionInfo"],
        meter_value=payload["meterValue"],
        offline=payload.get("offline"),
        evse=payload.get("evse"),
        id_token=payload.get("idToken"),
    )


async def boot(link16: Link, link201: Link) -> None:
    booted16 = await link16.charger.call(
        call16.BootNotification(charge_point_model="M16", charge_point_vendor="V"), suppress=False
    )
    booted201 = await link201.charger.call(
        call201.BootNotification(charging_station={"model": "M201", "vendor_name": "V"}, reason="PowerUp"),
        suppress=False,
    )
    assert booted16.status == booted201.status == "Accepted"


async def _register_tokens(database_dsn: str, suffix: str, *id_tokens: str) -> None:
    """Give the tokens a driver where the server authorises against drivers (``fairwatt serve``)."""
    connection = await asyncpg.connect(database_dsn)
    try:
        if await connection.fetchval("SELECT to_regclass('driver_tokens')") is None:
            return  # the bare central system accepts every token
        driver_id = f"rst-driver-{suffix}"
        await connection.execute(
            "INSERT INTO drivers (driver_id) VALUES ($1) ON CONFLICT DO NOTHING", driver_id
        )
        for id_token in id_tokens:
            await connection.execute(
                "INSERT INTO driver_tokens (id_token, driver_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                id_token,
                driver_id,
            )
    finally:
        await connection.close()


async def run_restart(server: RestartableServer, database_dsn: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    expected16 = Expected(f"RST16-{suffix}")
    expected201 = Expected(f"RST201-{suffix}")
    start16 = call16.StartTransaction(connector_id=1, id_tag="TAG-16", meter_start=1000, timestamp=at(0))
    in_flight201 = event201("Updated", 3, 3, 2300.0)

    await server.start()
    await _register_tokens(database_dsn, suffix, "TAG-16", "T")
    async with (
        online(Charger16, server.port, expected16.charger_id, "ocpp1.6") as link16,
        online(Charger201, server.port, expected201.charger_id, "ocpp2.0.1") as link201,
    ):
        await boot(link16, link201)
        transaction_id = (await link16.charger.call(start16, suppress=False)).transaction_id
        for minute in (1, 2):
            energy_wh = 1000.0 + 100 * minute
            await link16.charger.call(
                call16.MeterValues(
                    connector_id=1, transaction_id=transaction_id, meter_value=[meter16(minute, energy_wh)]
                ),
                suppress=False,
            )
            expected16.add(minute, energy_wh)
        started = event201(
            "Started",
            0,
            0,
            2000.0,
            evse={"id": 1, "connectorId": 1},
            idToken={"idToken": "T", "type": "Central"},
        )
        await link201.charger.call(transaction_event(started), suppress=False)
        expected201.add(0, 2000.0)
        for seq_no in (1, 2):
            await link201.charger.call(
                transaction_event(event201("Updated", seq_no, seq_no, 2000.0 + 100 * seq_no)), suppress=False
            )
            expected201.add(seq_no, 2000.0 + 100 * seq_no)
        # In flight when the server stops: stored or not, the charger sends it again afterwards.
        in_flight16 = {"connectorId": 1, "transactionId": transaction_id, "meterValue": [meter16(3, 1300.0)]}
        await link16.send_without_waiting("in-flight-16", "MeterValues", in_flight16)
        await link201.send_without_waiting("in-flight-201", "TransactionEvent", in_flight201)
        expected16.add(3, 1300.0)
        expected201.add(3, 2300.0)

        await server.stop()
        await link16.until_disconnected()
        await link201.until_disconnected()

    # Offline: the chargers keep measuring and queue what they cannot send.
    queued16 = [meter16(minute, 1000.0 + 100 * minute) for minute in (4, 5)]
    queued201 = [
        event201("Updated", minute, minute, 2000.0 + 100 * minute, offline=True) for minute in (4, 5)
    ]
    for minute in (4, 5):
        expected16.add(minute, 1000.0 + 100 * minute)
        expected201.add(minute, 2000.0 + 100 * minute)

    await server.start()
    async with (
        online(Charger16, server.port, expected16.charger_id, "ocpp1.6") as link16,
        online(Charger201, server.port, expected201.charger_id, "ocpp2.0.1") as link201,
    ):
        await boot(link16, link201)
        # A charger unsure whether its start was stored sends it again: the same transaction.
        replayed_start = await link16.charger.call(start16, suppress=False)
        assert replayed_start.transaction_id == transaction_id
        await link16.charger.call(
            call16.MeterValues(
                connector_id=1, transaction_id=transaction_id, meter_value=in_flight16["meterValue"]
            ),
            suppress=False,
            unique_id="in-flight-16",
        )
        for queued in queued16:
            await link16.charger.call(
                call16.MeterValues(connector_id=1, transaction_id=transaction_id, meter_value=[queued]),
                suppress=False,
            )
        await link201.charger.call(transaction_event(in_flight201), suppress=False, unique_id="in-flight-201")
        for event in queued201:
            await link201.charger.call(transaction_event(event), suppress=False)

        stop16 = call16.StopTransaction(
            meter_stop=1600,
            timestamp=at(6),
            transaction_id=transaction_id,
            id_tag="TAG-16",
            reason="EVDisconnected",
            transaction_data=[meter16(6, 1600.0, "Transaction.End")],
        )
        ended201 = transaction_event(
            event201(
                "Ended",
                6,
                6,
                2600.0,
                transactionInfo={"transactionId": TX201, "stoppedReason": "EVDisconnected"},
            )
        )
        stopped16 = await link16.charger.call(stop16, suppress=False, unique_id="stop-16")
        ended = await link201.charger.call(ended201, suppress=False, unique_id="ended-201")
        expected16.add(6, 1600.0)
        expected201.add(6, 2600.0)
        stored = await read_back(database_dsn, expected16.charger_id, expected201.charger_id)

        # The answers were lost, say: the chargers send the same stop again.
        # ... answered the same but for the tag's cache expiry, which counts from when it is asked
        first, again = (
            stopped16.id_tag_info,
            (await link16.charger.call(stop16, suppress=False, unique_id="stop-16")).id_tag_info,
        )
        assert {**again, "expiry_date": None} == {**first, "expiry_date": None}
        assert again.get("expiry_date", "") >= first.get("expiry_date", "")
        assert await link201.charger.call(ended201, suppress=False, unique_id="ended-201") == ended
        assert await read_back(database_dsn, expected16.charger_id, expected201.charger_id) == stored

    transactions, samples, events = stored
    (row16,) = transactions[expected16.charger_id]
    assert row16["transaction_id"] == str(transaction_id)
    assert (row16["meter_start_wh"], row16["meter_stop_wh"]) == (1000.0, 1600.0)
    assert (row16["started_at"], row16["ended_at"]) == (
        datetime.fromisoformat(at(0)),
        datetime.fromisoformat(at(6)),
    )
    assert row16["stop_reason"] == "EVDisconnected"
    (row201,) = transactions[expected201.charger_id]
    assert row201["transaction_id"] == TX201
    assert (row201["meter_start_wh"], row201["meter_stop_wh"]) == (2000.0, 2600.0)
    assert (row201["started_at"], row201["ended_at"]) == (
        datetime.fromisoformat(at(0)),
        datetime.fromisoformat(at(6)),
    )
    assert row201["offline"]  # some of its events were queued offline
    for expected, transaction in ((expected16, str(transaction_id)), (expected201, TX201)):
        rows = samples[expected.charger_id]
        assert {(r["sampled_at"], r["value"]) for r in rows} == expected.samples
        assert len(rows) == len(expected.samples)  # each exactly once
        assert {r["transaction_id"] for r in rows} == {transaction}
    assert events == [(seq_no, seq_no in (4, 5)) for seq_no in range(7)]


async def read_back(
    database_dsn: str, charger16: str, charger201: str
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]], list[tuple[int, bool]]]:
    """Transactions and meter samples per charger, and the 2.0.1 events (seqNo, offline), from PostgreSQL."""
    connection = await asyncpg.connect(database_dsn)
    try:
        transactions: dict[str, list[dict[str, Any]]] = {}
        samples: dict[str, list[dict[str, Any]]] = {}
        for charger_id in (charger16, charger201):
            rows = await connection.fetch(
                "SELECT * FROM transactions WHERE charger_id = $1 ORDER BY id", charger_id
            )
            transactions[charger_id] = [{k: v for k, v in dict(r).items() if k != "updated_at"} for r in rows]
            rows = await connection.fetch(
                """SELECT sampled_at, measurand, value, unit, transaction_id FROM meter_samples
                   WHERE charger_id = $1 ORDER BY sampled_at, measurand""",
                charger_id,
            )
            samples[charger_id] = [dict(r) for r in rows]
        events = await connection.fetch(
            "SELECT seq_no, offline FROM transaction_events WHERE charger_id = $1 AND transaction_id = $2 "
            "ORDER BY seq_no",
            charger201,
            TX201,
        )
    finally:
        await connection.close()
    return transactions, samples, [(r["seq_no"], r["offline"]) for r in events]


async def test_clean_restart_mid_transaction_loses_nothing(database_dsn: str) -> None:
    server = InProcessServer(database_dsn)
    try:
        await run_restart(server, database_dsn)
    finally:
        await server.stop()


async def test_killed_server_mid_transaction_loses_nothing(database_dsn: str, tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = KilledServeProcess(database_dsn, log)
        try:
            await run_restart(server, database_dsn)
            status = await server.shutdown()
        finally:
            await server.kill_if_running()
    stderr = log_path.read_text()
    assert status == 0, stderr
    assert "Traceback" not in stderr
    assert "ERROR" not in stderr
