"""Two nodes sharing PostgreSQL and Redis: a status heard by node 1 and a reservation made there
show in node 2's nearby search (its index hears them over Redis, not from its own chargers)."""

from __future__ import annotations

import asyncio
import json
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


async def test_the_chargers_of_a_node_that_died_without_a_word_go_offline(cluster: Cluster) -> None:
    # A node killed outright publishes no disconnection; its liveness key expires instead
    # (csms.redis_state). Node 2 heard "online" from two nodes: the one whose key is gone loses
    # its chargers at the next poll, the other keeps them.
    from redis.asyncio import Redis

    from sessions.geo.feed import status_channel

    two, port2 = await cluster.add()
    assert two.nearby is not None
    for charger_id, lng in (("CP-GHOST", 13.0), ("CP-ALIVE", 13.001)):
        await two.csms.chargers.save(
            ChargerRecord(
                charger_id,
                latitude_deg=52.0,
                longitude_deg=lng,
                connectors=(ConnectorSpec(1, 1, "Type2", 22.0),),
            )
        )
    await two.nearby.loaded.wait()
    await two.nearby.apply_registry_changes()
    keys = two.nearby._keys  # the cluster's prefix
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await redis.set(keys.node_alive("node-alive"), "1", px=60_000)
        for charger_id, node in (("CP-GHOST", "node-ghost"), ("CP-ALIVE", "node-alive")):
            for kind, extra in (("online", {"online": False}), ("online", {"online": True})):
                message = {"kind": kind, "node": node, "charger_id": charger_id, **extra}
                await redis.publish(status_channel(keys), json.dumps(message))
            status = {"kind": "status", "node": node, "charger_id": charger_id, "evse_id": 1}
            await redis.publish(
                status_channel(keys), json.dumps({**status, "connector_id": 1, "status": "Available"})
            )
        token = two.issuer.mint("zoe", Role.DRIVER)
        async with aiohttp.ClientSession() as http:

            async def statuses() -> dict[str, str]:
                url = f"http://127.0.0.1:{port2}/v1/chargers/nearby?lat=52&lng=13&radius_km=1"
                async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                    body = await response.json()
                mine = ("CP-GHOST", "CP-ALIVE")  # (the other test's charger may stand nearby)
                return {
                    c["charger_id"]: c["connectors"][0]["status"]
                    for c in body["chargers"]
                    if c["charger_id"] in mine
                }

            async def both_available() -> bool:
                return await statuses() == {"CP-GHOST": "Available", "CP-ALIVE": "Available"}

            assert await _eventually(both_available)
            assert await two.nearby.drop_dead_nodes() == 1
            assert await statuses() == {"CP-GHOST": "Unavailable", "CP-ALIVE": "Available"}
    finally:
        await redis.delete(keys.node_alive("node-alive"))
        await redis.aclose()
