"""Live state of connected chargers behind a small interface.

The in-process store serves a single node; a Redis implementation of :class:`LiveState` will
replace it for several nodes (``csms.redis_state``), so every method is async and returns copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from csms.domain.events import (
    ChargingLimitCleared,
    ChargingLimitSet,
    ChargingNeeds,
    ConnectorStatus,
    DriverNeeds,
    RegistrationStatus,
)


@dataclass(frozen=True, slots=True)
class ConnectorState:
    status: ConnectorStatus
    ocpp_status: str
    error_code: str | None
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class ChargerState:
    """A snapshot of one charger; connectors keyed by ``(evse_id, connector_id)``, external
    charging limits by ``(evse_id, source)`` (``evse_id`` 0: the whole charger); the EV's and the
    driver's needs by EVSE (the latest of each, whichever transaction they name)."""

    charger_id: str
    connected: bool = False
    registration: RegistrationStatus | None = None
    last_heartbeat_at: datetime | None = None
    last_seen_at: datetime | None = None
    connectors: dict[tuple[int, int], ConnectorState] = field(default_factory=dict)
    active_transactions: dict[int, str] = field(default_factory=dict)
    charging_needs: dict[int, ChargingNeeds] = field(default_factory=dict)
    firmware_status: str | None = None
    diagnostics_status: str | None = None
    charging_limits: dict[tuple[int, str], ChargingLimitSet] = field(default_factory=dict)
    driver_needs: dict[int, DriverNeeds] = field(default_factory=dict)


class LiveState(Protocol):
    """Fast-changing per-charger state; every method is a single atomic update or read."""

    async def set_connected(self, charger_id: str, connected: bool, at: datetime) -> None: ...

    async def set_registration(self, charger_id: str, status: RegistrationStatus) -> None: ...

    async def touch_heartbeat(self, charger_id: str, at: datetime) -> None: ...

    async def set_connector(
        self, charger_id: str, evse_id: int, connector_id: int, state: ConnectorState
    ) -> None: ...

    async def set_active_transaction(
        self, charger_id: str, evse_id: int, transaction_id: str | None
    ) -> None: ...

    async def set_charging_needs(self, needs: ChargingNeeds) -> None: ...

    async def set_driver_needs(self, needs: DriverNeeds) -> None:
        """Keep what the driver asked for on ``needs.evse_id``, replacing what was kept there."""
        ...

    async def set_firmware_status(self, charger_id: str, status: str) -> None: ...

    async def set_diagnostics_status(self, charger_id: str, status: str) -> None: ...

    async def set_charging_limit(self, limit: ChargingLimitSet) -> None:
        """Keep ``limit``, replacing the one its source set on the same EVSE before."""
        ...

    async def clear_charging_limit(self, cleared: ChargingLimitCleared) -> None:
        """Forget the limit ``cleared.source`` set on ``cleared.evse_id``."""
        ...

    async def get(self, charger_id: str) -> ChargerState | None: ...


class InProcessLiveState:
    """:class:`LiveState` in a dict, for a single node."""

    def __init__(self) -> None:
        self._chargers: dict[str, ChargerState] = {}

    def _current(self, charger_id: str) -> ChargerState:
        return self._chargers.get(charger_id) or ChargerState(charger_id)

    async def set_connected(self, charger_id: str, connected: bool, at: datetime) -> None:
        self._chargers[charger_id] = replace(self._current(charger_id), connected=connected, last_seen_at=at)

    async def set_registration(self, charger_id: str, status: RegistrationStatus) -> None:
        self._chargers[charger_id] = replace(self._current(charger_id), registration=status)

    async def touch_heartbeat(self, charger_id: str, at: datetime) -> None:
        self._chargers[charger_id] = replace(self._current(charger_id), last_heartbeat_at=at, last_seen_at=at)

    async def set_connector(
        self, charger_id: str, evse_id: int, connector_id: int, state: ConnectorState
    ) -> None:
        current = self._current(charger_id)
        connectors = {**current.connectors, (evse_id, connector_id): state}
        self._chargers[charger_id] = replace(current, connectors=connectors)

    async def set_active_transaction(self, charger_id: str, evse_id: int, transaction_id: str | None) -> None:
        current = self._current(charger_id)
        active = dict(current.active_transactions)
        if transaction_id is None:
            active.pop(evse_id, None)
        else:
            active[evse_id] = transaction_id
        self._chargers[charger_id] = replace(current, active_transactions=active)

    async def set_charging_needs(self, needs: ChargingNeeds) -> None:
        current = self._current(needs.charger_id)
        self._chargers[needs.charger_id] = replace(
            current, charging_needs={**current.charging_needs, needs.evse_id: needs}
        )

    async def set_driver_needs(self, needs: DriverNeeds) -> None:
        current = self._current(needs.charger_id)
        self._chargers[needs.charger_id] = replace(
            current, driver_needs={**current.driver_needs, needs.evse_id: needs}
        )

    async def set_firmware_status(self, charger_id: str, status: str) -> None:
        self._chargers[charger_id] = replace(self._current(charger_id), firmware_status=status)

    async def set_diagnostics_status(self, charger_id: str, status: str) -> None:
        self._chargers[charger_id] = replace(self._current(charger_id), diagnostics_status=status)

    async def set_charging_limit(self, limit: ChargingLimitSet) -> None:
        current = self._current(limit.charger_id)
        limits = {**current.charging_limits, (limit.evse_id, limit.source): limit}
        self._chargers[limit.charger_id] = replace(current, charging_limits=limits)

    async def clear_charging_limit(self, cleared: ChargingLimitCleared) -> None:
        current = self._current(cleared.charger_id)
        limits = dict(current.charging_limits)
        limits.pop((cleared.evse_id, cleared.source), None)
        self._chargers[cleared.charger_id] = replace(current, charging_limits=limits)

    async def get(self, charger_id: str) -> ChargerState | None:
        state = self._chargers.get(charger_id)
        return None if state is None else replace(state)
