"""Two nodes sharing PostgreSQL and Redis: the charger on node 1, the driver's calls and live stream
on node 2. The charger's events are handled where its socket is; the session's events reach node
2's listeners and stream through the relay, and the rate limit counts on both nodes."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from ocpp.v16 import call as call16
from redis.asyncio import Redis

from csms.server import CSMS, create_app
from sessions.app import SESSIONS, SessionsSettings, install
from sessions.events import SessionState
from tests.csms.chargers import Charger16, connected
from tests.csms.conftest import make_settings
from tests.sessions.conftest import TOKEN_SECRET, RunningApi
from tests.sessions.helpers import SseReader, event_log, register_charger, seed_driver
from tests.sessions.test_session_e2e import booted16, meter_values_16, now_text, start

pytestmark = pytest.mark.asyncio

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Pair:
    node1: RunningApi
    node2: RunningApi


@pytest_asyncio.fixture
async def pair(database_dsn: str) -> AsyncIterator[Pair]:
    prefix = f"fairwatt-test:{uuid.uuid4().hex}:"
    runners: list[web.AppRunner] = []
    nodes = []
    try:
        async with aiohttp.ClientSession() as http:
            for node_id in ("node-1", "node-2"):
                app = create_app(
                    make_settings(database_dsn, redis_url=REDIS_URL, redis_key_prefix=prefix, node_id=node_id)
                )
                install(app, SessionsSettings(token_secret=TOKEN_SECRET, session_create_per_minute=2))
                runner = web.AppRunner(app)
                await runner.setup()
                runners.append(runner)
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.bind(("127.0.0.1", 0))
                port: int = listener.getsockname()[1]
                await web.SockSite(runner, listener).start()
                nodes.append(RunningApi(app[CSMS], app[SESSIONS], port, http, app))
            yield Pair(nodes[0], nodes[1])
    finally:
        for runner in runners:
            await runner.cleanup()
        redis = Redis.from_url(REDIS_URL)
        stale = [key async for key in redis.scan_iter(match=prefix + "*")]
        if stale:
            await redis.delete(*stale)
        await redis.aclose()


async def test_a_session_on_another_nodes_charger_streams_through_the_relay(pair: Pair) -> None:
    here, there = pair.node2, pair.node1
    log_here = event_log(here)
    payment = await seed_driver(here, "nina")
    await register_charger(here, "CP-N")
    async with connected(Charger16, there.charger_url("CP-N"), "CP-N", "ocpp1.6") as charger:
        await booted16(charger)
        status, created = await start(
            here, "nina", {"charger_id": "CP-N", "connector_id": 1, "payment_method_id": payment}, "k"
        )
        assert status == 201, created
        session_id = created["session_id"]
        action, request = await asyncio.wait_for(charger.received.get(), 10)
        assert action == "RemoteStartTransaction"
        async with here.http.get(
            f"{here.base_url}/v1/sessions/{session_id}/live", headers=here.headers("nina")
        ) as stream:
            sse = SseReader(stream)
            assert (await sse.next()).data["state"] == "INITIATED"
            answer = await charger.call(
                call16.StartTransaction(
                    connector_id=1, id_tag=request["id_tag"], meter_start=0, timestamp=now_text()
                ),
                suppress=False,
            )
            assert (await sse.until("state")).data["state"] == "ACTIVE"
            await charger.call(meter_values_16(answer.transaction_id, 1500, 11000), suppress=False)
            progress = await sse.until("progress")
            assert (progress.data["energy_kwh"], progress.data["power_kw"]) == (1.5, 11.0)
            async with here.http.delete(
                f"{here.base_url}/v1/sessions/{session_id}", headers=here.headers("nina")
            ) as r:
                assert (r.status, (await r.json())["stop_command"]) == (202, "accepted")
            action, _ = await asyncio.wait_for(charger.received.get(), 10)
            assert action == "RemoteStopTransaction"
            await charger.call(
                call16.StopTransaction(
                    meter_stop=2000, timestamp=now_text(), transaction_id=answer.transaction_id
                ),
                suppress=False,
            )
            final = await sse.until("final")
        assert (final.data["state"], final.data["energy_kwh"]) == ("COMPLETED", 2.0)
        # node 2's listeners heard the transitions node 1 made (ACTIVE, COMPLETED) through Redis
        await log_here.wait_state(session_id, SessionState.COMPLETED)
        assert [e.state for e in log_here.events if e.kind == "state"] == [
            SessionState.INITIATED,
            SessionState.ACTIVE,
            SessionState.STOPPING,
            SessionState.COMPLETED,
        ]

        # the rate limit (2 a minute) is shared: one more here, and the next on node 1 is refused
        await register_charger(here, "CP-N2", evses=2)
        body = {"charger_id": "CP-N2", "connector_id": 1, "payment_method_id": payment}
        assert (await start(here, "nina", body, "k2"))[0] == 409  # CP-N2 is offline, but it counted
        status, limited = await start(there, "nina", {**body, "connector_id": 2}, "k3")
        assert status == 429, limited
