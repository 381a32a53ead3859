"""POST-to-charger latency: from ``POST /v1/sessions`` to the charger receiving RemoteStartTransaction.

``python -m benchmarks.session_start [--requests 500] [--chargers 20] [--evses 10] [--concurrency 8]``

One process on 127.0.0.1: the real server (CSMS + driver API) on a throw-away PostgreSQL database,
``ocpp``-package 1.6 chargers that accept the start, then start and stop the transaction (so the
lifecycle runs its transitions alongside), and an HTTP client. Each request targets the next free
connector. Measured per request: the time until the charger's handler sees the RemoteStart, and
until the client has the 201. The anchor, measured in the same run against the same chargers, is a
direct ``CommandBus.remote_start`` from inside the server: what the API adds is the difference.
Everything shares one core and one event loop, so the figures include the client's and chargers' work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16 import call as call16
from ocpp.v16.enums import Action

from csms.domain.events import IdToken
from csms.server import CSMS, create_app
from csms.settings import CsmsSettings
from csms.storage.chargers import ChargerRecord, ConnectorSpec
from sessions.app import SESSIONS, SessionsSettings, install
from sessions.auth import Role

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET = "benchmark-secret-of-at-least-thirty-two-bytes"


class _Connection:
    def __init__(self, websocket: aiohttp.ClientWebSocketResponse) -> None:
        self.websocket = websocket

    async def recv(self) -> str:
        message = await self.websocket.receive()
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(str(message.type))
        text: str = message.data
        return text

    async def send(self, frame: str) -> None:
        await self.websocket.send_str(frame)


class BenchCharger(ChargePoint):  # type: ignore[misc]
    """Notes when each RemoteStart arrives; charges briefly for app sessions' tokens."""

    def __init__(self, charger_id: str, connection: _Connection) -> None:
        super().__init__(charger_id, connection, response_timeout=30)
        self.arrivals: dict[int, asyncio.Future[float]] = {}
        self.stopped: dict[int, asyncio.Future[None]] = {}
        self.sessions: set[asyncio.Task[None]] = set()

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, **request: Any) -> Any:
        arrived = time.perf_counter()
        waiting = self.arrivals.pop(request["connector_id"], None)
        if waiting is not None and not waiting.done():
            waiting.set_result(arrived)
        if request["id_tag"].startswith("FW"):
            task = asyncio.create_task(self._charge(request["connector_id"], request["id_tag"]))
            self.sessions.add(task)
            task.add_done_callback(self.sessions.discard)
        return call_result.RemoteStartTransaction(status="Accepted")

    async def _charge(self, connector_id: int, id_tag: str) -> None:
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        started = await self.call(
            call16.StartTransaction(connector_id=connector_id, id_tag=id_tag, meter_start=0, timestamp=stamp)
        )
        await self.call(
            call16.StopTransaction(meter_stop=100, timestamp=stamp, transaction_id=started.transaction_id)
        )
        # the session is COMPLETED before the CSMS answers StopTransaction: the connector is free
        stopped = self.stopped.pop(connector_id, None)
        if stopped is not None and not stopped.done():
            stopped.set_result(None)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0

    return {
        "n": len(ordered),
        "p50_ms": round(at(0.50), 2),
        "p95_ms": round(at(0.95), 2),
        "p99_ms": round(at(0.99), 2),
        "max_ms": round(ordered[-1] * 1000.0, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000.0, 2),
    }


@asynccontextmanager
async def _database() -> AsyncIterator[str]:
    name = f"fairwatt_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _charger(
    stack: AsyncExitStack, http: aiohttp.ClientSession, url: str, charger_id: str
) -> BenchCharger:
    websocket = await stack.enter_async_context(http.ws_connect(url, protocols=("ocpp1.6",)))
    charger = BenchCharger(charger_id, _Connection(websocket))
    serving = asyncio.create_task(charger.start())
    stack.callback(serving.cancel)
    await charger.call(call16.BootNotification(charge_point_model="Bench", charge_point_vendor="fairwatt"))
    return charger


