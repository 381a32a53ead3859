"""The station file as frozen, typed objects (what the loader returns).

Local time appears here only as times of day, weekdays and dates in the station's
time zone; :mod:`fairwatt.config.timeofuse` turns them into UTC instants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from fairwatt.config.timeofuse import site_for
from optimizer.forecast import DeclaredSchedule
from optimizer.types import Evse, FeederNode, Policy, Site


@dataclass(frozen=True, slots=True)
class TransformerSpec:
    """A delta-wye step-down transformer.

    ``primary_voltage_v`` is line-to-line, ``secondary_voltage_v`` line-to-neutral [V].
    """

    rating_kva: float
    primary_voltage_v: float
    secondary_voltage_v: float

    @property
    def ratio(self) -> float:
        """Winding ratio: primary line-to-line over secondary line-to-neutral voltage."""
        return self.primary_voltage_v / self.secondary_voltage_v

    @property
    def primary_limit_a(self) -> float:
        """Rated primary line current [A]."""
        return self.rating_kva * 1000.0 / 3.0 / (self.primary_voltage_v / math.sqrt(3.0))

    @property
    def secondary_limit_a(self) -> float:
        """Rated secondary line current [A]."""
        return self.rating_kva * 1000.0 / 3.0 / self.secondary_voltage_v


@dataclass(frozen=True, slots=True)
class LimitNode:
    """A node of the station's limit tree as written in the file (see ``FeederNode``)."""

    node_id: str
    limit_a: float | None = None
    limit_kw: float | None = None
    evse_ids: tuple[str, ...] = ()
    children: tuple[LimitNode, ...] = ()
    transformer: TransformerSpec | None = None

    def all_evse_ids(self) -> tuple[str, ...]:
        ids = list(self.evse_ids)
        for child in self.children:
            ids.extend(child.all_evse_ids())
        return tuple(ids)

    def feeder_node(self) -> FeederNode:
        """The solver's view: transformer ratings turned into line-current limits."""
        limit_a = self.limit_a
        ratio: float | None = None
        primary_limit_a: float | None = None
        if self.transformer is not None:
            limit_a = self.transformer.secondary_limit_a
            ratio = self.transformer.ratio
            primary_limit_a = self.transformer.primary_limit_a
        return FeederNode(
            node_id=self.node_id,
            limit_a=limit_a,
            limit_kw=self.limit_kw,
            evse_ids=self.evse_ids,
            children=tuple(child.feeder_node() for child in self.children),
            transformer_ratio=ratio,
            primary_limit_a=primary_limit_a,
        )


WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_SETS: dict[str, frozenset[int]] = {
    "all": frozenset(range(7)),
    "daily": frozenset(range(7)),
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
    **{name: frozenset({k}) for k, name in enumerate(WEEKDAY_NAMES)},
}
"""What a ``days:`` entry may name: weekday numbers, 0 = Monday."""


@dataclass(frozen=True, slots=True)
class DayFilter:
    """Which local dates a window applies to: weekdays (0 = Monday), months, a date range."""

    weekdays: frozenset[int] = frozenset(range(7))
    months: frozenset[int] = frozenset(range(1, 13))
    first_date: date | None = None
    last_date: date | None = None

    def matches(self, day: date) -> bool:
        if day.weekday() not in self.weekdays or day.month not in self.months:
            return False
        if self.first_date is not None and day < self.first_date:
            return False
        return self.last_date is None or day <= self.last_date


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """A window of local time of day, ``[start_min, end_min)`` minutes after midnight.

    ``end_min <= start_min`` wraps past midnight into the next day; the day filter
    applies to the day the window starts on.
    """

    start_min: int
    end_min: int
    days: DayFilter = field(default_factory=DayFilter)

    @property
    def wraps(self) -> bool:
        return self.end_min <= self.start_min

    def contains(self, local: datetime) -> bool:
        """Whether the local wall-clock time ``local`` (naive or aware) lies in the window."""
        minute = local.hour * 60 + local.minute + local.second / 60.0
        day = local.date()
        if not self.wraps:
            return self.start_min <= minute < self.end_min and self.days.matches(day)
        if minute >= self.start_min and self.days.matches(day):
            return True
        return minute < self.end_min and self.days.matches(day - timedelta(days=1))


@dataclass(frozen=True, slots=True)
class PriceWindow:
    name: str
    window: DailyWindow
    price_per_kwh: float


@dataclass(frozen=True, slots=True)
class PriceSchedule:
    """Time-of-use energy prices: the first window containing a moment sets its price."""

    currency: str = "USD"
    default_per_kwh: float = 0.0
    windows: tuple[PriceWindow, ...] = ()

    def price_at(self, local: datetime) -> float:
        for window in self.windows:
            if window.window.contains(local):
                return window.price_per_kwh
        return self.default_per_kwh


