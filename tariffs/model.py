"""The tariff model: what an operator sells, as frozen data (mirrors OCPI 2.2.1 ``Tariff``).

Units are in the names: ``price`` of a component is per unit of its dimension, excl. VAT
(``ENERGY`` per kWh, ``TIME``/``PARKING_TIME`` per hour, ``FLAT`` per session); ``step_size`` is
in Wh for ``ENERGY`` and in seconds for the time dimensions, as OCPI defines it. Instants are
tz-aware UTC; times of day and dates in restrictions are local to the charging location.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal

from tariffs.errors import TariffError, TariffNotInForceError


class DimensionType(enum.Enum):
    """What a price component prices (OCPI ``TariffDimensionType``)."""

    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class DayOfWeek(enum.Enum):
    """OCPI ``DayOfWeek``; ``index`` is ``datetime.weekday()`` (Monday is 0)."""

    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"

    @property
    def index(self) -> int:
        return list(DayOfWeek).index(self)

    @classmethod
    def of(cls, day: date) -> DayOfWeek:
        return list(cls)[day.weekday()]


class ReservationRestriction(enum.Enum):
    """OCPI ``ReservationRestrictionType``: the element prices a reservation (kept or expired)."""

    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class TariffType(enum.Enum):
    """OCPI ``TariffType``: which sessions a tariff is meant for (informative for pricing)."""

    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


@dataclass(frozen=True)
class Price:
    """An amount of money excl. and (optionally) incl. VAT, in the tariff's currency."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None

    def __post_init__(self) -> None:
        if self.excl_vat < 0 or (self.incl_vat is not None and self.incl_vat < 0):
            raise TariffError(f"a price cannot be negative: {self.excl_vat} / {self.incl_vat}")


@dataclass(frozen=True)
class PriceComponent:
    """How consuming one dimension turns into money: ``price`` per unit excl. VAT.

    ``vat_percent`` None means no VAT applies (OCPI: different from 0 %). ``step_size`` is the
    billing block in Wh (ENERGY) or seconds (TIME, PARKING_TIME); ignored for FLAT.
    """

    dimension: DimensionType
    price: Decimal
    step_size: int = 1
    vat_percent: Decimal | None = None

    def __post_init__(self) -> None:
        if self.price < 0:
            raise TariffError(f"{self.dimension.value} price cannot be negative: {self.price}")
        if self.step_size < 0:
            raise TariffError(f"{self.dimension.value} step_size cannot be negative: {self.step_size}")
        if self.vat_percent is not None and self.vat_percent < 0:
            raise TariffError(f"{self.dimension.value} VAT cannot be negative: {self.vat_percent}")


@dataclass(frozen=True)
class Restrictions:
    """When a tariff element is active (all set fields must hold: a logical AND).

    Times of day and dates are local. ``end_time`` before ``start_time`` wraps past midnight;
    ``end_time`` 00:00 means the end of the day. ``end_date`` is exclusive. ``min_*`` bounds are
    inclusive, ``max_*`` exclusive. Energy is what was consumed before the period starts,
    duration is seconds since the charging session started (after a reservation that opens
    it), current (sum over phases) and power are the period's own values.
    """

    start_time: time | None = None
    end_time: time | None = None
    start_date: date | None = None
    end_date: date | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current_a: Decimal | None = None
    max_current_a: Decimal | None = None
    min_power_kw: Decimal | None = None
    max_power_kw: Decimal | None = None
    min_duration_s: int | None = None
    max_duration_s: int | None = None
    days_of_week: frozenset[DayOfWeek] = frozenset()
    reservation: ReservationRestriction | None = None


@dataclass(frozen=True)
class TariffElement:
    """Price components sharing one set of restrictions (None: always active)."""

    price_components: tuple[PriceComponent, ...]
    restrictions: Restrictions | None = None

    def __post_init__(self) -> None:
        if not self.price_components:
            raise TariffError("a tariff element needs at least one price component")

    def component(self, dimension: DimensionType) -> PriceComponent | None:
        """The first component of ``dimension`` in this element, if any."""
        for component in self.price_components:
            if component.dimension is dimension:
                return component
        return None


@dataclass(frozen=True)
class DisplayText:
    """A text for drivers in one language (ISO 639-1)."""

    language: str
    text: str


@dataclass(frozen=True)
class Tariff:
    """A versioned tariff: one OCPI ``Tariff`` object.

    ``start_date_time``/``end_date_time`` (UTC, end exclusive) bound the version's validity;
    ``min_price``/``max_price`` bound the session cost (excl. and incl. VAT independently).
    """

    tariff_id: str
    currency: str
    elements: tuple[TariffElement, ...]
    country_code: str | None = None
    party_id: str | None = None
    last_updated: datetime | None = None
    tariff_type: TariffType | None = None
    alt_text: tuple[DisplayText, ...] = ()
    alt_url: str | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None

    def __post_init__(self) -> None:
        for instant in (self.last_updated, self.start_date_time, self.end_date_time):
            if instant is not None and instant.utcoffset() is None:
                raise TariffError(f"tariff {self.tariff_id}: instants must be tz-aware UTC, got {instant}")
        if len(self.currency) != 3:
            raise TariffError(
                f"tariff {self.tariff_id}: currency must be an ISO 4217 code, got {self.currency!r}"
            )

    def in_force_at(self, when_utc: datetime) -> bool:
        """Whether this version is valid at ``when_utc`` (start inclusive, end exclusive)."""
        if self.start_date_time is not None and when_utc < self.start_date_time:
            return False
        return self.end_date_time is None or when_utc < self.end_date_time


@dataclass(frozen=True)
class TariffVersions:
    """All versions of one tariff; a session is priced with the version in force when it started.

    Among the versions in force at an instant, the one that started latest wins (ties: the most
    recently updated), so publishing a new version with a later ``start_date_time`` supersedes
    the old one from that instant on without editing it.
    """

    versions: tuple[Tariff, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, versions: Iterable[Tariff]) -> TariffVersions:
        return cls(tuple(versions))

    def in_force_at(self, when_utc: datetime) -> Tariff:
        """The version valid at ``when_utc``; raises ``TariffNotInForceError`` when none is."""
        minimum = datetime.min.replace(tzinfo=when_utc.tzinfo)
        candidates = [version for version in self.versions if version.in_force_at(when_utc)]
        if not candidates:
            raise TariffNotInForceError(f"no tariff version is in force at {when_utc.isoformat()}")
        return max(
            candidates,
            key=lambda version: (version.start_date_time or minimum, version.last_updated or minimum),
        )
