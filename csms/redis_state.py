"""Live state in Redis, shared by every node: one hash per charger and an expiring route entry.

Layout under a key prefix (default ``fairwatt:csms:``), with the charger id as a hash tag so a
charger's keys share one Redis Cluster slot:

- ``{prefix}{<charger id>}:state``: a hash. ``connected`` (``1``/``0``), ``node`` (the node holding
  the socket, absent when disconnected), ``last_seen_at``, ``last_heartbeat_at``, ``registration``,
  ``firmware_status``, ``diagnostics_status``, ``conn:<evse>:<connector>`` (a connector state as
  JSON), ``tx:<evse>`` (the active transaction id), ``needs:<evse>`` (charging needs as JSON),
  ``driver:<evse>`` (the driver's needs of the app session there, as JSON),
  ``limit:<evse>:<source>`` (an external charging limit as JSON; EVSE 0: the whole charger).
- ``{prefix}{<charger id>}:route``: the id of the node holding the socket, expiring after
  ``route_ttl_s``; set on connect, renewed by every heartbeat and by the holding node's refresher
  (:mod:`csms.routing`), so a dead node's chargers stop being routed to it.

Every write is one round trip (one command, a pipeline or one Lua script); a read is one HGETALL.
The hash and the route entry are written by one pipeline without MULTI/EXEC: both writes are
idempotent and a reader never needs them to agree, and at 500,000 chargers' heartbeats the
transaction would double the commands Redis executes.
Times are stored as UTC ISO 8601 strings.

A dead node's chargers: every node keeps ``{prefix}node:<node id>:alive`` (expiring after
``node_ttl_s``, renewed every third of that by :meth:`RedisLiveState.keep_alive_forever`); a
charger whose hash names a node without that key reads as disconnected, so the chargers of a node
killed without running its cleanup read as disconnected within ``node_ttl_s`` on every node.

Redis unreachable: a write that fails is kept as a pending patch per charger (field -> value or
deletion, the latest write of a field winning) and written, in one script call, by the next write
of that charger or by the keep-alive loop once Redis answers again; the node holding a charger
keeps a copy of its hash, which :meth:`RedisLiveState.get` answers from while Redis cannot be
read. So a node goes on serving the chargers connected to it while Redis is down, and Redis
catches up when it returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from csms.domain.documents import from_document, to_document
from csms.domain.events import (
    ChargingLimitCleared,
    ChargingLimitSet,
    ChargingNeeds,
    ConnectorStatus,
    DriverNeeds,
    RegistrationStatus,
)
from csms.live_state import ChargerState, ConnectorState

logger = logging.getLogger(__name__)

DEFAULT_KEY_PREFIX = "fairwatt:csms:"
_DELETED = None

# KEYS[1] state, KEYS[2] route; ARGV: this node, route ttl [ms], the patch as JSON
# {"set": {field: value}, "del": [field]}, '1' to return the hash afterwards.
# A patch deleting 'node' is a disconnect: it touches neither the connection fields nor the route
# when another node holds the charger now (a charger that already reconnected elsewhere must not be
# marked disconnected by the old node's late cleanup). A patch setting 'node' to this node sets
# the route; a disconnect deletes the route while it is this node's.
_PATCH_SCRIPT = """
local patch = cjson.decode(ARGV[3])
local set = patch['set']
local del = patch['del']
local holder = redis.call('HGET', KEYS[1], 'node')
local disconnect = false
for _, field in ipairs(del) do
  if field == 'node' then disconnect = true end
end
if disconnect and holder and holder ~= ARGV[1] then
  disconnect = false
  set['connected'] = nil
  set['last_seen_at'] = nil
  local kept = {}
  for _, field in ipairs(del) do
    if field ~= 'node' then table.insert(kept, field) end
  end
  del = kept
end
local args = {}
for field, value in pairs(set) do
  table.insert(args, field)
  table.insert(args, value)
end
if #args > 0 then
  redis.call('HSET', KEYS[1], unpack(args))
end
if #del > 0 then
  redis.call('HDEL', KEYS[1], unpack(del))
end
if set['node'] == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
elseif disconnect and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
if ARGV[4] == '1' then
  return redis.call('HGETALL', KEYS[1])