@dataclass(frozen=True, slots=True)
class PeakEvent:
    """A recurring cap on the station's import (exactly one of ``limit_kw``, ``fraction``)."""

    name: str
    window: DailyWindow
    limit_kw: float | None = None
    fraction: float | None = None


@dataclass(frozen=True, slots=True)
class EvsePlace:
    """Where an EVSE is on the wire: charger ``charger_id``, connector ``connector_id``.

    ``connector_id`` is the OCPP 1.6 ``connectorId`` or the 2.0.1 ``evseId`` (>= 1).
    """

    evse_id: str
    charger_id: str
    connector_id: int = 1


@dataclass(frozen=True, slots=True)
class ChargingPolicy:
    """Smart-charging policy beyond the solver's :class:`optimizer.types.Policy` (in ``station.policy``).

    ``priority_tiers`` maps a driver's membership tier to the weight max-min fairness gives
    their sessions (1 for a driver of no tier or of a tier not named); ``default_departure_min``
    is a local time of day (minutes after midnight) assumed for a session with no departure
    given (``None``: ``default_stay_h`` after arrival).
    """

    priority_tiers: tuple[tuple[str, float], ...] = ()
    default_departure_min: int | None = None

    def tier_priority(self, tier: str | None) -> float:
        return dict(self.priority_tiers).get(tier or "", 1.0)


@dataclass(frozen=True, slots=True)
class StationConfig:
    """One station as read from the file, ready to materialise snapshots from.

    ``base_load_kw`` is empty (none), one value (constant) or 24 values (by local hour).
    ``resolve_every_periods`` is how often the online loop re-solves without an event.
    ``places`` says which charger and connector each EVSE is; an EVSE not listed is a charger
    of its own (charger id = EVSE id) on connector 1. ``forecast_weight`` > 0 plans around the
    sessions earlier days saw arrive later in the day and the next day, within the horizon
    (``optimizer.forecast``); where it expects nobody during the cars' stays (with the policy's
    ``trust_forecast``: where the plan serves those it expects in full), the cars' energy may
    wait for cheaper hours. ``forecast_expected`` stands in for a kind of day (weekday, weekend)
    the forecast has no earlier day of (``optimizer.forecast.DeclaredSchedule``).
    """

    station_id: str
    time_zone: ZoneInfo
    grid_limit_kw: float
    limits: LimitNode
    evses: tuple[Evse, ...]
    prices: PriceSchedule = field(default_factory=PriceSchedule)
    peak_events: tuple[PeakEvent, ...] = ()
    base_load_kw: tuple[float, ...] = ()
    demand_charge_per_kw: float = 0.0
    policy: Policy = field(default_factory=Policy)
    resolve_every_periods: int = 1
    source: str = ""
    places: tuple[EvsePlace, ...] = ()
    forecast_weight: float = 0.0  # > 0: plan around sessions earlier days saw arrive later (0: off)
    forecast_days: int = 14  # the latest earlier days of the same kind the forecast learns from
    forecast_expected: DeclaredSchedule | None = None  # the operator's arrivals, for days not yet seen
    charging: ChargingPolicy = field(default_factory=ChargingPolicy)  # tier weights, default departure

    def evse(self, evse_id: str) -> Evse:
        for evse in self.evses:
            if evse.evse_id == evse_id:
                return evse
        raise KeyError(evse_id)

    def place(self, evse_id: str) -> EvsePlace:
        """The charger and connector of EVSE ``evse_id`` (itself on connector 1 unless the file says)."""
        self.evse(evse_id)  # KeyError for an unknown EVSE
        for place in self.places:
            if place.evse_id == evse_id:
                return place
        return EvsePlace(evse_id, evse_id, 1)

    @property
    def evse_ids(self) -> tuple[str, ...]:
        return tuple(evse.evse_id for evse in self.evses)

    def with_grid_limit(self, limit_kw: float) -> StationConfig:
        """A what-if copy: grid limit ``limit_kw`` and, if the root is a transformer, that rating [kVA]."""
        limits = self.limits
        if limits.transformer is not None:
            limits = replace(limits, transformer=replace(limits.transformer, rating_kva=limit_kw))
        return replace(self, grid_limit_kw=limit_kw, limits=limits)

    def site(self, start: datetime, periods: int) -> Site:
        """The solver's ``Site`` for ``periods`` policy periods from ``start`` (UTC)."""
        return site_for(self, start, periods)
