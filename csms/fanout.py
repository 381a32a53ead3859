"""Domain events over Redis, so a station's loop hears of chargers connected to any node.

A charger's events are stored and published by the node holding its socket; the station it
belongs to is planned by one node, its owner (:mod:`csms.smart_charging.ownership`). Every node
runs an :class:`EventPublisher` subscribed to its :class:`~csms.domain.service.ChargingService`:
each stored event a loop needs (boot, connector status, transaction start and end, the meter
samples the loop reads, EV charging needs, drivers' needs from the app, external charging limits
set and cleared) of a charger in a configured station is published, as JSON, on that station's channel
``{prefix}station:{station id}:events``. The owner reads the channels of the stations it owns
through an :class:`EventSubscriber` and feeds its loop.

Pub/sub is at-most-once: an event published while no node owns the station (a takeover) is
lost. That is why a new owner subscribes first and then reads what it needs from live state and
PostgreSQL (see the ownership module); events in between may arrive twice, which the loop's
state tolerates (a known transaction starts once, a repeated sample changes nothing).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from csms.domain.documents import from_document, to_document
from csms.domain.events import (
    ChargerBooted,
    ChargingLimitCleared,
    ChargingLimitSet,
    ChargingNeeds,
    ConnectorStatusChanged,
    DomainEvent,
    DriverNeeds,
    MeterSample,
    TransactionEnded,
    TransactionStarted,
)
from csms.errors import CsmsError
from csms.live_state import LiveState
from csms.redis_state import RedisKeys
from csms.smart_charging.setup import StationSetup
from csms.smart_charging.state import CURRENT_IMPORT, ENERGY_REGISTER, POWER_IMPORT
from csms.tasks import TaskOwner

logger = logging.getLogger(__name__)

FannedOut = (
    ChargerBooted
    | ConnectorStatusChanged
    | TransactionStarted
    | TransactionEnded
    | MeterSample
    | ChargingNeeds
    | DriverNeeds
    | ChargingLimitSet
    | ChargingLimitCleared
)
FANNED_OUT: tuple[type[FannedOut], ...] = (
    ChargerBooted,
    ConnectorStatusChanged,
    TransactionStarted,
    TransactionEnded,
    MeterSample,
    ChargingNeeds,
    DriverNeeds,
    ChargingLimitSet,
    ChargingLimitCleared,
)
_BY_NAME: dict[str, type[FannedOut]] = {cls.__name__: cls for cls in FANNED_OUT}
LOOP_MEASURANDS = frozenset({ENERGY_REGISTER, CURRENT_IMPORT, POWER_IMPORT})
"""The measurands the smart-charging loop reads; other meter samples are not fanned out."""
_RECONNECT_DELAY_S = 1.0

StationEventListener = Callable[[str, DomainEvent], Awaitable[None]]
"""Called with the station id whose channel carried the event, and the event."""


class FanoutError(CsmsError):
    """A fanned-out event cannot be read (another version of fairwatt, or not ours)."""


def station_channel(keys: RedisKeys, station_id: str) -> str:
    """The channel a station's events are published on."""
    return f"{keys.prefix}station:{station_id}:events"


# -- the wire form ------------------------------------------------------------------------------


def encode_event(event: FannedOut) -> str:
    """The event as JSON: its type name and its fields (times ISO 8601, enums by value)."""
    return json.dumps({"type": type(event).__name__, "fields": to_document(event)})


def decode_event(text: str) -> FannedOut:
    """The event :func:`encode_event` wrote; :class:`FanoutError` for anything else."""
    try:
        document = json.loads(text)
        return from_document(_BY_NAME[document["type"]], document["fields"])
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as exc:
        raise FanoutError(f"unreadable fanned-out event: {exc!r}") from exc


# -- publishing ---------------------------------------------------------------------------------