async def run(requests: int, chargers: int, evses: int, concurrency: int) -> dict[str, Any]:
    async with _database() as dsn, AsyncExitStack() as stack:
        app = create_app(CsmsSettings(database_dsn=dsn, response_timeout_s=30.0, database_max_connections=20))
        install(app, SessionsSettings(token_secret=SECRET, session_create_per_minute=1_000_000))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        await web.SockSite(runner, listener).start()
        csms = app[CSMS]
        pool = csms.database.pool
        await pool.execute("INSERT INTO drivers (driver_id) VALUES ('bench')")
        await pool.execute(
            """INSERT INTO payment_methods (payment_method_id, driver_id, provider_token)
               VALUES ('PM', 'bench', 't')"""
        )
        ids = [f"BENCH-{n:03d}" for n in range(chargers)]
        for charger_id in ids:
            specs = tuple(ConnectorSpec(evse, 1, "Type2", 22.0) for evse in range(1, evses + 1))
            await csms.chargers.save(ChargerRecord(charger_id, connectors=specs))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        connected = [await _charger(stack, http, f"ws://127.0.0.1:{port}/ocpp/{i}", i) for i in ids]
        token = app[SESSIONS].issuer.mint("bench", Role.DRIVER, ttl_s=3600)
        slots: asyncio.Queue[tuple[BenchCharger, int]] = asyncio.Queue()
        for evse in range(1, evses + 1):
            for charger in connected:
                slots.put_nowait((charger, evse))

        async def one_post(to_charger: list[float], to_answer: list[float], errors: list[str]) -> None:
            charger, evse = await slots.get()
            arrival: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            charger.arrivals[evse] = arrival
            charger.stopped[evse] = stopped
            body = {"charger_id": charger.id, "connector_id": evse, "payment_method_id": "PM"}
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
            began = time.perf_counter()
            async with http.post(f"http://127.0.0.1:{port}/v1/sessions", json=body, headers=headers) as r:
                await r.read()
                answered = time.perf_counter()
                status = r.status
            if status != 201:
                errors.append(str(status))
                charger.arrivals.pop(evse, None)
                charger.stopped.pop(evse, None)
            else:
                to_answer.append(answered - began)
                to_charger.append(await asyncio.wait_for(arrival, 30) - began)
                await asyncio.wait_for(stopped, 30)
            slots.put_nowait((charger, evse))

        async def phase(count: int, in_flight: int) -> dict[str, Any]:
            to_charger: list[float] = []
            to_answer: list[float] = []
            errors: list[str] = []
            gate = asyncio.Semaphore(in_flight)

            async def gated() -> None:
                async with gate:
                    await one_post(to_charger, to_answer, errors)

            await asyncio.gather(*(gated() for _ in range(count)))
            return {
                "post_to_charger": percentiles(to_charger),
                "post_answered": percentiles(to_answer),
                "errors": errors,
            }

        async def anchor(count: int) -> dict[str, Any]:
            samples: list[float] = []
            for n in range(count):
                charger = connected[n % len(connected)]
                arrival: asyncio.Future[float] = asyncio.get_running_loop().create_future()
                charger.arrivals[1] = arrival
                began = time.perf_counter()
                await csms.commands.remote_start(charger.id, 1, IdToken("ANCHOR"))
                samples.append(await arrival - began)
            return percentiles(samples)

        await phase(min(50, requests), 1)  # warm-up: connections, prepared statements
        await anchor(min(50, requests))
        direct = await anchor(requests)
        sequential = await phase(requests, 1)
        concurrent = await phase(requests, concurrency)
        results: dict[str, Any] = {
            "requests": requests,
            "chargers": chargers,
            "evses_per_charger": evses,
            "anchor_direct_remote_start": direct,
            "sequential": sequential,
            f"concurrency_{concurrency}": concurrent,
            "sequential_p99_over_anchor_p99": round(
                sequential["post_to_charger"]["p99_ms"] / max(direct["p99_ms"], 1e-3), 2
            ),
        }
        for charger in connected:
            await asyncio.gather(*charger.sessions, return_exceptions=True)
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.session_start", description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--chargers", type=int, default=20)
    parser.add_argument("--evses", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.requests, args.chargers, args.evses, args.concurrency))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