end
return {}
"""


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Key and channel names under one prefix (tests use a prefix of their own)."""

    prefix: str = DEFAULT_KEY_PREFIX

    def state(self, charger_id: str) -> str:
        """The charger's live-state hash."""
        return f"{self.prefix}{{{charger_id}}}:state"

    def route(self, charger_id: str) -> str:
        """The charger's route entry: the id of the node holding its socket."""
        return f"{self.prefix}{{{charger_id}}}:route"

    def request_ids(self) -> str:
        """The counter from which nodes reserve blocks of OCPP request ids (remoteStartId, requestId)."""
        return f"{self.prefix}request-ids"

    def node_alive(self, node_id: str) -> str:
        """Present while the node ``node_id`` runs (it renews it); gone soon after it died."""
        return f"{self.prefix}node:{node_id}:alive"

    def commands(self, node_id: str) -> str:
        """The channel a node reads commands for its chargers from."""
        return f"{self.prefix}node:{node_id}:commands"

    def replies(self, node_id: str) -> str:
        """The channel a node reads the answers to its forwarded commands from."""
        return f"{self.prefix}node:{node_id}:replies"


class RedisLiveState:
    """:class:`csms.live_state.LiveState` in Redis, written by the node ``node_id``.

    ``route_ttl_s`` [s] is how long a route entry lives without being renewed; ``node_ttl_s`` [s]
    how long this node's liveness key outlives its last renewal (how long the chargers of a dead
    node still read as connected).
    """

    def __init__(
        self,
        redis: Redis,
        node_id: str,
        *,
        keys: RedisKeys | None = None,
        route_ttl_s: float = 300.0,
        node_ttl_s: float = 15.0,
    ) -> None:
        self._redis = redis
        self.node_id = node_id
        self.keys = keys or RedisKeys()
        self._route_ttl_ms = max(1, round(route_ttl_s * 1000))
        self.node_ttl_s = node_ttl_s
        self._patch = redis.register_script(_PATCH_SCRIPT)
        self._pending: dict[str, dict[str, str | None]] = {}
        """Per charger, what Redis has not taken yet: field -> value (``None``: delete it)."""
        self._held: dict[str, dict[str, str]] = {}
        """The hash of each charger connected to this node, as last written or read."""
        self._alive: dict[str, tuple[bool, float]] = {}  # other node -> (alive, monotonic time checked)
        self._unreachable = False
        self._locks: dict[str, list[Any]] = {}  # charger -> [its asyncio.Lock, callers using it]

    @property
    def pending(self) -> int:
        """How many chargers have writes Redis has not taken yet."""
        return len(self._pending)

    async def _write(
        self, charger_id: str, fields: dict[str, str | None], *, read_back: bool = False
    ) -> None:
        """Apply ``fields`` (``None``: delete) to the charger's hash in one script call, after the
        writes still pending for it; kept pending when Redis cannot be reached."""
        pending = self._pending.setdefault(charger_id, {})
        pending.update(fields)
        held = self._held.get(charger_id)
        if held is not None:
            _apply(held, fields)
        await self._flush(charger_id, read_back=read_back)

    async def _flush(self, charger_id: str, *, read_back: bool = False) -> bool:
        """Write the charger's pending patch; whether Redis took it. One charger's patches are
        written one at a time, in the order they were made."""
        lock = self._locks.get(charger_id)
        if lock is None:
            lock = self._locks[charger_id] = [asyncio.Lock(), 0]
        lock[1] += 1
        try:
            async with lock[0]:
                return await self._flush_locked(charger_id, read_back)
        finally:
            lock[1] -= 1
            if lock[1] == 0:
                del self._locks[charger_id]

    async def _flush_locked(self, charger_id: str, read_back: bool) -> bool:
        pending = self._pending.pop(charger_id, None)
        if pending is None:
            return True
        patch = {
            "set": {k: v for k, v in pending.items() if v is not None},
            "del": [k for k, v in pending.items() if v is None],
        }
        try:
            raw = await self._patch(
                keys=[self.keys.state(charger_id), self.keys.route(charger_id)],
                args=[self.node_id, self._route_ttl_ms, json.dumps(patch), "1" if read_back else "0"],
            )
        except BaseException as exc:
            # what was written meanwhile is newer than this patch
            self._pending[charger_id] = {**pending, **self._pending.get(charger_id, {})}
            if not isinstance(exc, RedisError | OSError):
                raise  # cancelled: kept for the next flush
            if not self._unreachable:
                self._unreachable = True
                logger.warning(
                    "charger %s: live state kept on node %s until Redis answers again: %s",
                    charger_id,
                    self.node_id,
                    exc,
                )
            return False
        if read_back and charger_id in self._held:
            fields = _pairs(raw)
            _apply(fields, self._pending.get(charger_id, {}))
            self._held[charger_id] = fields
        if self._unreachable and not self._pending:
            self._unreachable = False
            logger.info("node %s: Redis has taken the live state written while it was away", self.node_id)
        return True

    async def flush_pending(self) -> int:
        """Write what failed to reach Redis; how many chargers are still pending."""
        for charger_id in list(self._pending):
            if not await self._flush(charger_id):
                break
        return len(self._pending)

    async def mark_alive(self) -> None:
        """Renew this node's liveness key."""
        await self._redis.set(
            self.keys.node_alive(self.node_id), "1", px=max(1, round(self.node_ttl_s * 1000))
        )

    async def keep_alive_forever(self) -> None:
        """Renew the liveness key and write pending live state, every third of ``node_ttl_s`` (a task)."""
        while True:
            try:
                await self.mark_alive()
            except RedisError as exc:
                logger.warning("node %s: liveness not renewed: %s", self.node_id, exc)
            await self.flush_pending()
            await asyncio.sleep(self.node_ttl_s / 3)

    async def set_connected(self, charger_id: str, connected: bool, at: datetime) -> None:
        if not connected:
            await self._write(charger_id, {"connected": "0", "last_seen_at": _time(at), "node": _DELETED})
            self._held.pop(charger_id, None)
            return
        self._held[charger_id] = {}
        await self._write(
            charger_id,
            {"connected": "1", "node": self.node_id, "last_seen_at": _time(at)},
            read_back=True,
        )

    async def set_registration(self, charger_id: str, status: RegistrationStatus) -> None:
        await self._write(charger_id, {"registration": status.value})

    async def touch_heartbeat(self, charger_id: str, at: datetime) -> None:
        """Note the heartbeat and renew the route: the charger is alive on this node."""
        await self._write(
            charger_id,
            {
                "connected": "1",
                "node": self.node_id,
                "last_heartbeat_at": _time(at),
                "last_seen_at": _time(at),
            },
        )

    async def set_connector(
        self, charger_id: str, evse_id: int, connector_id: int, state: ConnectorState
    ) -> None:
        document = {
            "status": state.status.value,
            "ocpp_status": state.ocpp_status,
            "error_code": state.error_code,
            "changed_at": _time(state.changed_at),
        }
        await self._write(charger_id, {f"conn:{evse_id}:{connector_id}": json.dumps(document)})

    async def set_active_transaction(self, charger_id: str, evse_id: int, transaction_id: str | None) -> None:
        await self._write(charger_id, {f"tx:{evse_id}": transaction_id})

    async def set_charging_needs(self, needs: ChargingNeeds) -> None:
        document = {
            "requested_energy_transfer": needs.requested_energy_transfer,
            "energy_amount_wh": needs.energy_amount_wh,
            "departure_time": None if needs.departure_time is None else _time(needs.departure_time),
            "ev_max_current_a": needs.ev_max_current_a,
            "ev_max_power_w": needs.ev_max_power_w,
            "received_at": _time(needs.received_at),
        }
        await self._write(needs.charger_id, {f"needs:{needs.evse_id}": json.dumps(document)})

    async def set_driver_needs(self, needs: DriverNeeds) -> None:
        await self._write(needs.charger_id, {f"driver:{needs.evse_id}": json.dumps(to_document(needs))})

    async def set_firmware_status(self, charger_id: str, status: str) -> None:
        await self._write(charger_id, {"firmware_status": status})

    async def set_diagnostics_status(self, charger_id: str, status: str) -> None:
        await self._write(charger_id, {"diagnostics_status": status})

    async def set_charging_limit(self, limit: ChargingLimitSet) -> None:
        field = f"limit:{limit.evse_id}:{limit.source}"
        await self._write(limit.charger_id, {field: json.dumps(to_document(limit))})

    async def clear_charging_limit(self, cleared: ChargingLimitCleared) -> None:
        await self._write(cleared.charger_id, {f"limit:{cleared.evse_id}:{cleared.source}": _DELETED})

    async def get(self, charger_id: str) -> ChargerState | None:
        """The charger's state; a charger whose node died reads as disconnected. While Redis cannot
        be read, a charger connected to this node is answered from this node's copy."""
        try:
            raw = await self._redis.hgetall(self.keys.state(charger_id))
            fields = {_text(k): _text(v) for k, v in raw.items()}
            if fields.get("connected") == "1" and not await self._node_alive(fields.get("node")):
                fields["connected"] = "0"
        except (RedisError, OSError):
            held = self._held.get(charger_id)
            if held is None:
                raise
            return parse_state(charger_id, dict(held))
        _apply(fields, self._pending.get(charger_id, {}))  # what Redis has not taken yet is newer
        if charger_id in self._held:
            self._held[charger_id] = dict(fields)
        if not fields:
            return None
        return parse_state(charger_id, fields)

    async def _node_alive(self, node_id: str | None) -> bool:
        if node_id is None:
            return False
        if node_id == self.node_id:
            return True
        now = time.monotonic()
        cached = self._alive.get(node_id)
        if cached is not None and now - cached[1] < _ALIVE_CACHE_S:
            return cached[0]
        alive = bool(await self._redis.exists(self.keys.node_alive(node_id)))
        self._alive[node_id] = (alive, now)
        return alive

    async def node_of(self, charger_id: str) -> str | None:
        """The node holding the charger's socket per the routing table (``None``: nowhere)."""
        node = await self._redis.get(self.keys.route(charger_id))
        return None if node is None else _text(node)


