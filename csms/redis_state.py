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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

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

DEFAULT_KEY_PREFIX = "fairwatt:csms:"

# Mark a charger disconnected only if this node still holds it: a charger that has already
# reconnected to another node must not be marked disconnected by the old node's late cleanup.
_DISCONNECT_SCRIPT = """
local node = redis.call('HGET', KEYS[1], 'node')
if node and node ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'connected', '0', 'last_seen_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'node')
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 1
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

    def commands(self, node_id: str) -> str:
        """The channel a node reads commands for its chargers from."""
        return f"{self.prefix}node:{node_id}:commands"

    def replies(self, node_id: str) -> str:
        """The channel a node reads the answers to its forwarded commands from."""
        return f"{self.prefix}node:{node_id}:replies"


class RedisLiveState:
    """:class:`csms.live_state.LiveState` in Redis, written by the node ``node_id``.

    ``route_ttl_s`` [s] is how long a route entry lives without being renewed.
    """

    def __init__(
        self, redis: Redis, node_id: str, *, keys: RedisKeys | None = None, route_ttl_s: float = 300.0
    ) -> None:
        self._redis = redis
        self.node_id = node_id
        self.keys = keys or RedisKeys()
        self._route_ttl_ms = max(1, round(route_ttl_s * 1000))
        self._disconnect = redis.register_script(_DISCONNECT_SCRIPT)

    async def set_connected(self, charger_id: str, connected: bool, at: datetime) -> None:
        if not connected:
            await self._disconnect(
                keys=[self.keys.state(charger_id), self.keys.route(charger_id)],
                args=[self.node_id, _time(at)],
            )
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(
                self.keys.state(charger_id),
                mapping={"connected": "1", "node": self.node_id, "last_seen_at": _time(at)},
            )
            pipe.set(self.keys.route(charger_id), self.node_id, px=self._route_ttl_ms)
            await pipe.execute()

    async def set_registration(self, charger_id: str, status: RegistrationStatus) -> None:
        await self._redis.hset(self.keys.state(charger_id), "registration", status.value)

    async def touch_heartbeat(self, charger_id: str, at: datetime) -> None:
        """Note the heartbeat and renew the route: the charger is alive on this node."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(
                self.keys.state(charger_id),
                mapping={
                    "connected": "1",
                    "node": self.node_id,
                    "last_heartbeat_at": _time(at),
                    "last_seen_at": _time(at),
                },
            )
            pipe.set(self.keys.route(charger_id), self.node_id, px=self._route_ttl_ms)
            await pipe.execute()

    async def set_connector(
        self, charger_id: str, evse_id: int, connector_id: int, state: ConnectorState
    ) -> None:
        document = {
            "status": state.status.value,
            "ocpp_status": state.ocpp_status,
            "error_code": state.error_code,
            "changed_at": _time(state.changed_at),
        }
        await self._redis.hset(
            self.keys.state(charger_id), f"conn:{evse_id}:{connector_id}", json.dumps(document)
        )

    async def set_active_transaction(self, charger_id: str, evse_id: int, transaction_id: str | None) -> None:
        if transaction_id is None:
            await self._redis.hdel(self.keys.state(charger_id), f"tx:{evse_id}")
        else:
            await self._redis.hset(self.keys.state(charger_id), f"tx:{evse_id}", transaction_id)

    async def set_charging_needs(self, needs: ChargingNeeds) -> None:
        document = {
            "requested_energy_transfer": needs.requested_energy_transfer,
            "energy_amount_wh": needs.energy_amount_wh,
            "departure_time": None if needs.departure_time is None else _time(needs.departure_time),
            "ev_max_current_a": needs.ev_max_current_a,
            "ev_max_power_w": needs.ev_max_power_w,
            "received_at": _time(needs.received_at),
        }
        await self._redis.hset(
            self.keys.state(needs.charger_id), f"needs:{needs.evse_id}", json.dumps(document)
        )

    async def set_driver_needs(self, needs: DriverNeeds) -> None:
        field = f"driver:{needs.evse_id}"
        await self._redis.hset(self.keys.state(needs.charger_id), field, json.dumps(to_document(needs)))

    async def set_firmware_status(self, charger_id: str, status: str) -> None:
        await self._redis.hset(self.keys.state(charger_id), "firmware_status", status)

    async def set_diagnostics_status(self, charger_id: str, status: str) -> None:
        await self._redis.hset(self.keys.state(charger_id), "diagnostics_status", status)

    async def set_charging_limit(self, limit: ChargingLimitSet) -> None:
        field = f"limit:{limit.evse_id}:{limit.source}"
        await self._redis.hset(self.keys.state(limit.charger_id), field, json.dumps(to_document(limit)))

    async def clear_charging_limit(self, cleared: ChargingLimitCleared) -> None:
        field = f"limit:{cleared.evse_id}:{cleared.source}"
        await self._redis.hdel(self.keys.state(cleared.charger_id), field)

    async def get(self, charger_id: str) -> ChargerState | None:
        raw = await self._redis.hgetall(self.keys.state(charger_id))
        if not raw:
            return None
        return parse_state(charger_id, {_text(k): _text(v) for k, v in raw.items()})

    async def node_of(self, charger_id: str) -> str | None:
        """The node holding the charger's socket per the routing table (``None``: nowhere)."""
        node = await self._redis.get(self.keys.route(charger_id))
        return None if node is None else _text(node)


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
