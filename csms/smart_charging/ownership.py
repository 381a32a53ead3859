"""Exactly one node plans each station: a Redis lock per station, renewed by its owner.

Every node runs the smart-charging loop for every configured station, but only the owner of a
station hears its events (:mod:`csms.fanout`), so only the owner solves it and sends profiles,
through the routed command bus that reaches chargers on any node.

The lock is ``{prefix}station:{station id}:owner`` holding the owner's node id. A node takes a
free lock with ``SET NX PX`` and its owner extends it with a compare-and-extend script (only
while the value is still its own id) every third of the TTL; on a clean stop it deletes it
(compare-and-delete), so another node takes over at its next attempt. A node that dies stops
renewing: its locks expire after ``lock_ttl_s`` and the first node to try then takes over.

Taking over: the new owner subscribes to the station's events first, then drops what its loop
knew of the station and rebuilds it from shared state: each connected, accepted charger is
treated as booted (it gets its failsafe again, which also tells the loop what it holds), the
external limits chargers reported are set again, and each
active transaction in live state is resumed (:mod:`csms.smart_charging.resuming`: a session with
its start time and meter start from PostgreSQL and its latest energy reading), and gets the EV's
and its driver's needs kept in live state; a station that plans with a forecast learns its finished
transactions of the last weeks again (those that ended while another node planned it never
reached this node's loop). A session whose charger is not connected is planned
as the loop plans any charger it cannot reach: profiles fail, then it counts at its maximum.

Losing a lock (a renewal finds another node's id, or renewals fail, or do not answer within
``lock_ttl_s / 6``, for so long that the lock could expire before the next attempt) stops following
the station and drops its state, so the loop neither solves it nor sends (a cycle under way
sends nothing either). The lease counts from the moment the renewal was sent, so a node cut off
from Redis stops planning before the lock it can no longer renew expires and another node takes
it: two nodes never plan a station at once, unless a node's event loop stalls for longer than the
TTL (then it sends until its next ownership step).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from csms.domain.events import ChargerBooted, DomainEvent, RegistrationStatus
from csms.domain.service import ChargingService
from csms.errors import SettingsError
from csms.fanout import EventPublisher, EventSubscriber
from csms.live_state import LiveState
from csms.protocol.session import utc_now
from csms.redis_state import RedisKeys
from csms.smart_charging.loop import SmartChargingLoop
from csms.smart_charging.resuming import resume_transaction
from csms.smart_charging.seeding import seed_forecasts
from csms.smart_charging.setup import StationSetup
from csms.storage.transactions import TransactionRepository
from csms.tasks import TaskOwner

logger = logging.getLogger(__name__)

# KEYS[1] lock; ARGV: this node, ttl [ms]. Take the lock if it is free or already ours (a take whose
# answer was lost), extending it.
_ACQUIRE_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] lock; ARGV: this node, ttl [ms]. Extend the lock only while it is still ours.
_EXTEND_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] lock; ARGV: this node. Delete the lock only while it is still ours.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class OwnershipSettings:
    """How station locks behave [s].

    ``lock_ttl_s``: how long a lock outlives its owner's last renewal (how long a dead node's
    stations go unplanned at most); the owner renews, and other nodes try to take free locks,
    every ``lock_ttl_s / 3``.
    """

    lock_ttl_s: float = 15.0

    def __post_init__(self) -> None:
        if self.lock_ttl_s <= 0:
            raise SettingsError("station ownership: lock_ttl_s must be positive")

    @property
    def attempt_every_s(self) -> float:
        return self.lock_ttl_s / 3

    @property
    def call_timeout_s(self) -> float:
        """How long one lock call may take before it counts as failed (Redis not answering)."""
        return self.lock_ttl_s / 6


def lock_key(keys: RedisKeys, station_id: str) -> str:
    """The key of a station's owner lock."""
    return f"{keys.prefix}station:{station_id}:owner"


