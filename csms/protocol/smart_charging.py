"""Smart charging messages from the charger (2.0.1): NotifyEVChargingNeeds (K15), external limits
set and cleared (NotifyChargingLimit, ClearedChargingLimit: K11-K13), the EV's own schedule
(NotifyEVChargingSchedule: K15/K16) and the profiles it reports (ReportChargingProfiles: K09).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from csms.domain.events import (
    ChargingLimitCleared,
    ChargingLimitSet,
    ChargingNeeds,
    LimitPeriod,
    LimitSchedule,
)
from csms.domain.service import ChargingService
from csms.protocol.convert import optional_float, optional_timestamp, parse_timestamp
from csms.protocol.router import IncomingCall, handles

logger = logging.getLogger(__name__)


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
                ev_max_current_a=optional_float(parameters.get("evMaxCurrent")),
                ev_max_power_w=optional_float(dc.get("evMaxPower")) if dc else None,
                received_at=call.received_at,
            )
        )
        # The needs go to live state and the smart-charging loop; its Tx profile follows the answer.
        return {"status": "Processing"}

    @handles("NotifyChargingLimit")
    async def notify_charging_limit(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        limit = p["chargingLimit"]
        await self._service.charging_limit_set(
            ChargingLimitSet(
                charger_id=call.charger_id,
                evse_id=int(p.get("evseId", 0)),  # none: the limit is on the whole charger
                source=str(limit["chargingLimitSource"]),
                grid_critical=limit.get("isGridCritical"),
                schedules=tuple(
                    limit_schedule(schedule, call.received_at) for schedule in p.get("chargingSchedule", ())
                ),
                at=call.received_at,
            )
        )
        return {}

    @handles("ClearedChargingLimit")
    async def cleared_charging_limit(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        await self._service.charging_limit_cleared(
            ChargingLimitCleared(
                call.charger_id, int(p.get("evseId", 0)), str(p["chargingLimitSource"]), call.received_at
            )
        )
        return {}

    @handles("NotifyEVChargingSchedule")
    async def notify_ev_charging_schedule(self, call: IncomingCall) -> dict[str, Any]:
        # The station checked that the EV's schedule keeps within our profile before sending it
        # (K16.FR.04). Our own check (K16.FR.06/07: Rejected when it does not) is not done: the
        # profile the EVSE holds is known to the planning node's loop only. The message log keeps it.
        p = call.payload
        schedule = p["chargingSchedule"]
        logger.info(
            "charger %s: EV on EVSE %d plans %d periods in %s",
            call.charger_id,
            p["evseId"],
            len(schedule["chargingSchedulePeriod"]),
            schedule["chargingRateUnit"],
        )
        return {"status": "Accepted"}

    @handles("ReportChargingProfiles")
    async def report_charging_profiles(self, call: IncomingCall) -> dict[str, Any]:
        # The answer to our GetChargingProfiles, one message per EVSE and source: the message log keeps it.
        p = call.payload
        logger.info(
            "charger %s: charging profiles report %d: %d from %s on EVSE %d%s",
            call.charger_id,
            p["requestId"],
            len(p["chargingProfile"]),
            p["chargingLimitSource"],
            p["evseId"],
            ", more to follow" if p.get("tbc") else "",
        )
        return {}


def limit_schedule(data: dict[str, Any], received_at: datetime) -> LimitSchedule:
    """A ``ChargingScheduleType`` in absolute time; without ``startSchedule`` it starts when received."""
    start = parse_timestamp(data["startSchedule"]) if "startSchedule" in data else received_at
    periods = sorted(data["chargingSchedulePeriod"], key=lambda period: int(period["startPeriod"]))
    duration_s = data.get("duration")
    return LimitSchedule(
        schedule_id=int(data["id"]),
        rate_unit=str(data["chargingRateUnit"]),
        periods=tuple(
            LimitPeriod(
                start=start + timedelta(seconds=int(period["startPeriod"])),
                limit=float(period["limit"]),
                number_phases=period.get("numberPhases"),
            )
            for period in periods
        ),
        end=None if duration_s is None else start + timedelta(seconds=int(duration_s)),
    )
