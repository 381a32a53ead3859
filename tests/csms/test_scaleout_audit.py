"""Scale-out and crash safety across two nodes sharing PostgreSQL and Redis (the audit's findings).

Nodes are full ``create_app`` applications on free ports of 127.0.0.1, in this process or (to be
killed with SIGKILL, running none of their shutdown code) in a process of their own; chargers are
built on the ``ocpp`` package. Every test uses a Redis key prefix of its own. Where Redis must
vanish for one node only, that node reaches Redis through :class:`RedisProxy`, which can refuse
connections (Redis down) or swallow traffic (a node cut off from Redis without a reset).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import asyncpg
import pytest
import pytest_asyncio
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from csms.commands import CommandOutcome
from csms.domain.events import ConnectorStatus, ConnectorStatusChanged, DomainEvent, IdToken
from csms.fanout import EventPublisher, EventSubscriber, station_channel
from csms.live_state import InProcessLiveState
from csms.redis_state import RedisKeys
from csms.routing import RoutedCommandBus
from csms.server import CSMS, create_app
from csms.smart_charging import SmartChargingSettings, StationSetup
from csms.smart_charging.ownership import STATION_OWNERSHIP, OwnershipSettings
from csms.tasks import TaskOwner
from tests.cli.test_serve_stations import ProfiledCharger, wait_for
from tests.csms.chargers import Charger16, Charger201, SlowCharger16, connected
from tests.csms.conftest import make_settings
from tests.csms.nodes import REDIS_HOST, REDIS_PORT, REDIS_URL, Node, NodeProcess, listening, new_id
from tests.csms.test_fanout import _station

pytestmark = pytest.mark.asyncio

# Guards against a hang, not timing assertions: each awaits an event that ends it earlier.
GUARD_S = 15.0


async def poll(predicate: Any, *, within_s: float, every_s: float = 0.02) -> float:
    """Seconds until the (async) ``predicate`` held; fails past ``within_s``. Redis and a dead node
    have nothing to await, so a bounded poll."""
    began = time.monotonic()
    while not await predicate():
        if time.monotonic() - began > within_s:
            pytest.fail(f"not within {within_s} s")
        await asyncio.sleep(every_s)
    return time.monotonic() - began


# -- a TCP proxy in front of Redis ---------------------------------------------------------------


class RedisProxy:
    """Forwards a free port to Redis. :meth:`refuse` drops every connection and refuses new ones
    (Redis down); :meth:`swallow` keeps connections open but forwards nothing (cut off without a
    reset); :meth:`restore` drops what is left and forwards again."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._swallowing = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._swallowing:
            self._writers.add(writer)
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)
        self._writers.update((writer, upstream_writer))
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                if self._swallowing:
                    continue
                sink.write(data)
                await sink.drain()
        sink.close()

    async def _drop_all(self) -> None:
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def refuse(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._drop_all()
        await self._server.wait_closed()
        self._server = None

    async def swallow(self) -> None:
        self._swallowing = True

    async def restore(self) -> None:
        self._swallowing = False
        await self._drop_all()
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        self._swallowing = False
        await self._drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[RedisProxy]:
    opened = RedisProxy()
    await opened.start()
    try:
        yield opened
    finally:
        await opened.close()


# -- nodes ---------------------------------------------------------------------------------------


async def start_node(
    stack: AsyncExitStack,
    database_dsn: str,
    keys: RedisKeys,
    node_id: str,
    *,
    redis_url: str = REDIS_URL,
    station: StationSetup | None = None,
    lock_ttl_s: float = 1.0,
    **overrides: Any,
) -> Node:
    settings = make_settings(
        database_dsn,
        auto_register=True,
        redis_url=f"{redis_url}?client_name={keys.prefix}{node_id}",
        redis_key_prefix=keys.prefix,
        node_id=node_id,
        **overrides,
    )
    if station is None:
        app = create_app(settings)
    else:
        smart = SmartChargingSettings(quiet_s=0.01, max_delay_s=0.05, retry_backoff_s=0.01, apply_grace_s=0.0)
        app = create_app(
            settings,
            stations=[station],
            smart_charging=smart,
            ownership=OwnershipSettings(lock_ttl_s=lock_ttl_s),
        )
    node = Node(app)
    stack.push_async_callback(node.stop)
    await node.start()
    return node


# A node in a process of its own, killed with SIGKILL: it serves on a free port, writes the port
# on stdout, and runs until killed.
NODE_PROCESS = """
import asyncio, json, logging, sys
from aiohttp import web
from csms.server import create_app
from csms.settings import CsmsSettings

async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    settings = CsmsSettings(**json.loads(sys.argv[1]))
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    sys.stdout.write(f"{runner.addresses[0][1]}\\n")
    sys.stdout.flush()
    await asyncio.Event().wait()

asyncio.run(main())
"""


@asynccontextmanager
async def node_process(
    database_dsn: str, keys: RedisKeys, node_id: str, log: IO[bytes], **settings: Any
) -> AsyncIterator[NodeProcess]:
    arguments = {
        "database_dsn": database_dsn,
        "redis_url": REDIS_URL,
        "redis_key_prefix": keys.prefix,
        "node_id": node_id,
        "auto_register": True,
        **settings,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        NODE_PROCESS,
        json.dumps(arguments),
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    async with listening(process, node_id, asyncio.subprocess.Process.kill) as node:
        yield node


async def boot16(charger: Any) -> None:
    boot = await charger.call(
        call16.BootNotification(charge_point_model="M", charge_point_vendor="V"), suppress=False
    )
    assert boot.status == "Accepted"


# -- routing and live state when a node is killed -------------------------------------------------


async def test_a_killed_nodes_commands_time_out_its_chargers_read_offline_and_move(
    database_dsn: str, keys: RedisKeys, tmp_path: Path
) -> None:
    node_ttl_s = 1.5
    charger_id = new_id("CP-MOVE")
    async with AsyncExitStack() as stack:
        log = stack.enter_context((tmp_path / "node-1.log").open("wb"))
        node1 = await stack.enter_async_context(
            node_process(database_dsn, keys, "node-1", log, node_ttl_s=node_ttl_s)
        )
        node2 = await start_node(stack, database_dsn, keys, "node-2", node_ttl_s=node_ttl_s)
        bus = node2.app[CSMS].commands
        assert isinstance(bus, RoutedCommandBus)
        state = node2.app[CSMS].live_state

        on_node1 = AsyncExitStack()
        charger = await on_node1.enter_async_context(
            connected(SlowCharger16, node1.url(charger_id), charger_id, "ocpp1.6")
        )
        await boot16(charger)
        # delivered and answered through the node holding the socket
        started = await bus.remote_start(charger_id, 1, IdToken("TAG-1"))
        assert (started.outcome, started.status) == (CommandOutcome.ACCEPTED, "Accepted")
        # a status sent to node 1 is what a driver's API call on node 2 reads
        sent_at = time.monotonic()
        await charger.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"), suppress=False
        )

        async def charging_seen() -> bool:
            seen = await state.get(charger_id)
            return seen is not None and seen.connected and seen.connectors[(1, 1)].ocpp_status == "Charging"

        await poll(charging_seen, within_s=10.0)
        status_latency_s = time.monotonic() - sent_at

        # node 1 dies while the charger holds a forwarded command: the caller gets TIMEOUT in time
        timeout_s = 1.0
        began = time.monotonic()
        pending = asyncio.create_task(bus.unlock_connector(charger_id, 1, timeout_s=timeout_s))
        async with asyncio.timeout(GUARD_S):
            await charger.unlock_arrived.wait()
        await node1.kill()

        # nobody cleaned up after node 1: its charger reads disconnected once its liveness expires
        async def offline() -> bool:
            seen = await state.get(charger_id)
            return seen is not None and not seen.connected

        went_offline = asyncio.create_task(poll(offline, within_s=10.0))
        async with asyncio.timeout(GUARD_S):
            result = await pending
        waited_s = time.monotonic() - began
        assert result.outcome is CommandOutcome.TIMEOUT
        assert waited_s <= timeout_s + 2.0 + 0.5, waited_s  # the command's timeout + forward margin
        offline_after_s = await went_offline
        assert offline_after_s <= node_ttl_s + 1.5, offline_after_s  # the TTL + one cached read
        # the stale route still names node 1, but nobody listens there: NOT_CONNECTED at once
        assert await bus.node_of(charger_id) == "node-1"
        began = time.monotonic()
        orphaned = await bus.reset(charger_id, hard=True, timeout_s=3600)
        assert orphaned.outcome is CommandOutcome.NOT_CONNECTED
        assert time.monotonic() - began < 1.0
        charger.release.set()
        await on_node1.aclose()

        # the charger reconnects to node 2: routed there, online again, commands delivered
        again = await stack.enter_async_context(
            connected(Charger16, node2.url(charger_id), charger_id, "ocpp1.6")
        )
        await boot16(again)
        assert await bus.node_of(charger_id) == "node-2"
        seen = await state.get(charger_id)
        assert seen is not None
        assert seen.connected
        stopped = await bus.remote_stop(charger_id, "12")
        assert stopped.outcome is CommandOutcome.ACCEPTED
        print(f"status latency {status_latency_s:.3f} s, offline {offline_after_s:.2f} s after the kill")


# -- crash safety --------------------------------------------------------------------------------


async def test_what_a_killed_node_answered_is_in_postgresql(
    database_dsn: str, keys: RedisKeys, tmp_path: Path
) -> None:
    chargers16 = [new_id("CP-CRASH16") for _ in range(5)]
    station201 = new_id("CS-CRASH201")
    samples_per_charger = 20
    async with AsyncExitStack() as stack:
        log = stack.enter_context((tmp_path / "node-1.log").open("wb"))
        node = await stack.enter_async_context(node_process(database_dsn, keys, "node-1", log))
        opened = [
            await stack.enter_async_context(connected(Charger16, node.url(c), c, "ocpp1.6"))
            for c in chargers16
        ]
        cs = await stack.enter_async_context(
            connected(Charger201, node.url(station201), station201, "ocpp2.0.1")
        )
        transaction_ids: list[int] = []
        for charger in opened:
            await boot16(charger)
            started = await charger.call(
                call16.StartTransaction(
                    connector_id=1, id_tag="TAG", meter_start=0, timestamp=datetime.now(UTC).isoformat()
                ),
                suppress=False,
            )
            transaction_ids.append(started.transaction_id)

        async def meter(charger: Any, transaction_id: int) -> None:
            for n in range(1, samples_per_charger + 1):
                await charger.call(
                    call16.MeterValues(
                        connector_id=1,
                        transaction_id=transaction_id,
                        meter_value=[
                            {
                                "timestamp": datetime.now(UTC).isoformat(),
                                "sampled_value": [
                                    {"value": str(n * 100), "measurand": "Energy.Active.Import.Register"}
                                ],
                            }
                        ],
                    ),
                    suppress=False,
                )

        # under load: every charger sends its meter values at once
        await asyncio.gather(*(meter(c, t) for c, t in zip(opened, transaction_ids, strict=True)))
        await cs.call(
            call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"),
            suppress=False,
        )
        now = datetime.now(UTC).isoformat()
        await cs.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=now,
                trigger_reason="Authorized",
                seq_no=0,
                transaction_info={"transaction_id": "tx-crash"},
                evse={"id": 1, "connector_id": 1},
                id_token={"id_token": "TAG", "type": "ISO14443"},
            ),
            suppress=False,
        )
        for charger, transaction_id in zip(opened, transaction_ids, strict=True):
            await charger.call(
                call16.StopTransaction(
                    meter_stop=9000, timestamp=datetime.now(UTC).isoformat(), transaction_id=transaction_id
                ),
                suppress=False,
            )
        await cs.call(
            call201.TransactionEvent(
                event_type="Ended",
                timestamp=datetime.now(UTC).isoformat(),
                trigger_reason="StopAuthorized",
                seq_no=1,
                transaction_info={"transaction_id": "tx-crash", "stopped_reason": "Local"},
                meter_value=[
                    {
                        "timestamp": datetime.now(UTC).isoformat(),
                        "sampled_value": [
                            {
                                "value": 4321.0,
                                "measurand": "Energy.Active.Import.Register",
                                "context": "Transaction.End",
                            }
                        ],
                    }
                ],
            ),
            suppress=False,
        )
        await node.kill()  # right after the last answer: no flush, no shutdown code

    connection = await asyncpg.connect(database_dsn)
    try:
        rows = await connection.fetch(
            "SELECT charger_id, transaction_id, meter_stop_wh, ended_at FROM transactions"
            " WHERE charger_id = ANY($1::text[])",
            [*chargers16, station201],
        )
        counts = await connection.fetch(
            "SELECT charger_id, count(*) AS n FROM meter_samples WHERE charger_id = ANY($1::text[])"
            " GROUP BY charger_id",
            chargers16,
        )
    finally:
        await connection.close()
    ended = {r["charger_id"]: r for r in rows}
    assert set(ended) == {*chargers16, station201}
    assert all(r["ended_at"] is not None for r in rows), rows
    assert {r["meter_stop_wh"] for c, r in ended.items() if c != station201} == {9000}
    assert ended[station201]["meter_stop_wh"] == 4321.0
    assert {r["charger_id"]: r["n"] for r in counts} == dict.fromkeys(chargers16, samples_per_charger)