class StationLock:
    """One station's owner lock for node ``node_id``."""

    def __init__(self, redis: Redis, key: str, node_id: str, ttl_s: float) -> None:
        self._redis = redis
        self.key = key
        self._node_id = node_id
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._acquire = redis.register_script(_ACQUIRE_SCRIPT)
        self._extend = redis.register_script(_EXTEND_SCRIPT)
        self._release = redis.register_script(_RELEASE_SCRIPT)

    async def acquire(self) -> bool:
        """Take the lock if it is free (``SET NX PX``) or already this node's; whether this node
        holds it now."""
        return bool(await self._acquire(keys=[self.key], args=[self._node_id, self._ttl_ms]))

    async def renew(self) -> bool:
        """Extend the lock if it is still this node's; ``False`` when it expired or another node holds it."""
        return bool(await self._extend(keys=[self.key], args=[self._node_id, self._ttl_ms]))

    async def release(self) -> bool:
        """Delete the lock if it is still this node's."""
        return bool(await self._release(keys=[self.key], args=[self._node_id]))

    async def holder(self) -> str | None:
        """The node holding the lock, ``None`` when it is free."""
        node = await self._redis.get(self.key)
        return None if node is None else str(node)


class StationOwnership:
    """This node's share of the stations: takes free locks, renews its own, feeds its loop their events."""

    def __init__(
        self,
        redis: Redis,
        node_id: str,
        stations: Sequence[StationSetup],
        loop: SmartChargingLoop,
        *,
        live_state: LiveState,
        transactions: TransactionRepository,
        keys: RedisKeys,
        settings: OwnershipSettings | None = None,
    ) -> None:
        self.node_id = node_id
        self._settings = settings or OwnershipSettings()
        self._stations = {s.station_id: s for s in stations}
        self._loop = loop
        self._live_state = live_state
        self._transactions = transactions
        self._locks = {
            s.station_id: StationLock(redis, lock_key(keys, s.station_id), node_id, self._settings.lock_ttl_s)
            for s in stations
        }
        self._renewed_at: dict[str, float] = {}  # station -> monotonic time of the last renewal
        self._owned: set[str] = set()
        self._gap = False
        self._subscriber = EventSubscriber(redis, node_id, self._on_event, keys=keys, on_gap=self._note_gap)
        self._task: asyncio.Task[None] | None = None

    @property
    def owned(self) -> frozenset[str]:
        """The stations this node plans now."""
        return frozenset(self._owned)

    async def start(self, tasks: TaskOwner) -> None:
        """Subscribe, take what locks are free now, then keep at it in a task of ``tasks``."""
        await self._subscriber.open(tasks)
        await self.step()
        self._task = tasks.start(self._run(), f"csms-station-ownership-{self.node_id}")

    async def close(self) -> None:
        """Stop, and release this node's locks so other nodes take over at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for station_id in sorted(self._owned):
            try:
                await self._locks[station_id].release()
            except RedisError as exc:
                logger.warning("station %s: lock not released (%s); it expires", station_id, exc)
            else:
                logger.info("station %s: node %s released it", station_id, self.node_id)
        self._owned.clear()
        await self._subscriber.close()

    async def step(self) -> None:
        """Renew the locks held, take the free ones; resynchronise after a gap in the events."""
        gap, self._gap = self._gap, False
        unreachable = False
        for station_id, lock in self._locks.items():
            if unreachable:  # one call's timeout per step, however many stations
                await self._check_lease(station_id)
                continue
            # The lock can expire no earlier than its TTL after the call began: the lease counts from here.
            began = time.monotonic()
            try:
                async with asyncio.timeout(self._settings.call_timeout_s):
                    held = await (lock.renew() if station_id in self._owned else lock.acquire())
            except (RedisError, TimeoutError) as exc:
                logger.warning("station %s: ownership check failed: %r", station_id, exc)
                self._gap = True
                unreachable = True
                await self._check_lease(station_id)
                continue
            try:
                if station_id in self._owned:
                    if held:
                        self._renewed_at[station_id] = began
                        if gap:
                            self._loop.forget(station_id)
                            await self._resync(station_id)
                    else:
                        await self._lose(station_id, "its lock is another node's now")
                elif held:
                    self._renewed_at[station_id] = began
                    await self._gain(station_id)
            except RedisError as exc:
                logger.warning("station %s: ownership check failed: %s", station_id, exc)
                self._gap = True

    async def _check_lease(self, station_id: str) -> None:
        """Stop planning a station whose lock could not be renewed, before it can expire: by the next
        attempt (an interval and a call's timeout from now) another node may hold it."""
        if station_id not in self._owned:
            return
        held_s = time.monotonic() - self._renewed_at.get(station_id, 0.0)
        settings = self._settings
        if held_s + settings.attempt_every_s + settings.call_timeout_s >= settings.lock_ttl_s:
            await self._lose(station_id, "its lock could not be renewed in time")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._settings.attempt_every_s)
            try:
                await self.step()
            except Exception:
                # Outermost handler of the ownership task: renewals must go on (else the lock
                # expires while this node still plans), and a failed resync is retried.
                logger.exception("node %s: station ownership step failed", self.node_id)
                self._gap = True

    def _note_gap(self) -> None:
        self._gap = True

    async def _gain(self, station_id: str) -> None:
        # Events confirmed-subscribed from here on reach the fresh state; the resync adds the past.
        self._loop.forget(station_id)
        self._owned.add(station_id)
        try:
            await self._subscriber.follow(station_id)
        except RedisError:
            self._owned.discard(station_id)
            await self._locks[station_id].release()  # let the next attempt (ours or another's) take it
            raise
        logger.info("station %s: node %s plans it now", station_id, self.node_id)
        await self._resync(station_id)

    async def _lose(self, station_id: str, why: str) -> None:
        self._owned.discard(station_id)
        self._loop.forget(station_id)
        logger.warning("station %s: node %s no longer plans it: %s", station_id, self.node_id, why)
        try:
            await self._subscriber.unfollow(station_id)
        except RedisError as exc:
            logger.warning("station %s: events still followed (%s)", station_id, exc)

    async def _on_event(self, station_id: str, event: DomainEvent) -> None:
        if station_id in self._owned:
            await self._loop.on_event(event)

    async def _resync(self, station_id: str) -> None:
        """Rebuild the loop's view of the station from live state and PostgreSQL."""
        setup = self._stations[station_id]
        now = utc_now()
        for charger_id in dict.fromkeys(b.charger_id for b in setup.evses):
            charger = await self._live_state.get(charger_id)
            if charger is None:
                continue
            if charger.connected and charger.registration is RegistrationStatus.ACCEPTED:
                await self._loop.on_event(
                    ChargerBooted(charger_id, "", "", None, None, "ownership taken over", now)
                )
            for limit in charger.charging_limits.values():
                await self._loop.on_event(limit)
            for binding in setup.evses:
                if binding.charger_id != charger_id:
                    continue
                transaction_id = charger.active_transactions.get(binding.ocpp_evse_id)
                if transaction_id is not None:
                    await resume_transaction(
                        self._loop,
                        self._transactions,
                        charger_id,
                        binding.ocpp_evse_id,
                        transaction_id,
                        now,
                        why="ownership resync",
                    )
                needs = charger.charging_needs.get(binding.ocpp_evse_id)
                if needs is not None:
                    await self._loop.on_event(needs)
                driver = charger.driver_needs.get(binding.ocpp_evse_id)
                if driver is not None:  # one of an earlier transaction there changes nothing
                    await self._loop.on_event(driver)
        await seed_forecasts(self._loop, self._transactions, now, (station_id,))


STATION_OWNERSHIP = web.AppKey("station_ownership", StationOwnership)


def install_ownership(
    app: web.Application,
    stations: Sequence[StationSetup],
    loop: SmartChargingLoop,
    *,
    redis: Redis,
    node_id: str,
    keys: RedisKeys,
    service: ChargingService,
    live_state: LiveState,
    transactions: TransactionRepository,
    tasks: TaskOwner,
    settings: OwnershipSettings | None = None,
) -> StationOwnership:
    """Fan this node's station events out over Redis and plan the stations this node owns.

    Call it after :func:`csms.smart_charging.install` (with ``subscribe_events=False``) and
    after the start-up context that opens Redis: locks are taken once the app starts and
    released when it stops.
    """
    publisher = EventPublisher(redis, stations, live_state, keys=keys)
    service.subscribe(publisher.on_event)
    ownership = StationOwnership(
        redis,
        node_id,
        stations,
        loop,
        live_state=live_state,
        transactions=transactions,
        keys=keys,
        settings=settings,
    )
    app[STATION_OWNERSHIP] = ownership

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await ownership.start(tasks)
        try:
            yield
        finally:
            await ownership.close()

    app.cleanup_ctx.append(lifetime)
    return ownership
