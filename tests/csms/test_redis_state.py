"""Redis live state and the routing table against the real Redis, each test under its own key prefix."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from csms.domain.events import (
    ChargingLimitCleared,
    ChargingLimitSet,
    ChargingNeeds,
    ConnectorStatus,
    DriverNeeds,
    LimitPeriod,
    LimitSchedule,
    RegistrationStatus,
)
from csms.live_state import ChargerState, ConnectorState
from csms.protocol.registry import ConnectedChargers
from csms.protocol.router import Router
from csms.protocol.session import OcppSession
from csms.protocol.versions import OcppVersion
from csms.redis_state import RedisKeys, RedisLiveState
from csms.routing import CommandChannelError, RoutedCommandBus
from csms.tasks import TaskOwner
from tests.csms.memory import MemoryConnection

pytestmark = pytest.mark.asyncio

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def state_on(redis: Redis, keys: RedisKeys, node_id: str, route_ttl_s: float = 90.0) -> RedisLiveState:
    return RedisLiveState(redis, node_id, keys=keys, route_ttl_s=route_ttl_s)


async def test_every_field_round_trips(redis: Redis, keys: RedisKeys) -> None:
    state = state_on(redis, keys, "node-1")
    connector = ConnectorState(ConnectorStatus.OCCUPIED, "Charging", None, AT)
    faulted = ConnectorState(ConnectorStatus.FAULTED, "Faulted", "GroundFailure", AT + timedelta(seconds=5))
    needs = ChargingNeeds("CP-1", 2, "AC_three_phase", 30_000.0, AT + timedelta(hours=8), 32.0, None, AT)
    await state.set_connected("CP-1", True, AT)
    await state.set_registration("CP-1", RegistrationStatus.ACCEPTED)
    await state.touch_heartbeat("CP-1", AT + timedelta(seconds=10))
    await state.set_connector("CP-1", 1, 1, connector)
    await state.set_connector("CP-1", 2, 1, faulted)
    await state.set_active_transaction("CP-1", 1, "tx-17")
    await state.set_charging_needs(needs)
    await state.set_firmware_status("CP-1", "Installed")
    await state.set_diagnostics_status("CP-1", "Uploaded")
    schedule = LimitSchedule(
        7,
        "W",
        (LimitPeriod(AT, 7400.0), LimitPeriod(AT + timedelta(hours=1), 3700.0, 1)),
        AT + timedelta(hours=2),
    )
    limit = ChargingLimitSet("CP-1", 2, "EMS", True, (schedule,), AT)
    await state.set_charging_limit(limit)
    await state.set_charging_limit(ChargingLimitSet("CP-1", 0, "SO", None, (), AT))
    await state.clear_charging_limit(ChargingLimitCleared("CP-1", 0, "SO", AT))
    await state.set_driver_needs(DriverNeeds("CP-1", 1, "tx-16", 10.0, None, None, AT))
    driver = DriverNeeds("CP-1", 1, "tx-17", 40.0, AT + timedelta(hours=4), "gold", AT)
    await state.set_driver_needs(driver)  # the latest on an EVSE replaces the one before

    assert await state.get("CP-1") == ChargerState(
        charger_id="CP-1",
        connected=True,
        registration=RegistrationStatus.ACCEPTED,
        last_heartbeat_at=AT + timedelta(seconds=10),
        last_seen_at=AT + timedelta(seconds=10),
        connectors={(1, 1): connector, (2, 1): faulted},
        active_transactions={1: "tx-17"},
        charging_needs={2: needs},
        firmware_status="Installed",
        diagnostics_status="Uploaded",
        charging_limits={(2, "EMS"): limit},
        driver_needs={1: driver},
    )


async def test_a_node_reads_what_another_wrote(redis: Redis, keys: RedisKeys) -> None:
    await state_on(redis, keys, "node-1").set_active_transaction("CP-1", 1, "tx-1")
    assert await state_on(redis, keys, "node-2").get("CP-1") == ChargerState(
        "CP-1", active_transactions={1: "tx-1"}
    )


async def test_unknown_charger_has_no_state(redis: Redis, keys: RedisKeys) -> None:
    assert await state_on(redis, keys, "node-1").get("CP-NONE") is None


async def test_ending_a_transaction_removes_it(redis: Redis, keys: RedisKeys) -> None:
    state = state_on(redis, keys, "node-1")
    await state.set_active_transaction("CP-1", 1, "tx-1")
    await state.set_active_transaction("CP-1", 2, "tx-2")
    await state.set_active_transaction("CP-1", 1, None)
    current = await state.get("CP-1")
    assert current is not None
    assert current.active_transactions == {2: "tx-2"}


async def test_connect_routes_to_the_node_and_disconnect_removes_the_route(
    redis: Redis, keys: RedisKeys
) -> None:
    state = state_on(redis, keys, "node-1", route_ttl_s=30.0)
    await state.set_connected("CP-1", True, AT)
    assert await state.node_of("CP-1") == "node-1"
    ttl_ms = await redis.pttl(keys.route("CP-1"))
    assert 0 < ttl_ms <= 30_000
    assert await redis.hget(keys.state("CP-1"), "node") == "node-1"

    await state.set_connected("CP-1", False, AT + timedelta(minutes=1))
    assert await state.node_of("CP-1") is None
    current = await state.get("CP-1")
    assert current is not None
    assert not current.connected
    assert current.last_seen_at == AT + timedelta(minutes=1)
    assert await redis.hget(keys.state("CP-1"), "node") is None


async def test_late_disconnect_on_the_old_node_keeps_the_new_connection(
    redis: Redis, keys: RedisKeys
) -> None:
    old, new = state_on(redis, keys, "node-1"), state_on(redis, keys, "node-2")
    await old.set_connected("CP-1", True, AT)
    await new.set_connected("CP-1", True, AT + timedelta(seconds=1))
    await old.set_connected("CP-1", False, AT + timedelta(seconds=2))
    current = await new.get("CP-1")
    assert current is not None
    assert current.connected
    assert await new.node_of("CP-1") == "node-2"


async def test_heartbeat_restores_an_expired_route(redis: Redis, keys: RedisKeys) -> None:
    state = state_on(redis, keys, "node-1")
    await state.set_connected("CP-1", True, AT)
    await redis.delete(keys.route("CP-1"))  # as if the entry had expired
    await state.touch_heartbeat("CP-1", AT + timedelta(seconds=30))
    assert await state.node_of("CP-1") == "node-1"
    assert await redis.pttl(keys.route("CP-1")) > 0


async def test_route_renewal_keeps_own_routes_and_leaves_moved_chargers_alone(
    redis: Redis, keys: RedisKeys
) -> None:
    connected = ConnectedChargers()
    for charger_id in ("CP-1", "CP-2", "CP-3"):
        connected.register(
            OcppSession(charger_id, OcppVersion.V16, MemoryConnection(), Router(), max_message_bytes=65536)
        )
    bus = RoutedCommandBus(connected, redis, "node-1", default_timeout_s=5, keys=keys, route_ttl_s=60.0)
    await redis.set(keys.route("CP-1"), "node-1", px=1_000)
    await redis.set(keys.route("CP-2"), "node-2", px=50_000)  # reconnected elsewhere meanwhile

    assert await bus.renew_routes() == 2
    assert await bus.node_of("CP-1") == "node-1"
    assert await redis.pttl(keys.route("CP-1")) > 50_000
    assert await bus.node_of("CP-2") == "node-2"
    assert await bus.node_of("CP-3") == "node-1"


async def test_unreachable_redis_is_a_command_channel_error(keys: RedisKeys) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    unreachable = Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    bus = RoutedCommandBus(ConnectedChargers(), unreachable, "node-1", default_timeout_s=5, keys=keys)
    try:
        with pytest.raises(CommandChannelError, match="CP-1"):
            await bus.reset("CP-1", hard=True)
    finally:
        await unreachable.aclose()


async def test_nodes_hand_out_request_ids_from_disjoint_blocks(redis: Redis, keys: RedisKeys) -> None:
    tasks = TaskOwner()
    buses = [
        RoutedCommandBus(ConnectedChargers(), redis, node_id, default_timeout_s=5, keys=keys)
        for node_id in ("node-1", "node-2")
    ]
    try:
        for bus in buses:
            await bus.open(tasks)
        first = [bus.next_request_id() for bus in buses]
        second = [bus.next_request_id() for bus in buses]
    finally:
        await tasks.cancel_all()
        for bus in buses:
            await bus.close()
    assert first == [1, 1 + 2**20]
    assert second == [2, 2 + 2**20]