# -- Redis down ----------------------------------------------------------------------------------


async def test_without_redis_a_node_serves_its_chargers_and_redis_catches_up(
    database_dsn: str, keys: RedisKeys, redis: Redis, proxy: RedisProxy
) -> None:
    charger_id = new_id("CP-NOREDIS")
    async with AsyncExitStack() as stack:
        node1 = await start_node(stack, database_dsn, keys, "node-1", redis_url=proxy.url, node_ttl_s=0.6)
        node2 = await start_node(stack, database_dsn, keys, "node-2", node_ttl_s=0.6)
        charger = await stack.enter_async_context(
            connected(Charger16, node1.url(charger_id), charger_id, "ocpp1.6")
        )
        await boot16(charger)
        await charger.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"),
            suppress=False,
        )

        await proxy.refuse()  # Redis is gone for node 1
        # every message is answered (suppress=False raises on a CALLERROR)
        await charger.call(call16.Heartbeat(), suppress=False)
        authorized = await charger.call(call16.Authorize(id_tag="TAG"), suppress=False)
        assert authorized.id_tag_info["status"] == "Accepted"
        await charger.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"), suppress=False
        )
        started = await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag="TAG", meter_start=0, timestamp=datetime.now(UTC).isoformat()
            ),
            suppress=False,
        )
        held = await node1.app[CSMS].live_state.get(charger_id)  # node 1's own view
        assert held is not None
        assert held.active_transactions == {1: str(started.transaction_id)}
        await charger.call(
            call16.StopTransaction(
                meter_stop=700, timestamp=datetime.now(UTC).isoformat(), transaction_id=started.transaction_id
            ),
            suppress=False,
        )
        await charger.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Finishing"),
            suppress=False,
        )
        await boot16(charger)
        stored = await node1.app[CSMS].transactions.get(charger_id, str(started.transaction_id))
        assert stored is not None
        assert stored.meter_stop_wh == 700
        # a charger connecting while Redis is away is served too, gated by the registry's decision
        newcomer_id = new_id("CP-NEWCOMER")
        newcomer = await stack.enter_async_context(
            connected(Charger16, node1.url(newcomer_id), newcomer_id, "ocpp1.6")
        )
        await boot16(newcomer)
        await newcomer.call(call16.Heartbeat(), suppress=False)

        await proxy.restore()  # Redis is back: what it missed arrives

        async def caught_up() -> bool:
            seen = await node2.app[CSMS].live_state.get(charger_id)
            return (
                seen is not None
                and seen.connected
                and seen.connectors[(1, 1)].ocpp_status == "Finishing"
                and not seen.active_transactions
            )

        caught_up_s = await poll(caught_up, within_s=10.0)
        assert await redis.get(keys.route(charger_id)) == "node-1"
        # node 1 hears commands again
        bus = node2.app[CSMS].commands

        async def reachable() -> bool:
            result = await bus.remote_stop(charger_id, "5", timeout_s=2.0)
            return result.outcome is CommandOutcome.ACCEPTED

        await poll(reachable, within_s=10.0, every_s=0.2)
        print(f"live state caught up {caught_up_s:.2f} s after Redis returned")