_ALIVE_CACHE_S = 1.0
"""How long a node's liveness, once read, is taken as known (one EXISTS per node per second)."""


def _apply(fields: dict[str, str], patch: dict[str, str | None]) -> None:
    for field, value in patch.items():
        if value is None:
            fields.pop(field, None)
        else:
            fields[field] = value


def _pairs(raw: Any) -> dict[str, str]:
    items = [_text(v) for v in raw] if isinstance(raw, list) else []
    return dict(zip(items[::2], items[1::2], strict=True))


def parse_state(charger_id: str, fields: dict[str, str]) -> ChargerState:
    """A :class:`ChargerState` from the fields of a charger's hash."""
    connectors: dict[tuple[int, int], ConnectorState] = {}
    active: dict[int, str] = {}
    needs: dict[int, ChargingNeeds] = {}
    limits: dict[tuple[int, str], ChargingLimitSet] = {}
    drivers: dict[int, DriverNeeds] = {}
    for name, value in fields.items():
        kind, _, address = name.partition(":")
        if kind == "conn":
            evse, _, connector = address.partition(":")
            connectors[(int(evse), int(connector))] = _connector(json.loads(value))
        elif kind == "tx":
            active[int(address)] = value
        elif kind == "needs":
            needs[int(address)] = _needs(charger_id, int(address), json.loads(value))
        elif kind == "limit":
            limit = from_document(ChargingLimitSet, json.loads(value))
            limits[(limit.evse_id, limit.source)] = limit
        elif kind == "driver":
            drivers[int(address)] = from_document(DriverNeeds, json.loads(value))
    registration = fields.get("registration")
    return ChargerState(
        charger_id=charger_id,
        connected=fields.get("connected") == "1",
        registration=None if registration is None else RegistrationStatus(registration),
        last_heartbeat_at=_parse_time(fields.get("last_heartbeat_at")),
        last_seen_at=_parse_time(fields.get("last_seen_at")),
        connectors=connectors,
        active_transactions=active,
        charging_needs=needs,
        firmware_status=fields.get("firmware_status"),
        diagnostics_status=fields.get("diagnostics_status"),
        charging_limits=limits,
        driver_needs=drivers,
    )


def _connector(document: dict[str, Any]) -> ConnectorState:
    return ConnectorState(
        status=ConnectorStatus(document["status"]),
        ocpp_status=document["ocpp_status"],
        error_code=document["error_code"],
        changed_at=datetime.fromisoformat(document["changed_at"]),
    )


def _needs(charger_id: str, evse_id: int, document: dict[str, Any]) -> ChargingNeeds:
    return ChargingNeeds(
        charger_id=charger_id,
        evse_id=evse_id,
        requested_energy_transfer=document["requested_energy_transfer"],
        energy_amount_wh=document["energy_amount_wh"],
        departure_time=_parse_time(document["departure_time"]),
        ev_max_current_a=document["ev_max_current_a"],
        ev_max_power_w=document["ev_max_power_w"],
        received_at=datetime.fromisoformat(document["received_at"]),
    )


def _time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
