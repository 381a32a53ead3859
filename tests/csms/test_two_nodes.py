"""Two central-system nodes sharing PostgreSQL and Redis: a charger on node 1, commands from node 2.

Each node is a full ``create_app`` on its own free port; they share only the database and Redis
(under a key prefix of this test's own), as two processes on one machine would. The last test
runs the two nodes as real processes, with the test itself as a third node issuing commands,
and kills one of them.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import pytest_asyncio
from aiohttp import web
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from redis.asyncio import Redis

from csms.commands import ChargingProfile, CommandOutcome
from csms.domain.events import ConnectorStatus, IdToken
from csms.errors import CommandError
from csms.protocol.registry import ConnectedChargers
from csms.redis_state import RedisKeys, RedisLiveState
from csms.routing import RoutedCommandBus
from csms.server import CSMS, create_app
from csms.tasks import TaskOwner
from tests.csms.chargers import Charger16, Charger201, SlowCharger16, connected
from tests.csms.conftest import RunningCsms, make_settings
from tests.csms.nodes import REDIS_URL, NodeProcess, listening, new_id

pytestmark = pytest.mark.asyncio

# A guard against a hang, not a timing assertion: NOT_CONNECTED must not wait for this.
LONG_TIMEOUT_S = 3600.0

PROFILE = ChargingProfile(
    v16={
        "chargingProfileId": 7,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
        },
    }
)


@dataclass
class Cluster:
    node1: RunningCsms
    node2: RunningCsms
    keys: RedisKeys
    redis: Redis


async def _start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    return runner, port


@pytest_asyncio.fixture
async def cluster(database_dsn: str) -> AsyncIterator[Cluster]:
    """Nodes ``node-1`` and ``node-2`` on free ports, one database, one Redis key prefix."""
    keys = RedisKeys(f"fairwatt-test:{uuid.uuid4().hex}:")
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    runners: list[web.AppRunner] = []
    try:
        nodes = []
        for node_id in ("node-1", "node-2"):
            settings = make_settings(
                database_dsn,
                auto_register=True,
                redis_url=REDIS_URL,
                redis_key_prefix=keys.prefix,
                node_id=node_id,
            )
            app = create_app(settings)
            runner, port = await _start(app)
            runners.append(runner)
            nodes.append(RunningCsms(app[CSMS], port))
        yield Cluster(nodes[0], nodes[1], keys, redis)
    finally:
        for runner in runners:
            await runner.cleanup()
        stale = [key async for key in redis.scan_iter(match=keys.prefix + "*")]
        if stale:
            await redis.delete(*stale)
        await redis.aclose()


@asynccontextmanager
async def booted16(
    node: RunningCsms | NodeProcess, charger_class: type[Charger16] = Charger16
) -> AsyncIterator[Any]:
    """A 1.6 charger on ``node`` whose BootNotification was answered: its route is in Redis by then."""
    charger_id = new_id("CP16")
    async with connected(charger_class, node.url(charger_id), charger_id, "ocpp1.6") as charger:
        await charger.call(
            call16.BootNotification(charge_point_model="M", charge_point_vendor="V"), suppress=False
        )
        yield charger


async def test_command_issued_on_node_2_reaches_charger_on_node_1(cluster: Cluster) -> None:
    async with booted16(cluster.node1) as charger:
        charger_id = charger.id
        assert cluster.node2.runtime.connected.get(charger_id) is None
        bus = cluster.node2.runtime.commands
        assert isinstance(bus, RoutedCommandBus)
        assert await bus.node_of(charger_id) == "node-1"

        started = await bus.remote_start(charger_id, 1, IdToken("TAG-1"))
        assert (started.outcome, started.action, started.status) == (
            CommandOutcome.ACCEPTED,
            "RemoteStartTransaction",
            "Accepted",
        )
        assert started.charger_id == charger_id
        assert await charger.received.get() == (
            "RemoteStartTransaction",
            {"connector_id": 1, "id_tag": "TAG-1"},
        )

        profiled = await bus.set_charging_profile(charger_id, 1, PROFILE)
        assert profiled.outcome is CommandOutcome.ACCEPTED
        action, request = await charger.received.get()
        assert action == "SetChargingProfile"
        assert request["cs_charging_profiles"]["charging_profile_id"] == 7

        rejected = await bus.reset(charger_id, hard=False)
        assert (rejected.outcome, rejected.status) == (CommandOutcome.REJECTED, "Rejected")


async def test_forwarded_command_is_built_for_the_chargers_version(cluster: Cluster) -> None:
    charger_id = new_id("CP201")
    async with connected(Charger201, cluster.node1.url(charger_id), charger_id, "ocpp2.0.1") as charger:
        await charger.call(
            call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")
        )
        bus = cluster.node2.runtime.commands
        started = await bus.remote_start(charger_id, 1, IdToken("TAG-2", "ISO14443"), remote_start_id=42)
        assert (started.outcome, started.action) == (CommandOutcome.ACCEPTED, "RequestStartTransaction")
        action, request = await charger.received.get()
        assert action == "RequestStartTransaction"
        assert request["remote_start_id"] == 42

        unsupported = await bus.change_configuration(charger_id, "HeartbeatInterval", "60")
        assert unsupported.outcome is CommandOutcome.NOT_SUPPORTED_BY_VERSION


async def test_call_errors_and_invalid_commands_come_back_to_the_caller(cluster: Cluster) -> None:
    async with booted16(cluster.node1) as charger:
        charger_id = charger.id
        bus = cluster.node2.runtime.commands
        with pytest.raises(CommandError, match="integers"):
            await bus.remote_stop(charger_id, "not-a-number")
        with pytest.raises(CommandError):
            await bus.trigger_message(charger_id, "NoSuchMessage")
        unhandled = await bus.clear_charging_profile(charger_id)
        assert unhandled.outcome is CommandOutcome.CALL_ERROR
        assert unhandled.error_code is not None


async def test_charger_timeout_on_node_1_is_reported_on_node_2(cluster: Cluster) -> None:
    async with booted16(cluster.node1, SlowCharger16) as charger:
        charger_id = charger.id
        result = await cluster.node2.runtime.commands.unlock_connector(charger_id, 1, timeout_s=0.2)
        charger.release.set()
    assert (result.outcome, result.action) == (CommandOutcome.TIMEOUT, "UnlockConnector")


async def test_command_for_a_charger_connected_nowhere_is_not_connected(cluster: Cluster) -> None:
    result = await cluster.node2.runtime.commands.reset(
        new_id("CP-NOWHERE"), hard=True, timeout_s=LONG_TIMEOUT_S
    )
    assert result.outcome is CommandOutcome.NOT_CONNECTED


async def test_route_to_a_dead_node_is_not_connected(cluster: Cluster) -> None:
    charger_id = new_id("CP-ORPHAN")
    await cluster.redis.set(cluster.keys.route(charger_id), "node-dead", ex=60)
    result = await cluster.node2.runtime.commands.reset(charger_id, hard=True, timeout_s=LONG_TIMEOUT_S)
    assert result.outcome is CommandOutcome.NOT_CONNECTED


async def test_a_node_that_never_answers_times_out(cluster: Cluster) -> None:
    charger_id = new_id("CP-HUNG")
    await cluster.redis.set(cluster.keys.route(charger_id), "node-hung", ex=60)
    hung = cluster.redis.pubsub()
    await hung.subscribe(cluster.keys.commands("node-hung"))
    assert (await hung.get_message(timeout=None))["type"] == "subscribe"
    tasks = TaskOwner()
    bus = RoutedCommandBus(
        ConnectedChargers(),
        cluster.redis,
        "node-caller",
        default_timeout_s=0.1,
        keys=cluster.keys,
        forward_margin_s=0.1,
    )
    await bus.open(tasks)
    try:
        result = await bus.reset(charger_id, hard=True)
        forwarded = await hung.get_message(ignore_subscribe_messages=True, timeout=None)
    finally:
        await tasks.cancel_all()
        await bus.close()
        await hung.aclose()  # type: ignore[no-untyped-call]
    assert result.outcome is CommandOutcome.TIMEOUT
    assert forwarded is not None
    assert charger_id in forwarded["data"]


async def test_status_sent_to_node_1_is_visible_on_node_2(cluster: Cluster) -> None:
    async with booted16(cluster.node1) as charger:
        charger_id = charger.id
        await charger.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"),
            suppress=False,
        )
        await charger.call(call16.Heartbeat(), suppress=False)
        state = await cluster.node2.runtime.live_state.get(charger_id)
    assert state is not None
    assert state.connected
    assert state.connectors[(1, 1)].status is ConnectorStatus.OCCUPIED
    assert state.connectors[(1, 1)].ocpp_status == "Charging"
    assert state.last_heartbeat_at is not None


async def test_after_disconnect_node_2_sees_the_charger_gone(cluster: Cluster) -> None:
    async with booted16(cluster.node1) as charger:
        charger_id = charger.id
        bus = cluster.node2.runtime.commands
        assert isinstance(bus, RoutedCommandBus)
        assert await bus.node_of(charger_id) == "node-1"
    # Node 1 notices the close on its own time and Redis has nothing to await: a bounded poll.
    for _ in range(1000):
        if await bus.node_of(charger_id) is None:
            break
        await asyncio.sleep(0.01)
    state = await cluster.node2.runtime.live_state.get(charger_id)
    assert state is not None
    assert not state.connected
    result = await bus.remote_start(charger_id, 1, IdToken("TAG-1"), timeout_s=LONG_TIMEOUT_S)
    assert result.outcome is CommandOutcome.NOT_CONNECTED


async def test_node_1_still_sends_to_its_own_charger(cluster: Cluster) -> None:
    async with booted16(cluster.node1) as charger:
        charger_id = charger.id
        result = await cluster.node1.runtime.commands.remote_stop(charger_id, "12")
        assert result.outcome is CommandOutcome.ACCEPTED
        assert await charger.received.get() == ("RemoteStopTransaction", {"transaction_id": 12})


# Two central-system processes: each serves on a port of its choosing and writes it on stdout,
# and shuts down cleanly when its stdin closes.
NODE_PROCESS = """
import asyncio, logging, sys
from aiohttp import web
from csms.server import create_app
from csms.settings import CsmsSettings