# -- event fan-out -------------------------------------------------------------------------------


async def _kill_clients(redis: Redis, name: str) -> int:
    killed = 0
    for client in await redis.client_list():
        if client.get("name") == name:
            await redis.client_kill_filter(_id=client["id"])
            killed += 1
    return killed


async def test_fanned_out_events_survive_dropped_connections_in_order(redis: Redis, keys: RedisKeys) -> None:
    station = _station(new_id("ST-FAN"), new_id("FAN"))
    charger_id = station.evses[0].charger_id
    publisher_name = f"{keys.prefix}publisher"
    subscriber_name = f"{keys.prefix}subscriber"
    publishing = Redis.from_url(f"{REDIS_URL}?client_name={publisher_name}", decode_responses=True)
    # a subscriber whose client reconnects on its own (redis-py retries), raising nothing to us
    subscribing = Redis.from_url(
        f"{REDIS_URL}?client_name={subscriber_name}", decode_responses=True, retry=Retry(NoBackoff(), 3)
    )
    received: list[DomainEvent] = []
    gaps: list[int] = []  # subscribers of the station's channel when the gap was reported
    channel = station_channel(keys, station.station_id)
    gap_checks: list[asyncio.Task[None]] = []

    async def slow_listener(_station_id: str, event: DomainEvent) -> None:
        received.append(event)
        await asyncio.sleep(0.001)  # a subscriber slower than the publisher

    async def count_subscribers() -> None:
        gaps.append(int((await redis.pubsub_numsub(channel))[0][1]))

    def on_gap() -> None:
        gap_checks.append(asyncio.create_task(count_subscribers()))

    tasks = TaskOwner()
    publisher = EventPublisher(publishing, [station], InProcessLiveState(), keys=keys)
    subscriber = EventSubscriber(subscribing, "node-sub", slow_listener, keys=keys, on_gap=on_gap)
    try:
        await subscriber.open(tasks)
        await subscriber.follow(station.station_id)

        def status(n: int) -> ConnectorStatusChanged:
            return ConnectorStatusChanged(
                charger_id, 1, 1, ConnectorStatus.AVAILABLE, f"n{n}", None, datetime.now(UTC)
            )

        for n in range(100):
            await publisher.on_event(status(n))
        assert await _kill_clients(redis, publisher_name) > 0  # the publisher's pooled connections drop
        for n in range(100, 200):
            await publisher.on_event(status(n))

        async def all_received() -> bool:
            return len({e.ocpp_status for e in received if isinstance(e, ConnectorStatusChanged)}) == 200

        await poll(all_received, within_s=10.0)
        seen = [e.ocpp_status for e in received if isinstance(e, ConnectorStatusChanged)]
        first_seen = list(dict.fromkeys(seen))
        assert first_seen == [f"n{n}" for n in range(200)]  # none lost, in the charger's order

        # the subscription's connection drops; redis-py restores it without telling us: the owner
        # must still hear of the gap, once it is subscribed again
        assert await _kill_clients(redis, subscriber_name) > 0

        async def gap_reported() -> bool:
            await asyncio.gather(*gap_checks)
            return bool(gaps)

        await poll(gap_reported, within_s=10.0)
        assert gaps[0] >= 1, gaps
        await publisher.on_event(status(200))

        async def last_received() -> bool:
            return any(isinstance(e, ConnectorStatusChanged) and e.ocpp_status == "n200" for e in received)

        await poll(last_received, within_s=5.0)
    finally:
        await subscriber.close()
        await tasks.cancel_all()
        await publishing.aclose()
        await subscribing.aclose()


