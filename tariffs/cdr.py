"""What the engine prices and what it returns: a session as OCPI charging periods, and CDR totals.

A session is a list of charging periods (OCPI ``CdrChargingPeriod``): each starts at an instant
(UTC) and lasts until the next one starts (the last one until the session ends), and carries
measured dimensions (``ENERGY`` kWh, ``TIME``/``PARKING_TIME``/``RESERVATION_TIME`` hours,
``MIN_CURRENT``/``MAX_CURRENT``/``CURRENT`` A, ``MIN_POWER``/``MAX_POWER``/``POWER`` kW, ...).
The totals are exact ``Decimal`` amounts; round them with ``tariffs.money`` when they leave
the core (``tariffs.ocpi.cdr_totals_to_ocpi`` does).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from tariffs.errors import TariffError
from tariffs.model import DimensionType, PriceComponent


def seconds(delta: timedelta) -> Decimal:
    """A timedelta as exact decimal seconds."""
    whole = delta.days * 86400 + delta.seconds
    return Decimal(whole) + Decimal(delta.microseconds) / Decimal(1_000_000)


class CdrDimension(enum.Enum):
    """OCPI ``CdrDimensionType``: what a charging period measured."""

    CURRENT = "CURRENT"
    ENERGY = "ENERGY"
    ENERGY_EXPORT = "ENERGY_EXPORT"
    ENERGY_IMPORT = "ENERGY_IMPORT"
    MAX_CURRENT = "MAX_CURRENT"
    MIN_CURRENT = "MIN_CURRENT"
    MAX_POWER = "MAX_POWER"
    MIN_POWER = "MIN_POWER"
    PARKING_TIME = "PARKING_TIME"
    POWER = "POWER"
    RESERVATION_TIME = "RESERVATION_TIME"
    STATE_OF_CHARGE = "STATE_OF_CHARGE"
    TIME = "TIME"


def _frozen(dimensions: Mapping[CdrDimension, Decimal]) -> Mapping[CdrDimension, Decimal]:
    return MappingProxyType(dict(dimensions))


@dataclass(frozen=True)
class ChargingPeriod:
    """One period of a session: from ``start_utc`` until the next period (or the session end)."""

    start_utc: datetime
    dimensions: Mapping[CdrDimension, Decimal] = field(default_factory=dict)
    tariff_id: str | None = None

    def __post_init__(self) -> None:
        if self.start_utc.utcoffset() is None:
            raise TariffError(f"charging period start must be tz-aware UTC, got {self.start_utc}")
        for dimension, volume in self.dimensions.items():
            if volume < 0 and dimension is not CdrDimension.ENERGY_EXPORT:
                raise TariffError(f"{dimension.value} volume cannot be negative: {volume}")
        object.__setattr__(self, "dimensions", _frozen(self.dimensions))

    def volume(self, dimension: CdrDimension) -> Decimal | None:
        return self.dimensions.get(dimension)


@dataclass(frozen=True)
class Session:
    """A charging session as charging periods; ``end_utc`` None means still running."""

    start_utc: datetime
    charging_periods: tuple[ChargingPeriod, ...]
    end_utc: datetime | None = None

    def __post_init__(self) -> None:
        if self.start_utc.utcoffset() is None or (
            self.end_utc is not None and self.end_utc.utcoffset() is None
        ):
            raise TariffError("session start and end must be tz-aware UTC")
        if self.end_utc is not None and self.end_utc < self.start_utc:
            raise TariffError(f"session ends ({self.end_utc}) before it starts ({self.start_utc})")
        starts = [period.start_utc for period in self.charging_periods]
        if starts != sorted(starts):
            raise TariffError("charging periods must be in chronological order")


@dataclass(frozen=True)
class PricedLine:
    """One priced dimension of one charging period (``period_index`` -1: the session as a whole).

    ``measured`` and ``billed`` are in the dimension's unit (kWh, hours, 1 for FLAT); ``billed``
    includes the step_size rounding, which OCPI adds to the last priced period of a dimension.
    """

    period_index: int
    period_start_utc: datetime
    dimension: DimensionType
    component: PriceComponent
    measured: Decimal
    billed: Decimal
    cost_excl_vat: Decimal
    cost_incl_vat: Decimal
    reservation: bool = False


@dataclass(frozen=True)
class CostPart:
    """A sub-total excl. and incl. VAT (exact)."""

    excl_vat: Decimal = Decimal(0)
    incl_vat: Decimal = Decimal(0)

    def __add__(self, other: CostPart) -> CostPart:
        return CostPart(self.excl_vat + other.excl_vat, self.incl_vat + other.incl_vat)


@dataclass(frozen=True)
class CdrTotals:
    """The OCPI CDR totals of a priced session (exact amounts in ``currency``; quantities in kWh/h).

    ``total_cost`` includes the min/max price adjustment; the parts do not (OCPI does not say
    how to attribute it), so the parts may not add up to the total when a bound applied.
    """

    currency: str
    total_cost: CostPart
    total_fixed_cost: CostPart
    total_energy_cost: CostPart
    total_time_cost: CostPart
    total_parking_cost: CostPart
    total_reservation_cost: CostPart
    total_energy_kwh: Decimal
    total_time_h: Decimal
    total_parking_time_h: Decimal
    total_reservation_time_h: Decimal
    start_utc: datetime
    end_utc: datetime
    charging_periods: tuple[ChargingPeriod, ...]
    lines: tuple[PricedLine, ...]
    min_price_applied: bool = False
    max_price_applied: bool = False
    warnings: tuple[str, ...] = ()

    def billed(self, dimension: DimensionType) -> Decimal:
        """The billed quantity of ``dimension`` (after step_size), excluding reservation lines."""
        return sum(
            (line.billed for line in self.lines if line.dimension is dimension and not line.reservation),
            Decimal(0),
        )
