"""Frozen, typed snapshots the solver takes and the schedule it returns.

Everything here is plain data: no I/O, no clocks. Times are timezone-aware UTC
datetimes; durations are seconds; power in kW, current in A, energy in kWh.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class Connection(enum.Enum):
    """How an EVSE is wired to the three-phase supply.

    Line-to-neutral (``L1``..``L3``), line-to-line (``L1_L2`` etc., as in US 208 V
    sites such as the Caltech garage) or balanced three-phase (``THREE_PHASE``).
    """

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"
    L1_L2 = "L1-L2"
    L2_L3 = "L2-L3"
    L3_L1 = "L3-L1"
    THREE_PHASE = "3P"

    @property
    def phases(self) -> int:
        """Number of phase conductors the EVSE draws current on (1 or 3) for OCPP ``numberPhases``."""
        return 3 if self is Connection.THREE_PHASE else 1


class RateUnit(enum.Enum):
    """The unit an EVSE's charging profiles use (OCPP ``chargingRateUnit``)."""

    AMPERE = "A"
    WATT = "W"


class SolveStatus(enum.Enum):
    """What happened on a solve call; never raised, always returned."""

    OPTIMAL = "optimal"
    FALLBACK = "fallback"  # the heuristic produced the schedule (solver failed or overran its deadline)
    EMPTY = "empty"  # nothing to schedule


@dataclass(frozen=True, slots=True)
class Evse:
    """One EVSE (one charging outlet) as the solver sees it.

    ``voltage_v`` is the voltage across the EVSE's supply: line-to-neutral for ``L1``..``L3``
    and ``THREE_PHASE``, line-to-line for ``L1_L2``.. connections. ``max_current_a`` and
    ``min_current_a`` are per phase conductor [A]; ``step`` is in ``rate_unit`` (A or W).
    """

    evse_id: str
    connection: Connection
    voltage_v: float
    max_current_a: float
    min_current_a: float = 0.0
    rate_unit: RateUnit = RateUnit.AMPERE
    step: float = 0.1

    @property
    def kw_per_a(self) -> float:
        """Power drawn per ampere of pilot current [kW/A]."""
        return self.voltage_v * self.connection.phases / 1000.0

    @property
    def max_power_kw(self) -> float:
        return self.max_current_a * self.kw_per_a

    @property
    def step_a(self) -> float:
        """The profile step expressed as current [A]."""
        if self.rate_unit is RateUnit.AMPERE:
            return self.step
        return self.step / 1000.0 / self.kw_per_a


@dataclass(frozen=True, slots=True)
class FeederNode:
    """A node in the site's limit tree: a feeder, circuit, panel or transformer.

    A node limits the EVSEs below it (its own ``evse_ids`` and those of its children):
    ``limit_a`` per phase conductor (phasor sum of the currents on each line) and/or
    ``limit_kw`` on their total power.

    A transformer (``transformer_ratio`` set) is a delta-wye step-down: the limit tree
    below it is on its secondary side; ``primary_limit_a`` limits the primary line
    currents, computed as ``(I_a - I_c) / ratio`` etc. with ``ratio`` the winding
    ratio (primary line-to-line voltage over secondary line-to-neutral voltage).
    """

    node_id: str
    limit_a: float | None = None
    limit_kw: float | None = None
    evse_ids: tuple[str, ...] = ()
    children: tuple[FeederNode, ...] = ()
    transformer_ratio: float | None = None
    primary_limit_a: float | None = None

    def all_evse_ids(self) -> tuple[str, ...]:
        ids = list(self.evse_ids)
        for child in self.children:
            ids.extend(child.all_evse_ids())
        return tuple(ids)

    def walk(self) -> tuple[FeederNode, ...]:
        nodes: list[FeederNode] = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return tuple(nodes)


@dataclass(frozen=True, slots=True)
class CapWindow:
    """A cap on the station's import over a time window (how utility peak events arrive).

    Exactly one of ``limit_kw`` (absolute) or ``fraction`` (of the normal grid limit) is set.
    """

    start: datetime
    end: datetime
    limit_kw: float | None = None
    fraction: float | None = None
    source: str = "manual"

    def cap_kw(self, grid_limit_kw: float) -> float:
        if self.limit_kw is not None:
            return self.limit_kw
        assert self.fraction is not None
        return self.fraction * grid_limit_kw


@dataclass(frozen=True, slots=True)
class EvseCap:
    """A limit on one EVSE's current over a time window [A per phase conductor].

    How a limit set on a charger from outside arrives (OCPP 2.0.1 NotifyChargingLimit: an EMS or
    the grid operator limits the charger directly, and the charger applies it on top of our
    profiles). In periods it overlaps at all, the EVSE is planned at no more than ``max_current_a``;
    below the EVSE's minimum current that is 0. Several caps on one EVSE: the lowest counts.
    """

    evse_id: str
    start: datetime
    end: datetime | None  # None: until further notice
    max_current_a: float
    source: str = "external"


@dataclass(frozen=True, slots=True)
class PricePeriod:
    """Energy price from ``start`` until the next price period (or the horizon's end) [currency/kWh]."""

    start: datetime
    price_per_kwh: float