async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    dsn, redis_url, prefix, node_id = sys.argv[1:5]
    settings = CsmsSettings(
        database_dsn=dsn, redis_url=redis_url, redis_key_prefix=prefix, node_id=node_id, auto_register=True
    )
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    sys.stdout.write(f"{runner.addresses[0][1]}\\n")
    sys.stdout.flush()
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()

asyncio.run(main())
"""


@asynccontextmanager
async def node_process(
    database_dsn: str, keys: RedisKeys, node_id: str, log: IO[bytes]
) -> AsyncIterator[NodeProcess]:
    """A node in a process of its own, logging warnings and errors to ``log``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        NODE_PROCESS,
        database_dsn,
        REDIS_URL,
        keys.prefix,
        node_id,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    stdin = process.stdin
    assert stdin is not None
    async with listening(process, node_id, lambda _: stdin.close()) as node:
        yield node


async def test_two_processes_route_commands_and_drop_a_killed_node(database_dsn: str, tmp_path: Path) -> None:
    keys = RedisKeys(f"fairwatt-test:{uuid.uuid4().hex}:")
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    tasks = TaskOwner()
    # The test is a third node: it holds no sockets, so every command it issues is forwarded.
    bus = RoutedCommandBus(ConnectedChargers(), redis, "node-test", default_timeout_s=5, keys=keys)
    state = RedisLiveState(redis, "node-test", keys=keys)
    log1 = (tmp_path / "node-1.log").open("wb")
    log2 = (tmp_path / "node-2.log").open("wb")
    try:
        await bus.open(tasks)
        async with (
            node_process(database_dsn, keys, "node-1", log1) as node1,
            node_process(database_dsn, keys, "node-2", log2) as node2,
            booted16(node1) as on_node1,
            booted16(node2) as on_node2,
        ):
            for charger, node_id in ((on_node1, "node-1"), (on_node2, "node-2")):
                assert await bus.node_of(charger.id) == node_id
                result = await bus.remote_start(charger.id, 1, IdToken("TAG-P"))
                assert (result.outcome, result.status) == (CommandOutcome.ACCEPTED, "Accepted")
                assert await charger.received.get() == (
                    "RemoteStartTransaction",
                    {"connector_id": 1, "id_tag": "TAG-P"},
                )
            await on_node1.call(
                call16.StatusNotification(connector_id=1, error_code="NoError", status="Finishing"),
                suppress=False,
            )
            seen = await state.get(on_node1.id)
            assert seen is not None
            assert seen.connectors[(1, 1)].ocpp_status == "Finishing"

            node1.process.kill()
            await node1.process.wait()
            # Redis drops the dead node's subscription on its own time: a bounded poll.
            for _ in range(1000):
                if (await redis.pubsub_numsub(keys.commands("node-1")))[0][1] == 0:
                    break
                await asyncio.sleep(0.01)
            assert await bus.node_of(on_node1.id) == "node-1"  # the entry outlives the node
            orphaned = await bus.reset(on_node1.id, hard=True, timeout_s=LONG_TIMEOUT_S)
            assert orphaned.outcome is CommandOutcome.NOT_CONNECTED
            survivor = await bus.reset(on_node2.id, hard=True)
            assert (survivor.outcome, survivor.status) == (CommandOutcome.REJECTED, "Rejected")
        assert node2.process.returncode == 0
        for name in ("node-1.log", "node-2.log"):
            assert "ERROR" not in (tmp_path / name).read_text(), name
    finally:
        log1.close()
        log2.close()
        await tasks.cancel_all()
        await bus.close()
        stale = [key async for key in redis.scan_iter(match=keys.prefix + "*")]
        if stale:
            await redis.delete(*stale)
        await redis.aclose()
