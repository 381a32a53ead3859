"""ReservationStatusUpdate (2.0.1): a charger ends a reservation itself (it expired or was removed)."""

from __future__ import annotations

from typing import Any

from csms.domain.events import ReservationStatusChanged
from csms.domain.service import ChargingService
from csms.protocol.router import IncomingCall, handles


class ReservationsV201:
    def __init__(self, service: ChargingService) -> None:
        self._service = service

    @handles("ReservationStatusUpdate")
    async def reservation_status_update(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        await self._service.reservation_status(
            ReservationStatusChanged(
                call.charger_id, int(p["reservationId"]), str(p["reservationUpdateStatus"]), call.received_at
            )
        )
        return {}