@dataclass(frozen=True, slots=True)
class Site:
    """The station's electrical limits and prices.

    ``grid_limit_kw`` is the grid-connection import limit. ``base_load_kw`` is a forecast
    of non-EV load per period from ``base_load_start`` (periods of the policy's length).
    ``evse_caps`` limit single EVSEs over time windows (:class:`EvseCap`).
    ``peak_so_far_kw`` is the highest import (EV plus base load) already reached in the
    demand charge's billing period: a plan pays the demand charge, and the peak objective
    counts, only for what rises above it (a peak that is already paid for costs nothing more
    to reach again, so there is no reason to hold cars back below it).
    """

    grid_limit_kw: float
    root: FeederNode
    caps: tuple[CapWindow, ...] = ()
    prices: tuple[PricePeriod, ...] = ()
    base_load_kw: tuple[float, ...] = ()
    base_load_start: datetime | None = None
    demand_charge_per_kw: float = 0.0
    peak_so_far_kw: float = 0.0
    evse_caps: tuple[EvseCap, ...] = ()  # limits on single EVSEs over time windows


@dataclass(frozen=True, slots=True)
class ActiveSession:
    """An EV plugged in at an EVSE.

    ``departure`` and ``energy_needed_kwh`` may be unknown (``None``): the policy's defaults
    apply. ``vehicle_max_current_a`` is the highest current the car has been seen to draw
    (a car drawing less than offered frees capacity for others). ``offered_current_a`` is
    the limit in force at the charger, ``held_current_a`` the profile it holds (one limit per
    period from ``now``): among equally good schedules the solver keeps them.

    ``forecast_weight`` marks a session that is *expected*, not plugged in (learned from earlier
    days, e.g. ``optimizer.forecast``): it charges only from its ``arrival`` (which may be after
    ``now``), its energy counts ``forecast_weight`` (0..1) times a real session's in the energy
    stage and not at all in fairness, so among plans delivering the same energy to the cars
    present the solver prefers one that leaves capacity to the cars expected later. Several
    expected sessions may share one (virtual) EVSE; the caller ignores their rows.

    ``scenario`` puts an expected session in one of several possible futures (e.g. what each
    earlier day saw arrive later): the limits then hold for the cars present plus each
    scenario's sessions in turn, not for all scenarios at once, and on the cars present alone.
    Expected sessions without one form a single future together.
    """

    session_id: str
    evse_id: str
    arrival: datetime
    departure: datetime | None
    energy_needed_kwh: float | None
    energy_delivered_kwh: float = 0.0
    vehicle_max_current_a: float | None = None
    priority: float = 1.0
    offered_current_a: float | None = None  # the limit the charger holds now (changing it costs a profile)
    held_current_a: tuple[float, ...] = ()  # the limits it holds for the next periods, when known
    forecast_weight: float | None = None  # expected, not plugged in: its energy's worth (0..1)
    scenario: int | None = None  # expected: which possible future it belongs to (0, 1, ...)


class Algorithm(enum.Enum):
    """Which scheduler the caller asks for."""

    FAIRWATT = "fairwatt"
    EDF = "edf"
    LLF = "llf"
    ROUND_ROBIN = "round-robin"
    UNCONTROLLED = "uncontrolled"
    EQUAL_SHARE = "equal-share"


@dataclass(frozen=True, slots=True)
class Policy:
    """How a station schedules.

    ``objective`` orders the terms lexicographically (energy first by default).
    ``fairness`` is ``"max-min"`` (weighted by session priority) or ``"none"``.
    """

    period_s: int = 300
    horizon_periods: int = 288
    default_stay: timedelta = timedelta(hours=4)
    default_energy_kwh: float = 20.0
    fairness: str = "max-min"
    objective: tuple[str, ...] = ("energy", "cost", "peak")
    deadline_s: float = 2.0
    exact_periods: int = 4  # periods solved one by one before the horizon is blocked coarser
    hold_periods: int = 3  # first periods in which the current a charger holds is kept if nothing is lost
    phasor_tolerance: float = 0.002  # relative conservatism allowed when linearising phasor limits
    # With a forecast over the cars' stays, deferring their energy is allowed when the plan leaves
    # nobody present short and nobody expected during the stays arrives (False), or when it leaves
    # nobody present or expected short (True: the forecast is taken as the whole story)
    trust_forecast: bool = False


@dataclass(frozen=True, slots=True)
class StationSnapshot:
    """Everything the solver needs for one station at one instant."""

    station_id: str
    now: datetime
    site: Site
    evses: tuple[Evse, ...]
    sessions: tuple[ActiveSession, ...]
    policy: Policy = field(default_factory=Policy)
    # the expected sessions (``forecast_weight`` set) are every arrival a forecast expects before
    # this instant (``optimizer.forecast.Forecast.until``); None: no forecast, arrivals unknown
    forecast_until: datetime | None = None

    def evse(self, evse_id: str) -> Evse:
        for evse in self.evses:
            if evse.evse_id == evse_id:
                return evse
        raise KeyError(evse_id)


@dataclass(frozen=True, slots=True)
class ObjectiveBreakdown:
    """What the schedule achieves over the horizon."""

    energy_kwh: float
    energy_needed_kwh: float
    cost: float
    peak_kw: float
    min_share_served: float


@dataclass(frozen=True, slots=True)
class Schedule:
    """A station's schedule: current per EVSE per period, from ``start``.

    ``current_a[i, t]`` is the pilot current of ``evse_ids[i]`` in period ``t`` [A];
    it already respects every limit, the EVSE's step and its minimum current.
    """

    station_id: str
    start: datetime
    period_s: int
    evse_ids: tuple[str, ...]
    session_ids: tuple[str, ...]
    current_a: FloatArray
    power_kw: FloatArray
    status: SolveStatus
    objective: ObjectiveBreakdown
    solve_time_s: float
    message: str = ""

    @property
    def periods(self) -> int:
        return int(self.current_a.shape[1])

    def period_start(self, t: int) -> datetime:
        return self.start + timedelta(seconds=self.period_s * t)

    def row(self, evse_id: str) -> FloatArray:
        row: FloatArray = self.current_a[self.evse_ids.index(evse_id)]
        return row