# -- station ownership ---------------------------------------------------------------------------


async def test_a_killed_owners_station_is_taken_over_and_its_session_resumed(
    database_dsn: str, keys: RedisKeys
) -> None:
    lock_ttl_s = 1.5
    prefix = new_id("OWN")
    station = _station(f"{prefix}-station", prefix)
    async with AsyncExitStack() as stack:
        node1 = await start_node(stack, database_dsn, keys, "node-1", station=station, lock_ttl_s=lock_ttl_s)
        node2 = await start_node(stack, database_dsn, keys, "node-2", station=station, lock_ttl_s=lock_ttl_s)
        assert (node1.owned, node2.owned) == (frozenset({station.station_id}), frozenset())
        b = await stack.enter_async_context(
            connected(ProfiledCharger, node2.url(f"{prefix}-B"), f"{prefix}-B", "ocpp1.6")
        )
        await boot16(b)
        await wait_for(b, lambda: b.tx_default is not None)
        started = await b.call(
            call16.StartTransaction(
                connector_id=1, id_tag="TAG", meter_start=0, timestamp=datetime.now(UTC).isoformat()
            ),
            suppress=False,
        )
        b.transaction_id = str(started.transaction_id)
        await wait_for(b, b.holds_tx)  # planned by node 1 through node 2
        planned_by_node1 = b.tx

        # node 1 is killed: its tasks end, its shutdown code does not run (its lock is not released)
        await node1.app[CSMS].tasks.cancel_all()
        killed_at = time.monotonic()

        async def taken_over() -> bool:
            return node2.owned == {station.station_id}

        takeover_s = await poll(taken_over, within_s=10.0)
        assert takeover_s <= lock_ttl_s + lock_ttl_s / 3 + 0.5, takeover_s
        # the new owner resumed the session from shared state and sends its own plan for it
        await wait_for(b, lambda: b.holds_tx() and b.tx is not planned_by_node1)
        resumed_s = time.monotonic() - killed_at
        assert node2.app[STATION_OWNERSHIP].owned == {station.station_id}
        print(f"takeover {takeover_s:.2f} s, session re-planned {resumed_s:.2f} s after the kill")


