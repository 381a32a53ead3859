"""Smart charging messages from the charger (2.0.1): NotifyEVChargingNeeds (K15), external limits
set and cleared (NotifyChargingLimit, ClearedChargingLimit: K11-K13), the EV's own schedule
(NotifyEVChargingSchedule: K15/K16) and the profiles it reports (ReportChargingProfiles: K09).
"""

from __future__ import annotations

import logging
from dataclasses import replace
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
        # The answer to our GetChargingProfiles, one message per EVSE and source (the message log
        # keeps it). Profiles set from outside (EMS, SO, Other) are external limits: after our
        # restart this is how the loop learns the limits the charger told of before.
        p = call.payload
        source = str(p["chargingLimitSource"])
        logger.info(
            "charger %s: charging profiles report %d: %d from %s on EVSE %d%s",
            call.charger_id,
            p["requestId"],
            len(p["chargingProfile"]),
            source,
            p["evseId"],
            ", more to follow" if p.get("tbc") else "",
        )
        if source != "CSO":
            schedules = tuple(
                schedule
                for profile in p["chargingProfile"]
                for schedule in profile_schedules(profile, call.received_at)
            )
            await self._service.charging_limit_set(
                ChargingLimitSet(call.charger_id, int(p["evseId"]), source, None, schedules, call.received_at)
            )
        return {}


_RECURRENCE = {"Daily": timedelta(days=1), "Weekly": timedelta(days=7)}


def profile_schedules(profile: dict[str, Any], received_at: datetime) -> tuple[LimitSchedule, ...]:
    """A reported ``ChargingProfileType``'s schedules in absolute time, within its validity.

    A Relative schedule runs from the transaction's start, unknown here: it is taken from
    ``received_at`` on. A Recurring one is laid out from its latest start at or before
    ``received_at``, twice (a day or a week ahead covers any planning horizon).
    """
    valid_from = optional_timestamp(profile.get("validFrom"))
    valid_to = optional_timestamp(profile.get("validTo"))
    if valid_to is not None and valid_to <= received_at:
        return ()
    kind = str(profile["chargingProfileKind"])
    every = _RECURRENCE.get(str(profile.get("recurrencyKind"))) if kind == "Recurring" else None
    found: list[LimitSchedule] = []
    for data in profile["chargingSchedule"]:
        if kind == "Relative" or "startSchedule" not in data:
            starts = [received_at]
        else:
            start = parse_timestamp(data["startSchedule"])
            if every is not None:
                if start <= received_at:
                    start += every * ((received_at - start) // every)
                starts = [start, start + every]
            else:
                starts = [start]
        for start in starts:
            schedule = schedule_from(data, start)
            if every is not None:
                end = start + every if schedule.end is None else min(schedule.end, start + every)
                schedule = replace(schedule, end=end)
            clipped = _within(schedule, valid_from, valid_to)
            if clipped is not None:
                found.append(clipped)
    return tuple(found)


def _within(
    schedule: LimitSchedule, valid_from: datetime | None, valid_to: datetime | None
) -> LimitSchedule | None:
    """``schedule`` cut to ``[valid_from, valid_to)``; ``None`` when nothing of it is left."""
    periods = list(schedule.periods)
    if valid_from is not None:
        before = [p for p in periods if p.start <= valid_from]
        periods = [replace(before[-1], start=valid_from)] if before else []
        periods += [p for p in schedule.periods if p.start > valid_from]
    end = schedule.end
    if valid_to is not None:
        end = valid_to if end is None else min(end, valid_to)
    periods = [p for p in periods if end is None or p.start < end]
    return replace(schedule, periods=tuple(periods), end=end) if periods else None


def limit_schedule(data: dict[str, Any], received_at: datetime) -> LimitSchedule:
    """A ``ChargingScheduleType`` in absolute time; without ``startSchedule`` it starts when received."""
    start = parse_timestamp(data["startSchedule"]) if "startSchedule" in data else received_at
    return schedule_from(data, start)


def schedule_from(data: dict[str, Any], start: datetime) -> LimitSchedule:
    """A ``ChargingScheduleType`` laid out from ``start`` (its own ``startSchedule`` ignored)."""
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
