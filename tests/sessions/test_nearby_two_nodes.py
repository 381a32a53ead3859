"""Two nodes sharing PostgreSQL and Redis: a status heard by node 1 and a reservation made there
show in node 2's nearby search (its index hears them over Redis, not from its own chargers)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from ocpp.v16 import call as call16

from csms.server import create_app
from csms.storage.chargers import ChargerRecord, ConnectorSpec
from sessions.app import SessionsRuntime, SessionsSettings, install
from sessions.auth import Role
from tests.csms.chargers import connected
from tests.csms.conftest import make_settings
from tests.sessions.conftest import TOKEN_SECRET
from tests.sessions.reservation_chargers import Reserving16, next_request

pytestmark = pytest.mark.asyncio

REDIS_URL = "redis://127.0.0.1:6379/0"
WAIT_S = 5.0


async def _node(dsn: str, prefix: str, name: str) -> tuple[web.AppRunner, SessionsRuntime, int]:
    app = create_app(make_settings(dsn, redis_url=REDIS_URL, redis_key_prefix=prefix, node_id=name))
    runtime = install(app, SessionsSettings(token_secret=TOKEN_SECRET, nearby_poll_interval_s=30.0))
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    return runner, runtime, port


class Cluster:
    """Nodes on one database and one Redis prefix; :meth:`add` starts one more."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._prefix = f"test-nearby-{uuid.uuid4().hex[:8]}:"
        self._runners: list[web.AppRunner] = []

    async def add(self) -> tuple[SessionsRuntime, int]:
        runner, runtime, port = await _node(self._dsn, self._prefix, f"node-{len(self._runners) + 1}")
        self._runners.append(runner)
        return runtime, port

    async def close(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()


@pytest_asyncio.fixture
async def cluster(database_dsn: str) -> AsyncIterator[Cluster]:
    nodes = Cluster(database_dsn)
    try:
        yield nodes
    finally:
        await nodes.close()


async def _eventually(check: Callable[[], Any]) -> Any:
    """Poll ``check`` (a coroutine function) until it returns something truthy, at most WAIT_S."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        found = await check()
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.02)


async def test_status_and_reservations_reach_the_other_node(cluster: Cluster) -> None:
    one, port1 = await cluster.add()
    two, port2 = await cluster.add()
    await one.csms.chargers.save(
        ChargerRecord(
            "CP-2N", latitude_deg=52.0, longitude_deg=13.0, connectors=(ConnectorSpec(1, 1, "Type2", 22.0),)
        )
    )
    for runtime in (one, two):
        assert runtime.nearby is not None
        await runtime.nearby.loaded.wait()
        await runtime.nearby.apply_registry_changes()
    token = two.issuer.mint("zoe", Role.DRIVER)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:

        async def status_on_node2() -> str:
            url = f"http://127.0.0.1:{port2}/v1/chargers/nearby?lat=52&lng=13&radius_km=1"
            async with http.get(url, headers=headers) as response:
                body = await response.json()
            return str(body["chargers"][0]["connectors"][0]["status"])

        assert await status_on_node2() == "Unknown"
        async with connected(
            Reserving16, f"ws://127.0.0.1:{port1}/ocpp/CP-2N", "CP-2N", "ocpp1.6"
        ) as charger:
            await charger.call(
                call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"),
                suppress=False,
            )

            async def available() -> bool:
                return await status_on_node2() == "Available"

            assert await _eventually(available)
            # a node started now reads the statuses already in Redis live state
            three, port3 = await cluster.add()
            assert three.nearby is not None
            await three.nearby.loaded.wait()

            async def backfilled() -> bool:
                url = f"http://127.0.0.1:{port3}/v1/chargers/nearby?lat=52&lng=13&radius_km=1"
                async with http.get(url, headers=headers) as response:
                    body = await response.json()
                return bool(body["chargers"][0]["connectors"][0]["status"] == "Available")

            assert await _eventually(backfilled)
            async with http.post(
                f"http://127.0.0.1:{port1}/v1/reservations",
                json={"charger_id": "CP-2N", "connector_id": 1, "duration_s": 300},
                headers=headers,
            ) as response:
                assert response.status == 201
            await next_request(charger, "ReserveNow")

            async def reserved() -> bool:
                return await status_on_node2() == "Reserved"

            assert await _eventually(reserved)
