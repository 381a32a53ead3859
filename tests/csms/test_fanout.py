"""Smart charging across nodes: station events fanned out over Redis, one owner per station.

The end-to-end test runs two ``create_app`` nodes sharing PostgreSQL and Redis (under a key
prefix of its own) with one station of two 1.6 chargers (``ocpp`` package), one connected to
each node: the owner node plans both, through the routed command bus; when it stops, the other
node takes the station over and keeps planning.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from ocpp.v16 import call as call16
from redis.asyncio import Redis

from csms.domain.events import (
    ChargerBooted,
    ChargingLimitCleared,
    ChargingLimitSet,
    ChargingNeeds,
    ConnectorStatus,
    ConnectorStatusChanged,
    DriverNeeds,
    IdToken,
    LimitPeriod,
    LimitSchedule,
    MeterSample,
    TransactionEnded,
    TransactionStarted,
)
from csms.fanout import EventPublisher, FanoutError, decode_event, encode_event, station_channel
from csms.live_state import InProcessLiveState
from csms.redis_state import RedisKeys
from csms.server import CSMS, create_app
from csms.smart_charging import SMART_CHARGING, EvseBinding, SmartChargingSettings, StationSetup
from csms.smart_charging.drivers import SessionPolicy
from csms.smart_charging.ownership import STATION_OWNERSHIP, OwnershipSettings, StationLock, lock_key
from csms.smart_charging.setup import ForecastSettings
from optimizer.types import Connection, Evse, FeederNode, Policy, Site
from tests.cli.test_serve_stations import ProfiledCharger, wait_for
from tests.csms.chargers import connected
from tests.csms.conftest import make_settings
from tests.csms.nodes import REDIS_URL, Node

FEEDER_A = 20.0
MAX_A = 12.0
AT = datetime(2026, 11, 21, 9, 30, 15, 250_000, tzinfo=UTC)


# -- the wire form ------------------------------------------------------------------------------

EVENTS = [
    ChargerBooted("CP-1", "V", "M", None, "1.2", "PowerUp", AT),
    ConnectorStatusChanged("CP-1", 1, 1, ConnectorStatus.OCCUPIED, "Charging", None, AT),
    TransactionStarted("CP-1", 2, 1, "77", IdToken("TAG", "ISO14443"), 1500.0, AT, "m-1", 42),
    TransactionStarted("CP-1", 1, 1, None, None, None, AT, "m-2"),
    TransactionEnded("CP-1", "77", AT, 9000.5, "EVDisconnected", IdToken("TAG"), "m-3"),
    MeterSample("CP-1", 1, "77", AT, "Current.Import", 15.5, "A", "L1", "Outlet", "Sample.Periodic"),
    ChargingNeeds("CP-1", 1, "AC_single_phase", 20_000.0, AT, 16.0, None, AT),
    ChargingLimitSet(
        "CP-1",
        0,
        "SO",
        True,
        (LimitSchedule(3, "A", (LimitPeriod(AT, 16.0), LimitPeriod(AT + timedelta(minutes=30), 8.0, 3))),),
        AT,
    ),
    ChargingLimitCleared("CP-1", 2, "EMS", AT),
    DriverNeeds("CP-1", 2, "77", 42.5, AT + timedelta(hours=3), "gold", AT),
    DriverNeeds("CP-1", 1, "78", None, None, None, AT),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_events_survive_the_wire(event: object) -> None:
    assert decode_event(encode_event(event)) == event  # type: ignore[arg-type]


def test_unreadable_events_are_a_fanout_error() -> None:
    for text in ("{", '{"type": "Heartbeat", "fields": {}}', '{"type": "MeterSample", "fields": {}}'):
        with pytest.raises(FanoutError):
            decode_event(text)


def _evse(evse_id: str) -> Evse:
    return Evse(evse_id, Connection.L1, 230.0, MAX_A, 6.0)


def _station(station_id: str, prefix: str, forecast: ForecastSettings | None = None) -> StationSetup:
    evses = (_evse("A"), _evse("B"))
    return StationSetup(
        station_id=station_id,
        site=Site(grid_limit_kw=22.0, root=FeederNode("feeder", limit_a=FEEDER_A, evse_ids=("A", "B"))),
        evses=(EvseBinding(evses[0], f"{prefix}-A"), EvseBinding(evses[1], f"{prefix}-B")),
        policy=Policy(period_s=300, horizon_periods=12, deadline_s=5.0),
        forecast=forecast,
    )


def test_events_go_to_the_station_of_their_evse() -> None:
    keys = RedisKeys("test:")
    one = _station("one", "X")
    two = StationSetup("two", one.site, (EvseBinding(_evse("A"), "X-A", 2), EvseBinding(_evse("B"), "Y")))
    publisher = EventPublisher(Redis.from_url(REDIS_URL), [one, two], InProcessLiveState(), keys=keys)
    first, second = station_channel(keys, "one"), station_channel(keys, "two")
    sample = EVENTS[5]
    assert isinstance(sample, MeterSample)
    assert publisher.channels(sample) == ()  # CP-1 is in no station
    assert publisher.channels(TransactionStarted("X-A", 1, 1, "5", None, None, AT, "m")) == (first,)
    assert publisher.channels(TransactionStarted("X-A", 2, 1, "6", None, None, AT, "m")) == (second,)
    assert publisher.channels(ChargerBooted("X-A", "V", "M", None, None, None, AT)) == (first, second)
    assert publisher.channels(TransactionEnded("Y", "6", AT, None, None, None, "m")) == (second,)
    # an external limit on one EVSE goes where that EVSE is; on the whole charger, to all its stations
    assert publisher.channels(ChargingLimitCleared("X-A", 2, "EMS", AT)) == (second,)
    assert publisher.channels(ChargingLimitSet("X-A", 0, "EMS", None, (), AT)) == (first, second)
    # a driver's needs go where the session's EVSE is, like the charger's own events
    assert publisher.channels(DriverNeeds("X-A", 2, "6", 20.0, None, "gold", AT)) == (second,)


# -- the lock -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_one_node_holds_a_station_lock_until_it_expires(redis: Redis) -> None:
    key = lock_key(RedisKeys(f"fairwatt-test:{uuid.uuid4().hex}:"), "s")
    dying = StationLock(redis, key, "node-dying", ttl_s=0.2)
    other = StationLock(redis, key, "node-other", ttl_s=30.0)
    try:
        assert await dying.acquire()
        assert not await other.acquire()
        assert not await other.renew()  # compare-and-extend: not its lock
        assert not await other.release()
        assert await dying.renew()
        assert await redis.pttl(key) > 0
        # the dying node stops renewing; the lock expires (Redis has nothing to await: a bounded poll)
        for _ in range(200):
            if await other.acquire():
                break
            await asyncio.sleep(0.01)
        assert await other.holder() == "node-other"
        assert not await dying.renew()  # too late: it must stop planning
        assert await other.release()
        assert await other.holder() is None
    finally:
        await redis.delete(key)


# -- two nodes ----------------------------------------------------------------------------------


def _node(database_dsn: str, keys: RedisKeys, node_id: str, station: StationSetup) -> Node:
    settings = make_settings(
        database_dsn, auto_register=True, redis_url=REDIS_URL, redis_key_prefix=keys.prefix, node_id=node_id
    )
    smart = SmartChargingSettings(quiet_s=0.01, max_delay_s=0.05, retry_backoff_s=0.01, apply_grace_s=0.0)
    app = create_app(
        settings, stations=[station], smart_charging=smart, ownership=OwnershipSettings(lock_ttl_s=1.0)
    )
    return Node(app)


async def _two_nodes(
    stack: AsyncExitStack, database_dsn: str, keys: RedisKeys, station: StationSetup
) -> tuple[Node, Node]:
    """Nodes 1 and 2 configured with ``station``, started in that order (node 1 takes the station)
    and stopped when ``stack`` closes."""
    node1 = _node(database_dsn, keys, "node-1", station)
    node2 = _node(database_dsn, keys, "node-2", station)
    stack.push_async_callback(node2.stop)
    stack.push_async_callback(node1.stop)
    await node1.start()
    await node2.start()
    return node1, node2


async def _boot(charger: ProfiledCharger) -> None:
    boot = await charger.call(
        call16.BootNotification(charge_point_vendor="V", charge_point_model="M"), suppress=False
    )
    assert boot.status == "Accepted"
    await wait_for(charger, lambda: charger.tx_default is not None)


async def _start(charger: ProfiledCharger) -> None:
    started = await charger.call(
        call16.StartTransaction(
            connector_id=1, id_tag="TAG", meter_start=0, timestamp=datetime.now(UTC).isoformat()
        ),
        suppress=False,
    )
    charger.transaction_id = str(started.transaction_id)


@pytest.mark.asyncio
async def test_one_owner_plans_chargers_on_both_nodes_and_another_takes_over(
    database_dsn: str, keys: RedisKeys
) -> None:
    prefix = f"FO{uuid.uuid4().hex[:6]}"
    station = _station(f"{prefix}-station", prefix)
    async with AsyncExitStack() as stack:
        node1, node2 = await _two_nodes(stack, database_dsn, keys, station)
        assert (node1.owned, node2.owned) == (frozenset({station.station_id}), frozenset())

        on_node1 = AsyncExitStack()
        a = await on_node1.enter_async_context(
            connected(ProfiledCharger, node1.url(f"{prefix}-A"), f"{prefix}-A", "ocpp1.6")
        )
        b = await stack.enter_async_context(
            connected(ProfiledCharger, node2.url(f"{prefix}-B"), f"{prefix}-B", "ocpp1.6")
        )
        await _boot(a)
        await _boot(b)  # its failsafe came from node 1, through node 2
        await _start(a)
        await _start(b)
        await wait_for(a, a.holds_tx)
        await wait_for(b, b.holds_tx)
        now = datetime.now(UTC)
        currents_a = [a.tx_limit_a(now), b.tx_limit_a(now)]
        assert sum(currents_a) <= FEEDER_A + 1e-6, currents_a
        assert min(currents_a) >= 6.0, currents_a

        # The owner stops (its charger A drops off): node 2 takes over. A is unreachable, so it is
        # planned at its maximum and B gets what is left of the feeder.
        await on_node1.aclose()
        await node1.stop()
        await wait_for(b, lambda: b.holds_tx() and b.tx_limit_a(datetime.now(UTC)) <= FEEDER_A - MAX_A + 1e-6)
        assert node2.owned == {station.station_id}

        # A comes back on node 2 and its car leaves: node 2 gives B all it can take.
        a_again = await stack.enter_async_context(
            connected(ProfiledCharger, node2.url(f"{prefix}-A"), f"{prefix}-A", "ocpp1.6")
        )
        await _boot(a_again)
        await a_again.call(
            call16.StopTransaction(
                meter_stop=5000,
                timestamp=datetime.now(UTC).isoformat(),
                transaction_id=int(a.transaction_id or 0),
            ),
            suppress=False,
        )
        await wait_for(b, lambda: b.holds_tx() and b.tx_limit_a(datetime.now(UTC)) >= MAX_A - 1e-6)


@pytest.mark.asyncio
async def test_a_new_owner_learns_the_sessions_that_ended_under_the_old_one(
    database_dsn: str, keys: RedisKeys
) -> None:
    prefix = f"FH{uuid.uuid4().hex[:6]}"
    station = _station(f"{prefix}-station", prefix, ForecastSettings())
    async with AsyncExitStack() as stack:
        # node 2 is seeded at start: the station had no finished session yet
        node1, node2 = await _two_nodes(stack, database_dsn, keys, station)
        assert node1.owned == {station.station_id}
        assert node2.history_size(station.station_id) == 0
        async with connected(ProfiledCharger, node1.url(f"{prefix}-A"), f"{prefix}-A", "ocpp1.6") as a:
            await _boot(a)
            ended = datetime.now(UTC)
            started = await a.call(
                call16.StartTransaction(
                    connector_id=1,
                    id_tag="TAG",
                    meter_start=0,
                    timestamp=(ended - timedelta(hours=1)).isoformat(),
                ),
                suppress=False,
            )
            await a.call(
                call16.StopTransaction(
                    meter_stop=5000, timestamp=ended.isoformat(), transaction_id=started.transaction_id
                ),
                suppress=False,
            )
        assert node2.history_size(station.station_id) == 0  # node 2 heard nothing: it did not plan it

        await node1.stop()  # releases its lock: node 2 takes the station at its next attempt
        await node2.app[STATION_OWNERSHIP].step()
        assert node2.owned == {station.station_id}
        assert node2.history_size(station.station_id) == 1  # read back from PostgreSQL on taking over


@pytest.mark.asyncio
async def test_an_external_limit_reaches_the_owner_and_a_new_owner_reads_it_back(
    database_dsn: str, keys: RedisKeys
) -> None:
    prefix = f"FL{uuid.uuid4().hex[:6]}"
    station = _station(f"{prefix}-station", prefix)
    async with AsyncExitStack() as stack:
        node1, node2 = await _two_nodes(stack, database_dsn, keys, station)
        assert node1.owned == {station.station_id}
        schedule = LimitSchedule(1, "A", (LimitPeriod(AT, 8.0),))
        limit = ChargingLimitSet(f"{prefix}-A", 1, "EMS", True, (schedule,), AT)
        # the charger's socket is on node 2: its service stores the limit and fans it out to node 1
        await node2.app[CSMS].service.charging_limit_set(limit)
        planned = node1.app[SMART_CHARGING].state(station.station_id).external
        for _ in range(500):  # pub/sub through Redis has nothing to await: a bounded poll
            if planned.limits:
                break
            await asyncio.sleep(0.01)
        assert planned.limits == {(f"{prefix}-A", 1, "EMS"): limit}
        assert not node2.app[SMART_CHARGING].state(station.station_id).external.limits  # not its station

        await node1.stop()  # node 2 takes the station over and reads the limit back from live state
        await node2.app[STATION_OWNERSHIP].step()
        assert node2.owned == {station.station_id}
        taken = node2.app[SMART_CHARGING].state(station.station_id)
        assert taken.external.limits == {(f"{prefix}-A", 1, "EMS"): limit}
        assert taken.evses["A"].external == (schedule,)


@pytest.mark.asyncio
async def test_a_drivers_needs_reach_the_owner_and_a_new_owner_reads_them_back(
    database_dsn: str, keys: RedisKeys
) -> None:
    prefix = f"FN{uuid.uuid4().hex[:6]}"
    station = replace(_station(f"{prefix}-station", prefix), session_policy=SessionPolicy((("gold", 3.0),)))
    async with AsyncExitStack() as stack:
        node1, node2 = await _two_nodes(stack, database_dsn, keys, station)
        assert node1.owned == {station.station_id}
        b = await stack.enter_async_context(
            connected(ProfiledCharger, node2.url(f"{prefix}-B"), f"{prefix}-B", "ocpp1.6")
        )
        await _boot(b)
        await _start(b)
        await wait_for(b, b.holds_tx)  # node 1 plans the session
        assert b.transaction_id is not None
        leaves = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        # The driver's app talks to node 2 (any node would do): its service fans the needs out to node 1.
        needs = DriverNeeds(f"{prefix}-B", 1, b.transaction_id, 30.0, leaves, "gold", datetime.now(UTC))
        await node2.app[CSMS].service.driver_needs(needs)

        def planned(node: Node) -> tuple[float | None, datetime | None, float] | None:
            session = node.app[SMART_CHARGING].state(station.station_id).evses["B"].session
            return (
                None
                if session is None
                else (session.driver_energy_kwh, session.driver_departure, session.priority)
            )

        for _ in range(500):  # pub/sub through Redis has nothing to await: a bounded poll
            if planned(node1) == (30.0, leaves, 3.0):
                break
            await asyncio.sleep(0.01)
        assert planned(node1) == (30.0, leaves, 3.0)  # the tier weighed by the station's policy
        assert planned(node2) is None  # not its station

        await node1.stop()  # node 2 takes the station over and reads the needs back from live state
        await node2.app[STATION_OWNERSHIP].step()
        assert node2.owned == {station.station_id}
        assert planned(node2) == (30.0, leaves, 3.0)


@pytest.mark.asyncio
async def test_a_dead_owners_station_is_taken_over_when_its_lock_expires(
    database_dsn: str, keys: RedisKeys, redis: Redis
) -> None:
    prefix = f"FD{uuid.uuid4().hex[:6]}"
    station = _station(f"{prefix}-station", prefix)
    # A node that died a moment ago still holds the lock; it will not renew it.
    await redis.set(lock_key(keys, station.station_id), "node-dead", px=500)
    node = _node(database_dsn, keys, "node-2", station)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(node.stop)
        await node.start()
        assert node.owned == frozenset()
        charger = await stack.enter_async_context(
            connected(ProfiledCharger, node.url(f"{prefix}-B"), f"{prefix}-B", "ocpp1.6")
        )
        # Booted while nobody plans the station: the failsafe comes once node 2 owns it.
        await _boot(charger)
        assert node.owned == {station.station_id}
        await _start(charger)
        await wait_for(charger, lambda: charger.holds_tx() and charger.tx_limit_a(datetime.now(UTC)) == MAX_A)


@pytest.mark.asyncio
async def test_without_redis_the_loop_hears_the_service_directly(database_dsn: str) -> None:
    app = create_app(make_settings(database_dsn), stations=[_station("single", "S")])
    assert STATION_OWNERSHIP not in app
