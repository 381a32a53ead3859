"""Simulated chargers that also take ReserveNow and CancelReservation (``ocpp`` package), and
helpers to put chargers where nearby search finds them."""

from __future__ import annotations

import asyncio
from typing import Any

from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.storage.chargers import ChargerRecord, ConnectorSpec
from tests.csms.chargers import Charger16, Charger201
from tests.sessions.conftest import RunningApi

WAIT_S = 10.0


class Reserving16(Charger16):
    """A 1.6 charger answering ReserveNow with ``reserve_answer`` (Accepted unless told)."""

    def __init__(self, charger_id: str, connection: Any) -> None:
        super().__init__(charger_id, connection)
        self.reserve_answer = "Accepted"

    @on(Action16.reserve_now)
    async def on_reserve_now(self, **request: Any) -> Any:
        await self.received.put(("ReserveNow", request))
        return result16.ReserveNow(status=self.reserve_answer)

    @on(Action16.cancel_reservation)
    async def on_cancel_reservation(self, **request: Any) -> Any:
        await self.received.put(("CancelReservation", request))
        return result16.CancelReservation(status="Accepted")


class Reserving201(Charger201):
    """A 2.0.1 charger accepting ReserveNow and CancelReservation."""

    @on(Action201.reserve_now)
    async def on_reserve_now(self, **request: Any) -> Any:
        await self.received.put(("ReserveNow", request))
        return result201.ReserveNow(status="Accepted")

    @on(Action201.cancel_reservation)
    async def on_cancel_reservation(self, **request: Any) -> Any:
        await self.received.put(("CancelReservation", request))
        return result201.CancelReservation(status="Accepted")


async def next_request(charger: Any, action: str) -> dict[str, Any]:
    """The next CSMS request of ``action`` the charger received (others are skipped)."""
    while True:
        name, request = await asyncio.wait_for(charger.received.get(), WAIT_S)
        if name == action:
            return dict(request)


async def place_charger(
    api: RunningApi,
    charger_id: str,
    latitude_deg: float,
    longitude_deg: float,
    *,
    connectors: tuple[tuple[int, str, float], ...] = ((1, "Type2", 22.0),),
) -> None:
    """Register a charger at a position and make the index read it (as its poll would)."""
    specs = tuple(ConnectorSpec(evse, 1, kind, power) for evse, kind, power in connectors)
    await api.csms.chargers.save(
        ChargerRecord(
            charger_id=charger_id, latitude_deg=latitude_deg, longitude_deg=longitude_deg, connectors=specs
        )
    )
    assert api.sessions.nearby is not None
    await api.sessions.nearby.loaded.wait()
    await api.sessions.nearby.apply_registry_changes()


async def report_status(charger: Any, connector_id: int, status: str) -> None:
    await charger.call(
        call16.StatusNotification(connector_id=connector_id, error_code="NoError", status=status),
        suppress=False,
    )
