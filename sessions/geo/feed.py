"""Keeps a :class:`~sessions.geo.index.NearbyIndex` current: registry, live status, reservations.

- Registry: loaded in full at start; afterwards every ``poll_interval_s`` the chargers listed in
  ``nearby_registry_changes`` since the last sequence number seen (triggers of migration 0010
  bump them) are reloaded, so a charger added or moved on any node shows on every node.
- Connector status: from this node's domain events (``ConnectorStatusChanged``) at once; with
  Redis, each node also publishes the statuses it hears on one channel and applies the others'
  (pub/sub, well under a second), and backfills from Redis live state at start.
- Reservations: the EVSEs held by a pending or active reservation show as Reserved; read from
  PostgreSQL at every poll and at once when a node announces a change on the channel.
- A node that dies without cleaning up announces no disconnection: the feed keeps which node
  brought each online charger, and at every poll the chargers of a node whose liveness key
  (``RedisKeys.node_alive``, see :mod:`csms.redis_state`) has expired go offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from csms.domain.events import ChargerConnectionChanged, ConnectorStatusChanged, DomainEvent
from csms.redis_state import RedisKeys, parse_state
from csms.storage.database import Database
from csms.tasks import TaskOwner
from sessions.geo.index import ChargerSite, ConnectorSite, NearbyIndex, SiteColumns
from sessions.geo.vocabulary import Availability, connector_type_name

logger = logging.getLogger(__name__)

_SITES_SQL = """
SELECT c.charger_id,
       coalesce(c.latitude_deg, s.latitude_deg) AS latitude_deg,
       coalesce(c.longitude_deg, s.longitude_deg) AS longitude_deg,
       c.station_id,
       coalesce(own.tariff_id, site.tariff_id) AS tariff_id,
       coalesce(s.time_zone, 'UTC') AS time_zone,
       k.evse_ids, k.connector_ids, k.types, k.powers
FROM chargers c
LEFT JOIN stations s ON s.station_id = c.station_id
LEFT JOIN tariff_assignments own ON own.scope = 'charger' AND own.scope_id = c.charger_id
LEFT JOIN tariff_assignments site ON site.scope = 'station' AND site.scope_id = c.station_id
LEFT JOIN LATERAL (
    SELECT array_agg(evse_id ORDER BY evse_id, connector_id) AS evse_ids,
           array_agg(connector_id ORDER BY evse_id, connector_id) AS connector_ids,
           array_agg(connector_type ORDER BY evse_id, connector_id) AS types,
           array_agg(max_power_kw ORDER BY evse_id, connector_id) AS powers
    FROM connectors WHERE connectors.charger_id = c.charger_id) k ON true
WHERE c.registration_status <> 'Rejected'
  AND coalesce(c.latitude_deg, s.latitude_deg) BETWEEN -90 AND 90
  AND coalesce(c.longitude_deg, s.longitude_deg) BETWEEN -180 AND 180
"""
_CHARGERS_SQL = """
SELECT c.charger_id,
       coalesce(c.latitude_deg, s.latitude_deg) AS latitude_deg,
       coalesce(c.longitude_deg, s.longitude_deg) AS longitude_deg,
       c.station_id,
       coalesce(own.tariff_id, site.tariff_id) AS tariff_id,
       coalesce(s.time_zone, 'UTC') AS time_zone
FROM chargers c
LEFT JOIN stations s ON s.station_id = c.station_id
LEFT JOIN tariff_assignments own ON own.scope = 'charger' AND own.scope_id = c.charger_id
LEFT JOIN tariff_assignments site ON site.scope = 'station' AND site.scope_id = c.station_id
WHERE c.registration_status <> 'Rejected'
  AND coalesce(c.latitude_deg, s.latitude_deg) BETWEEN -90 AND 90
  AND coalesce(c.longitude_deg, s.longitude_deg) BETWEEN -180 AND 180
