"""A charging profile in one shape, written out as 1.6 ``csChargingProfiles`` or 2.0.1 ``chargingProfile``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from csms.protocol.convert import format_timestamp


class ProfilePurpose(Enum):
    STATION_MAX = "station_max"
    """ChargePointMaxProfile (1.6) / ChargingStationMaxProfile (2.0.1)."""
    TX_DEFAULT = "tx_default"
    TX = "tx"

    def ocpp_name(self, v16: bool) -> str:
        if self is ProfilePurpose.STATION_MAX:
            return "ChargePointMaxProfile" if v16 else "ChargingStationMaxProfile"
        return "TxDefaultProfile" if self is ProfilePurpose.TX_DEFAULT else "TxProfile"


class ProfileKind(Enum):
    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    """A limit from ``start_s`` [s after the schedule start]; ``limit`` in the profile's rate unit."""

    start_s: int
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """A charging profile; ``rate_unit`` is ``"W"`` or ``"A"``."""

    profile_id: int
    stack_level: int
    purpose: ProfilePurpose
    kind: ProfileKind
    rate_unit: str
    periods: tuple[SchedulePeriod, ...]
    start_schedule: datetime | None = None
    duration_s: int | None = None
    transaction_id: str | None = None
    recurrency_kind: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    min_charging_rate: float | None = None

    def _schedule(self) -> dict[str, Any]:
        schedule: dict[str, Any] = {
            "chargingRateUnit": self.rate_unit,
            "chargingSchedulePeriod": [_period(p) for p in self.periods],
        }
        if self.duration_s is not None:
            schedule["duration"] = self.duration_s
        if self.start_schedule is not None:
            schedule["startSchedule"] = format_timestamp(self.start_schedule)
        if self.min_charging_rate is not None:
            schedule["minChargingRate"] = round(self.min_charging_rate, 1)
        return schedule

    def _common(self, v16: bool) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "stackLevel": self.stack_level,
            "chargingProfilePurpose": self.purpose.ocpp_name(v16),
            "chargingProfileKind": self.kind.value,
        }
        if self.recurrency_kind is not None:
            profile["recurrencyKind"] = self.recurrency_kind
        if self.valid_from is not None:
            profile["validFrom"] = format_timestamp(self.valid_from)
        if self.valid_to is not None:
            profile["validTo"] = format_timestamp(self.valid_to)
        return profile

    def to_v16(self) -> dict[str, Any]:
        """1.6 ``ChargingProfile`` (transaction id as integer)."""
        profile = {
            "chargingProfileId": self.profile_id,
            **self._common(True),
            "chargingSchedule": self._schedule(),
        }
        if self.transaction_id is not None:
            profile["transactionId"] = int(self.transaction_id)
        return profile

    def to_v201(self) -> dict[str, Any]:
        """2.0.1 ``ChargingProfileType`` (one schedule whose id is the profile id)."""
        profile = {
            "id": self.profile_id,
            **self._common(False),
            "chargingSchedule": [{"id": self.profile_id, **self._schedule()}],
        }
        if self.transaction_id is not None:
            profile["transactionId"] = self.transaction_id
        return profile


def _period(period: SchedulePeriod) -> dict[str, Any]:
    entry: dict[str, Any] = {"startPeriod": period.start_s, "limit": round(period.limit, 1)}
    if period.number_phases is not None:
        entry["numberPhases"] = period.number_phases
    return entry