class EventPublisher:
    """Publishes the events of configured stations' chargers; subscribe :meth:`on_event` to the service."""

    def __init__(
        self, redis: Redis, stations: Sequence[StationSetup], live_state: LiveState, *, keys: RedisKeys
    ) -> None:
        self._redis = redis
        self._live_state = live_state
        by_charger: dict[str, list[str]] = {}
        self._by_evse: dict[tuple[str, int], tuple[str, ...]] = {}
        for setup in stations:
            channel = station_channel(keys, setup.station_id)
            for b in setup.evses:
                self._by_evse[(b.charger_id, b.ocpp_evse_id)] = (channel,)
                if channel not in by_charger.setdefault(b.charger_id, []):
                    by_charger[b.charger_id].append(channel)
        self._by_charger = {charger_id: tuple(names) for charger_id, names in by_charger.items()}

    def channels(self, event: FannedOut) -> tuple[str, ...]:
        """Where ``event`` goes: its EVSE's station, or every station of its charger (boot, end, a
        limit on the whole charger)."""
        if isinstance(event, ChargerBooted | TransactionEnded):
            return self._by_charger.get(event.charger_id, ())
        if isinstance(event, ChargingLimitSet | ChargingLimitCleared) and event.evse_id == 0:
            return self._by_charger.get(event.charger_id, ())
        return self._by_evse.get((event.charger_id, event.evse_id), ())

    async def on_event(self, event: DomainEvent) -> None:
        """Publish ``event`` on its stations' channels if a loop needs it (a Redis failure is logged)."""
        if not isinstance(event, FANNED_OUT):
            return
        channels = self.channels(event)
        if not channels:
            return
        if isinstance(event, MeterSample) and event.measurand not in LOOP_MEASURANDS:
            return
        try:
            if isinstance(event, TransactionStarted) and event.transaction_id is None:
                event = await self._with_transaction_id(event)
            text = encode_event(event)
            try:
                await self._publish(channels, text)
            except RedisConnectionError:
                # A pooled connection Redis dropped (a restart, CLIENT KILL) fails the first command
                # sent on it; once more on a fresh one. The loop tolerates a duplicate, not a loss.
                await self._publish(channels, text)
        except RedisError as exc:
            logger.warning(
                "charger %s: %s not passed on to its station's planner: %s",
                event.charger_id,
                type(event).__name__,
                exc,
            )

    async def _publish(self, channels: tuple[str, ...], text: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.publish(channel, text)
            await pipe.execute()

    async def _with_transaction_id(self, started: TransactionStarted) -> TransactionStarted:
        """A 1.6 start with the id we assigned (in live state), so the owner need not look it up."""
        charger = await self._live_state.get(started.charger_id)
        transaction_id = None if charger is None else charger.active_transactions.get(started.evse_id)
        if transaction_id is None:
            return started
        return TransactionStarted(
            charger_id=started.charger_id,
            evse_id=started.evse_id,
            connector_id=started.connector_id,
            transaction_id=transaction_id,
            id_token=started.id_token,
            meter_start_wh=started.meter_start_wh,
            started_at=started.started_at,
            message_id=started.message_id,
            remote_start_id=started.remote_start_id,
            reservation_id=started.reservation_id,
            offline=started.offline,
        )


# -- subscribing --------------------------------------------------------------------------------


class EventSubscriber:
    """Reads the channels of the stations this node owns and hands each event to ``listener``
    with the station it was published for.

    :meth:`open` subscribes to a node-private channel (so the subscription is never empty) and
    starts the reader as a task of the app's :class:`TaskOwner`; :meth:`follow` adds a station
    and returns once Redis confirmed it, so nothing published afterwards is missed.
    ``on_gap`` is called after the connection to Redis failed and was restored, once Redis confirmed
    a subscription again: events may have been lost before, none after.
    """

    def __init__(
        self,
        redis: Redis,
        node_id: str,
        listener: StationEventListener,
        *,
        keys: RedisKeys,
        on_gap: Callable[[], None] | None = None,
    ) -> None:
        self._redis = redis
        self._node_id = node_id
        self._listener = listener
        self._keys = keys
        self._on_gap = on_gap
        self._pubsub: PubSub | None = None
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._followed: dict[str, str] = {}  # channel -> station id
        self._task: asyncio.Task[None] | None = None
        self._resubscribing = False

    def _reconnected(self, _connection: object) -> None:
        self._resubscribing = True

    async def open(self, tasks: TaskOwner) -> None:
        pubsub = self._redis.pubsub()
        self._pubsub = pubsub
        await pubsub.subscribe(f"{self._keys.prefix}node:{self._node_id}:station-events")
        while (await pubsub.get_message(timeout=None) or {}).get("type") != "subscribe":
            pass
        # called on every reconnection of the subscription's connection (redis-py resubscribes
        # then), including one redis-py makes without raising to us
        connection: Any = pubsub.connection
        connection.register_connect_callback(self._reconnected)
        self._task = tasks.start(self._read(pubsub), f"csms-station-events-{self._node_id}")

    async def close(self) -> None:
        """Stop reading and end the subscription."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None

    async def follow(self, station_id: str) -> None:
        """Subscribe to ``station_id``'s events; returns once the subscription is in force."""
        assert self._pubsub is not None, "open() first"
        channel = station_channel(self._keys, station_id)
        confirmed = asyncio.get_running_loop().create_future()
        self._confirming[channel] = confirmed
        self._followed[channel] = station_id
        try:
            await self._pubsub.subscribe(channel)
            await confirmed
        finally:
            self._confirming.pop(channel, None)

    async def unfollow(self, station_id: str) -> None:
        """Stop receiving ``station_id``'s events."""
        channel = station_channel(self._keys, station_id)
        self._followed.pop(channel, None)
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(channel)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
            except RedisError as exc:
                logger.warning("node %s: station events failed (%s), resubscribing", self._node_id, exc)
                self._resubscribing = True
                await asyncio.sleep(_RECONNECT_DELAY_S)
                continue
            if message is None:
                continue
            if message["type"] == "subscribe":
                waiting = self._confirming.get(_text(message["channel"]))
                if waiting is not None and not waiting.done():
                    waiting.set_result(None)
                elif self._resubscribing and self._on_gap is not None:
                    # subscribed again after the connection was lost and restored (by us after an
                    # error, or by redis-py on its own): what was published meanwhile is lost, and
                    # from here on nothing is, so this is when the owner must resynchronise
                    logger.info("node %s: station events resubscribed, resynchronising", self._node_id)
                    self._resubscribing = False
                    self._on_gap()
            elif message["type"] == "message":
                station_id = self._followed.get(_text(message["channel"]))
                if station_id is not None:  # else: unfollowed, the message was already under way
                    await self._deliver(station_id, _text(message["data"]))

    async def _deliver(self, station_id: str, text: str) -> None:
        try:
            event = decode_event(text)
        except FanoutError as exc:
            logger.warning("node %s: %s", self._node_id, exc)
            return
        try:
            await self._listener(station_id, event)
        except Exception:
            # Outermost handler of one fanned-out event: the reader must go on for the others.
            logger.exception("charger %s: %s failed in the planner", event.charger_id, type(event).__name__)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
