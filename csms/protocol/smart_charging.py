"""Smart charging requests from the charger: NotifyEVChargingNeeds (2.0.1)."""

from __future__ import annotations

from typing import Any

from csms.domain.events import ChargingNeeds
from csms.domain.service import ChargingService
from csms.protocol.convert import optional_timestamp
from csms.protocol.router import IncomingCall, handles


class SmartChargingV201:
    def __init__(self, service: ChargingService) -> None:
        self._service = service

    @handles("NotifyEVChargingNeeds")
    async def notify_ev_charging_needs(self, call: IncomingCall) -> dict[str, Any]:
        needs = call.payload["chargingNeeds"]
        ac = needs.get("acChargingParameters")
        dc = needs.get("dcChargingParameters")
        parameters = ac or dc or {}
        energy_amount_wh = parameters.get("energyAmount")
        await self._service.charging_needs(
            ChargingNeeds(
                charger_id=call.charger_id,
                evse_id=call.payload["evseId"],
                requested_energy_transfer=needs["requestedEnergyTransfer"],
                energy_amount_wh=None if energy_amount_wh is None else float(energy_amount_wh),
                departure_time=optional_timestamp(needs.get("departureTime")),
                ev_max_current_a=_optional_float(parameters.get("evMaxCurrent")),
                ev_max_power_w=_optional_float(dc.get("evMaxPower")) if dc else None,
                received_at=call.received_at,
            )
        )
        # The needs go to live state and the smart-charging loop; its Tx profile follows the answer.
        return {"status": "Processing"}


def _optional_float(value: object) -> float | None:
    return None if value is None else float(str(value))