ORDER BY c.charger_id COLLATE "C"
"""
_CONNECTORS_SQL = """
SELECT charger_id, evse_id, connector_id, connector_type, max_power_kw FROM connectors
ORDER BY charger_id COLLATE "C", evse_id, connector_id
"""
_HOLDING_SQL = "SELECT charger_id, evse_id FROM reservations WHERE status IN ('pending', 'active')"
_BATCH = 500


def site_of(row: Any) -> ChargerSite:
    """A registry row of :data:`_SITES_SQL` as a site (connector types by their OCPI names)."""
    connectors: tuple[ConnectorSite, ...] = ()
    if row["evse_ids"] is not None:
        connectors = tuple(
            ConnectorSite(evse, connector, connector_type_name(kind), power)
            for evse, connector, kind, power in zip(
                row["evse_ids"], row["connector_ids"], row["types"], row["powers"], strict=True
            )
        )
    return ChargerSite(
        charger_id=row["charger_id"],
        latitude_deg=float(row["latitude_deg"]),
        longitude_deg=float(row["longitude_deg"]),
        station_id=row["station_id"],
        tariff_id=row["tariff_id"],
        time_zone=row["time_zone"],
        connectors=connectors,
    )


def status_channel(keys: RedisKeys) -> str:
    """The channel every node publishes connector statuses and reservation changes on."""
    return f"{keys.prefix}nearby:updates"


class NearbyFeed:
    """Loads the index and keeps it current; :meth:`start`/:meth:`stop` bound its tasks."""

    def __init__(
        self,
        index: NearbyIndex,
        database: Database,
        *,
        redis: Redis | None = None,
        keys: RedisKeys | None = None,
        node_id: str = "local",
        poll_interval_s: float = 1.0,
        compact_share: float = 0.05,
    ) -> None:
        self.index = index
        self._database = database
        self._redis = redis
        self._keys = keys or RedisKeys()
        self._node_id = node_id
        self._poll_interval_s = poll_interval_s
        self._compact_share = compact_share
        self._tasks = TaskOwner()
        self._seq = 0
        self._held: set[tuple[str, int]] = set()
        self._backfilling: set[tuple[str, int, int]] | None = None
        self._node_of: dict[str, str] = {}  # online charger -> the node holding its socket
        self._reservations_changed = asyncio.Event()
        self.loaded = asyncio.Event()

    async def start(self) -> None:
        """Follow status updates and load the registry in the background (a node with 500,000
        chargers takes seconds; its API answers nearby searches 503 until :attr:`loaded`)."""
        if self._redis is not None:
            pubsub = self._redis.pubsub()
            await pubsub.subscribe(status_channel(self._keys))
            self._tasks.start(self._listen(pubsub), "nearby-updates")
        self._tasks.start(self._load_then_follow(), "nearby-index")

    async def _load_then_follow(self) -> None:
        while True:
            try:
                await self.reload()
                await self.sync_reservations()
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("nearby index: loading the registry failed, retrying: %s", exc)
                await asyncio.sleep(self._poll_interval_s)
        self.loaded.set()
        if self._redis is not None:
            self._tasks.start(self._backfill(), "nearby-status-backfill")
        await self._poll()

    async def stop(self) -> None:
        await self._tasks.cancel_all()

    # -- registry -------------------------------------------------------------------------------

    async def reload(self) -> None:
        """Load every charger (the sequence is read first: changes during the load are re-read)."""
        async with self._database.pool.acquire() as connection:
            self._seq = int(
                await connection.fetchval("SELECT coalesce(max(seq), 0) FROM nearby_registry_changes")
            )
            async with connection.transaction(readonly=True, isolation="repeatable_read"):
                chargers = await connection.fetch(_CHARGERS_SQL)
                connectors = await connection.fetch(_CONNECTORS_SQL)
            names: dict[str | None, str | None] = {}
            for row in connectors:
                kind = row[3]
                if kind not in names:
                    names[kind] = connector_type_name(kind)
            columns = SiteColumns()
            self.index.add_rows(
                columns,
                chargers,
                [(row[0], row[1], row[2], names[row[3]], row[4]) for row in connectors],
            )
            del chargers, connectors
        prepared = await asyncio.to_thread(self.index.prepare, columns)
        self.index.install(prepared)
        logger.info("nearby index loaded: %d chargers", len(self.index))

    async def apply_registry_changes(self) -> int:
        """Reload the chargers changed since the last call; how many changed."""
        rows = await self._database.pool.fetch(
            "SELECT charger_id, seq FROM nearby_registry_changes WHERE seq > $1 ORDER BY seq LIMIT 10000",
            self._seq,
        )
        if not rows:
            return 0
        changed = [row["charger_id"] for row in rows]
        sites = await self._database.pool.fetch(_SITES_SQL + " AND c.charger_id = ANY($1::text[])", changed)
        found = {row["charger_id"]: site_of(row) for row in sites}
        for charger_id in changed:
            site = found.get(charger_id)
            if site is None:
                self.index.remove(charger_id)
            else:
                self.index.upsert(site)
        self._seq = int(rows[-1]["seq"])
        if self.index.pending_changes > max(1000, self._compact_share * len(self.index)):
            prepared = await asyncio.to_thread(self.index.prepare, self.index.compacted_columns())
            self.index.install(prepared)
        return len(changed)

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reservations_changed.wait(), self._poll_interval_s)
            self._reservations_changed.clear()
            try:
                await self.apply_registry_changes()
                await self.sync_reservations()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("nearby index: registry poll failed, retrying: %s", exc)
            try:
                await self.drop_dead_nodes()
            except RedisError as exc:
                logger.warning("nearby index: node liveness not read: %s", exc)

    async def drop_dead_nodes(self) -> int:
        """Take offline the chargers of other nodes whose liveness key expired; how many."""
        if self._redis is None:
            return 0
        nodes = sorted({node for node in self._node_of.values() if node != self._node_id})
        if not nodes:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.exists(self._keys.node_alive(node))
            alive = await pipe.execute()
        dead = {node for node, found in zip(nodes, alive, strict=True) if not found}
        gone = [charger_id for charger_id, node in self._node_of.items() if node in dead]
        for charger_id in gone:
            self._online(charger_id, False, None)
        if gone:
            logger.warning(
                "nearby index: %d chargers offline: their nodes %s stopped", len(gone), sorted(dead)
            )
        return len(gone)

    def _online(self, charger_id: str, online: bool, node: str | None) -> None:
        self.index.set_online(charger_id, online)
        if online and node is not None:
            self._node_of[charger_id] = node
        else:
            self._node_of.pop(charger_id, None)

    # -- reservations ---------------------------------------------------------------------------

    async def sync_reservations(self) -> None:
        """Show exactly the EVSEs held by pending or active reservations as Reserved."""
        rows = await self._database.pool.fetch(_HOLDING_SQL)
        held = {(row["charger_id"], int(row["evse_id"])) for row in rows}
        for charger_id, evse_id in self._held - held:
            self.index.set_reserved(charger_id, evse_id, False)
        for charger_id, evse_id in held - self._held:
            self.index.set_reserved(charger_id, evse_id, True)
        self._held = held

    async def reservations_changed(self) -> None:
        """A reservation started or ended here: show it now, and tell the other nodes."""
        await self.sync_reservations()
        await self._publish({"kind": "reservations", "node": self._node_id})

    # -- connector status -----------------------------------------------------------------------

    async def on_event(self, event: DomainEvent) -> None:
        """Subscribed to the charging service: apply a status here and pass it to other nodes."""
        if isinstance(event, ChargerConnectionChanged):
            self._online(event.charger_id, event.connected, self._node_id)
            await self._publish(
                {
                    "kind": "online",
                    "node": self._node_id,
                    "charger_id": event.charger_id,
                    "online": event.connected,
                }
            )
            return
        if not isinstance(event, ConnectorStatusChanged):
            return
        availability = Availability[event.status.name]
        self._apply(event.charger_id, event.evse_id, event.connector_id, availability)
        await self._publish(
            {
                "kind": "status",
                "node": self._node_id,
                "charger_id": event.charger_id,
                "evse_id": event.evse_id,
                "connector_id": event.connector_id,
                "status": availability.label,
            }
        )

    def _apply(self, charger_id: str, evse_id: int, connector_id: int, availability: Availability) -> None:
        if self._backfilling is not None:
            self._backfilling.add((charger_id, evse_id, connector_id))
        self.index.set_status(charger_id, evse_id, connector_id, availability)

    async def _publish(self, message: dict[str, Any]) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.publish(status_channel(self._keys), json.dumps(message))
        except RedisError as exc:
            logger.warning("charger %s: nearby update not passed on: %s", message.get("charger_id"), exc)

    async def _listen(self, pubsub: Any) -> None:
        try:
            while True:
                try:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                except RedisError as exc:
                    logger.warning("nearby updates: Redis failed (%s), resubscribing", exc)
                    await asyncio.sleep(1.0)
                    # statuses published meanwhile are lost: read them again from live state
                    if self.loaded.is_set() and self._backfilling is None:
                        self._tasks.start(self._backfill(), "nearby-status-backfill")
                    continue
                if message is not None and message.get("type") == "message":
                    self._receive(message["data"])
        finally:
            await pubsub.aclose()

    def _receive(self, data: str | bytes) -> None:
        try:
            message = json.loads(data)
            if message.get("node") == self._node_id:
                return
            if message["kind"] == "reservations":
                self._reservations_changed.set()
            elif message["kind"] == "online":
                self._online(str(message["charger_id"]), bool(message["online"]), message.get("node"))
            elif message["kind"] == "status":
                self._apply(
                    str(message["charger_id"]),
                    int(message["evse_id"]),
                    int(message["connector_id"]),
                    Availability.of_label(str(message["status"])),
                )
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("nearby updates: unreadable message %r: %s", data, exc)

    async def _backfill(self) -> None:
        """Statuses already in Redis live state (chargers connected before this node started)."""
        assert self._redis is not None
        self._backfilling = set()
        try:
            charger_ids = self.index.charger_ids()
            for first in range(0, len(charger_ids), _BATCH):
                await self._backfill_batch(charger_ids[first : first + _BATCH])
        except RedisError as exc:
            logger.warning("nearby index: status backfill from Redis failed: %s", exc)
        finally:
            self._backfilling = None

    async def _backfill_batch(self, charger_ids: Sequence[str]) -> None:
        assert self._redis is not None
        assert self._backfilling is not None
        async with self._redis.pipeline(transaction=False) as pipe:
            for charger_id in charger_ids:
                pipe.hgetall(self._keys.state(charger_id))
            results = await pipe.execute()
        for charger_id, fields in zip(charger_ids, results, strict=True):
            if not fields:
                continue
            state = parse_state(charger_id, fields)
            for (evse_id, connector_id), connector in state.connectors.items():
                if (charger_id, evse_id, connector_id) not in self._backfilling:
                    availability = Availability[connector.status.name]
                    self.index.set_status(charger_id, evse_id, connector_id, availability)
            node = fields.get("node")
            if not state.connected:
                self._online(charger_id, False, None)
            elif node and charger_id not in self._node_of:
                self._node_of[charger_id] = str(node)  # checked for liveness at the next poll