async def test_an_owner_cut_off_from_redis_stops_planning_before_another_takes_over(
    database_dsn: str, keys: RedisKeys, proxy: RedisProxy
) -> None:
    lock_ttl_s = 1.5
    prefix = new_id("CUT")
    station = _station(f"{prefix}-station", prefix)
    async with AsyncExitStack() as stack:
        node1 = await start_node(
            stack, database_dsn, keys, "node-1", redis_url=proxy.url, station=station, lock_ttl_s=lock_ttl_s
        )
        node2 = await start_node(stack, database_dsn, keys, "node-2", station=station, lock_ttl_s=lock_ttl_s)
        stack.push_async_callback(proxy.restore)  # before the nodes stop: node 1's cleanup needs Redis
        assert node1.owned == {station.station_id}

        # node 1's packets to Redis vanish (no reset): its calls never answer
        await proxy.swallow()
        cut_at = time.monotonic()
        overlap = False
        dropped_s = taken_s = None
        async with asyncio.timeout(GUARD_S):
            while dropped_s is None or taken_s is None:
                one, two = node1.owned, node2.owned
                overlap = overlap or bool(one & two)
                if dropped_s is None and not one:
                    dropped_s = time.monotonic() - cut_at
                if taken_s is None and two:
                    taken_s = time.monotonic() - cut_at
                await asyncio.sleep(0.005)
        assert not overlap
        assert dropped_s < taken_s, (dropped_s, taken_s)
        assert dropped_s <= lock_ttl_s
        print(f"cut-off owner stopped after {dropped_s:.2f} s, the other took over after {taken_s:.2f} s")
