"""Play charging sessions against a station, period by period, with a scheduler in the loop.

The online schedulers see only what a real station would: the sessions plugged in now,
with the departure and energy their drivers gave, and the energy delivered so far. The
loop re-solves on every arrival and departure and every ``resolve_every_periods``,
applies the schedule's current for the period, and lets each car draw
``min(pilot, its own maximum, what is left of its request)``.

``offline`` is the perfect-knowledge bound: at each local midnight it solves the coming
day once, knowing every arrival, true departure and need, and plays the schedule back.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

from fairwatt.config.model import StationConfig
from fairwatt.config.timeofuse import local_to_utc
from fairwatt.simulation.errors import SimulationError
from fairwatt.simulation.sessions import ANY_EVSE, SessionRecord
from optimizer.errors import OptimizerError
from optimizer.forecast import Forecast, PastSession, forecast, with_group_evses
from optimizer.limits import base_load_kw, power_limit_kw
from optimizer.network import Network
from optimizer.offline import solve_offline
from optimizer.solver import solve
from optimizer.types import (
    ActiveSession,
    Algorithm,
    FloatArray,
    Schedule,
    Site,
    StationSnapshot,
)

logger = logging.getLogger(__name__)

OFFLINE = "offline"
ALGORITHMS: tuple[str, ...] = (
    "fairwatt",
    "edf",
    "llf",
    "round-robin",
    "uncontrolled",
    "equal-share",
    OFFLINE,
)
_CHANGE_A = 1e-6  # pilot changes smaller than this are not profile changes

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """What one session got: energy delivered [kWh] and how often its pilot current changed."""

    record: SessionRecord
    delivered_kwh: float
    profile_changes: int


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Everything a run produced, on the period grid from ``start`` (UTC).

    ``current_a[i, t]`` is the current EVSE ``evse_ids[i]`` actually drew in period ``t``;
    ``power_kw`` the same as power; ``limit_kw`` the import available to EVs (grid limit
    lowered by peak events, minus base load); ``utilisation[c, t]`` use over limit of
    constraint ``constraint_names[c]``.
    """

    station: StationConfig
    algorithm: str
    days: tuple[date, ...]
    start: datetime
    period_s: int
    evse_ids: tuple[str, ...]
    current_a: FloatArray
    power_kw: FloatArray
    limit_kw: FloatArray
    price_per_kwh: FloatArray
    constraint_names: tuple[str, ...]
    utilisation: FloatArray
    outcomes: tuple[SessionOutcome, ...]
    site: Site
    solves: int = 0
    solve_time_s: float = 0.0
    wall_time_s: float = 0.0

    @property
    def periods(self) -> int:
        return int(self.power_kw.shape[1])

    @property
    def station_power_kw(self) -> FloatArray:
        return np.asarray(self.power_kw.sum(axis=0), dtype=np.float64)

    def period_start(self, t: int) -> datetime:
        return self.start + timedelta(seconds=self.period_s * t)


@dataclass(slots=True)
class _Live:
    """A plugged-in car during the run."""

    record: SessionRecord
    row: int
    kw_per_a: float
    car_max_a: float
    car_pilot_a: float  # the least pilot, on the EVSE's step, that lets the car draw car_max_a
    car_step_a: float  # the most the car is sure to draw at a pilot on the EVSE's step
    arrival_t: int
    departure_t: int
    delivered_kwh: float = 0.0
    last_pilot_a: float | None = None
    changes: int = 0
    seen_max_a: float | None = None

    @property
    def remaining_kwh(self) -> float:
        return max(self.record.requested_energy_kwh - self.delivered_kwh, 0.0)


@dataclass(slots=True)
class _Plan:
    """The schedule in force and the grid period its column 0 belongs to."""

    schedule: Schedule
    first_t: int
    rows: dict[str, int] = field(default_factory=dict)  # session id -> schedule row

    @classmethod
    def of(cls, schedule: Schedule, first_t: int) -> _Plan:
        return cls(schedule, first_t, {session_id: i for i, session_id in enumerate(schedule.session_ids)})

    def pilot_a(self, session_id: str, t: int) -> float:
        k = t - self.first_t
        row = self.rows.get(session_id)
        if row is None or k < 0 or k >= self.schedule.periods:
            return 0.0
        return float(self.schedule.current_a[row, k])


def simulate(
    config: StationConfig,
    records: Sequence[SessionRecord],
    days: Sequence[date],
    algorithm: str = "fairwatt",
    progress: ProgressCallback | None = None,
    forecast_weight: float = 0.0,
) -> SimulationResult:
    """Run the sessions arriving on ``days`` (local dates, consecutive) through ``algorithm``.

    ``forecast_weight`` > 0 (fairwatt only): each solve also sees the sessions earlier simulated
    days of the same kind saw arrive later in the day (``optimizer.forecast``), each day a
    scenario of its own, their energy weighted by it; never a session of the day being simulated.
    """
    if algorithm not in ALGORITHMS:
        raise SimulationError(f"unknown algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
    if not days:
        raise SimulationError("no days to simulate")
    if forecast_weight < 0:
        raise SimulationError(f"the forecast weight must be 0 or more, got {forecast_weight:g}")
    return _Run(config, records, sorted(days), algorithm, progress, forecast_weight).run()


class _Run:
    def __init__(
        self,
        config: StationConfig,
        records: Sequence[SessionRecord],
        days: list[date],
        algorithm: str,
        progress: ProgressCallback | None,
        forecast_weight: float = 0.0,
    ) -> None:
        self.config = config
        self.algorithm = algorithm
        self.days = days
        self.progress = progress
        tz = config.time_zone
        self.period_s = config.policy.period_s
        self.period = timedelta(seconds=self.period_s)
        self.period_h = self.period_s / 3600.0
        self.start = local_to_utc(tz, days[0], 0)
        range_end = local_to_utc(tz, days[-1] + timedelta(days=1), 0)
        self.evse_ids = config.evse_ids
        self.rows = {evse_id: i for i, evse_id in enumerate(self.evse_ids)}
        self.kw_per_a = np.array([config.evse(e).kw_per_a for e in self.evse_ids], dtype=np.float64)
        self.lives: list[_Live] = []
        for record in sorted(records, key=lambda r: (r.arrival, r.line)):
            if self.start <= record.arrival < range_end:
                self.lives.append(self._live(record))
        last = max((live.departure_t for live in self.lives), default=0)
        self.periods = max(math.ceil((range_end - self.start) / self.period), last)
        # midnights (local) on the grid: where offline plans start and days are cut
        self.midnights = sorted(
            {
                math.ceil((local_to_utc(tz, days[0] + timedelta(days=k), 0) - self.start) / self.period)
                for k in range(math.ceil(self.periods * self.period_s / 86400) + 2)
            }
        )
        self.site = config.site(self.start, self.periods)
        # the demand charge's billing period is the local calendar month: where each one starts
        # on the grid, and the import (EV plus base load) reached in it so far
        self.base_load_kw = base_load_kw(self.site, self.start, self.period_s, self.periods)
        self.month_starts = {
            t
            for t in range(1, self.periods)
            if self._now(t).astimezone(tz).month != self._now(t - 1).astimezone(tz).month
        }
        self.peak_so_far_kw = 0.0
        self.price_starts = [p.start for p in self.site.prices]
        self.network = Network.build(self.site, config.evses)  # compiled once, reused by every solve
        # what the online solves see: the site, plus a group EVSE per set of EVSEs wired alike
        # when sessions expected from earlier days are planned around
        self.forecast_weight = forecast_weight if algorithm == "fairwatt" else 0.0
        self.plan_root, self.plan_evses, self.plan_network = self.site.root, config.evses, self.network
        self.group_of: dict[str, str] = {}
        if self.forecast_weight > 0:
            grouped, self.plan_evses, self.group_of = with_group_evses(self.site, config.evses)
            self.plan_root = grouped.root
            self.plan_network = Network.build(grouped, self.plan_evses)
        self.solves = 0
        self.solve_time_s = 0.0

    def _live(self, record: SessionRecord) -> _Live:
        if record.evse_id == ANY_EVSE:
            raise SimulationError(
                f"session {record.session_id!r} (line {record.line}) names no EVSE: "
                "give it one with placement.place_sessions before simulating"
            )
        if record.evse_id not in self.rows:
            raise SimulationError(
                f"session {record.session_id!r} (line {record.line}): "
                f"EVSE {record.evse_id!r} is not in the station"
            )
        evse = self.config.evse(record.evse_id)
        car_max_a = evse.max_current_a
        if record.max_power_kw is not None:
            car_max_a = min(car_max_a, record.max_power_kw / evse.kw_per_a)
        return _Live(
            record=record,
            row=self.rows[record.evse_id],
            kw_per_a=evse.kw_per_a,
            car_max_a=car_max_a,
            car_pilot_a=min(math.ceil(car_max_a / evse.step_a - 1e-6) * evse.step_a, evse.max_current_a),
            car_step_a=math.floor(car_max_a / evse.step_a + 1e-6) * evse.step_a,
            arrival_t=math.ceil((record.arrival - self.start) / self.period - 1e-9),
            departure_t=math.floor((record.departure - self.start) / self.period + 1e-9),
        )

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        began = time.perf_counter()
        n, periods = len(self.evse_ids), self.periods
        current_a = np.zeros((n, periods), dtype=np.float64)
        arrivals: dict[int, list[_Live]] = {}
        for live in self.lives:
            arrivals.setdefault(live.arrival_t, []).append(live)
        active: dict[str, _Live] = {}
        plan: _Plan | None = None
        solved_at = 0
        midnights = set(self.midnights)
        for t in range(periods):
            if t in self.month_starts:
                self.peak_so_far_kw = 0.0
            event = False
            for evse_id in [e for e, live in active.items() if live.departure_t <= t]:
                del active[evse_id]
                event = True
            for live in arrivals.get(t, []):
                if live.departure_t <= t:
                    continue  # gone before a whole period passed
                held = active.get(live.record.evse_id)
                if held is not None:
                    raise SimulationError(
                        f"session {live.record.session_id!r} (line {live.record.line}) arrives at "
                        f"EVSE {live.record.evse_id!r} while session {held.record.session_id!r} "
                        f"(line {held.record.line}) is still plugged in"
                    )
                active[live.record.evse_id] = live
                event = True
            if self.algorithm == OFFLINE:
                if t in midnights or (plan is None and active):
                    plan = self._plan_offline(t, active, arrivals)
            elif not active:
                plan = None
            elif (
                plan is None
                or event
                or t - solved_at >= min(self.config.resolve_every_periods, plan.schedule.periods)
            ):
                plan = self._plan_online(t, active)
                solved_at = t
            for live in active.values():
                pilot_a = plan.pilot_a(live.record.session_id, t) if plan is not None else 0.0
                current_a[live.row, t] = self._draw(live, pilot_a)
            import_kw = float(current_a[:, t] @ self.kw_per_a) + float(self.base_load_kw[t])
            self.peak_so_far_kw = max(self.peak_so_far_kw, import_kw)
            if self.progress is not None:
                self.progress(t + 1, periods)
        return self._result(current_a, time.perf_counter() - began)

    def _draw(self, live: _Live, pilot_a: float) -> float:
        if live.last_pilot_a is not None and abs(pilot_a - live.last_pilot_a) > _CHANGE_A:
            live.changes += 1
        live.last_pilot_a = pilot_a
        by_need_a = live.remaining_kwh / (live.kw_per_a * self.period_h)
        draw_a = max(min(pilot_a, live.car_max_a, by_need_a), 0.0)
        if live.car_max_a < pilot_a - _CHANGE_A and live.car_max_a <= by_need_a:
            live.seen_max_a = live.car_pilot_a  # the car took less than offered: now we know its limit
        live.delivered_kwh += draw_a * live.kw_per_a * self.period_h
        return draw_a

    # -- solving ------------------------------------------------------------------------------

    def _now(self, t: int) -> datetime:
        return self.start + self.period * t

    def _site(self, t: int, periods: int) -> Site:
        """The run's site cut to ``periods`` from period ``t`` (prices and caps that overlap)."""
        now, end = self._now(t), self._now(t + periods)
        first = max(bisect.bisect_right(self.price_starts, now) - 1, 0)
        last = bisect.bisect_left(self.price_starts, end)
        return Site(
            grid_limit_kw=self.site.grid_limit_kw,
            root=self.plan_root,
            caps=tuple(c for c in self.site.caps if c.start < end and c.end > now),
            prices=self.site.prices[first:last],
            base_load_kw=self.site.base_load_kw,
            base_load_start=self.site.base_load_start,
            demand_charge_per_kw=self.site.demand_charge_per_kw,
            peak_so_far_kw=self.peak_so_far_kw,
        )

    def _timed(self, call: Callable[[], Schedule]) -> Schedule:
        began = time.perf_counter()
        try:
            schedule = call()
        except OptimizerError as exc:
            raise SimulationError(f"the {self.algorithm} solve failed: {exc}") from exc
        self.solve_time_s += time.perf_counter() - began
        self.solves += 1
        return schedule

    def _plan_online(self, t: int, active: dict[str, _Live]) -> _Plan:
        now = self._now(t)
        sessions = tuple(
            ActiveSession(
                session_id=live.record.session_id,
                evse_id=live.record.evse_id,
                arrival=live.record.arrival,
                departure=live.record.estimated_departure,
                energy_needed_kwh=live.record.requested_energy_kwh,
                energy_delivered_kwh=live.delivered_kwh,
                vehicle_max_current_a=live.seen_max_a,
                offered_current_a=live.last_pilot_a,
            )
            for live in active.values()
        )
        forecast_until = None
        if self.forecast_weight > 0:
            ahead = self._forecast(t, now)
            sessions += ahead.sessions
            forecast_until = ahead.until
        snapshot = StationSnapshot(
            station_id=self.config.station_id,
            now=now,
            site=self._site(t, self.config.policy.horizon_periods),
            evses=self.plan_evses,
            sessions=sessions,
            policy=self.config.policy,
            forecast_until=forecast_until,
        )
        schedule = self._timed(lambda: solve(snapshot, Algorithm(self.algorithm), self.plan_network))
        return _Plan.of(schedule, t)

    def _forecast(self, t: int, now: datetime) -> Forecast:
        """Sessions expected within the horizon, from what the sessions arrived so far told on arrival."""
        history = (
            PastSession(
                evse_id=live.record.evse_id,
                arrival=live.record.arrival,
                departure=live.record.estimated_departure,
                energy_kwh=live.record.requested_energy_kwh,
                max_current_a=live.car_max_a,
            )
            for live in self.lives
            if live.arrival_t <= t
            and live.record.requested_energy_kwh is not None
            and live.record.estimated_departure is not None
        )
        # each earlier day a scenario of its own: the limits must leave room for that day's
        # later arrivals on the lines they loaded (the days' mean spreads them over every line)
        policy = self.config.policy
        return forecast(
            history,
            now,
            self.config.time_zone,
            self.group_of,
            weight=self.forecast_weight,
            until=now + timedelta(seconds=policy.period_s * policy.horizon_periods),
            scenarios=True,
            max_days=self.config.forecast_days,
            declared=self.config.forecast_expected,
        )

    def _plan_offline(
        self, t: int, active: dict[str, _Live], arrivals: dict[int, list[_Live]]
    ) -> _Plan | None:
        following = [m for m in self.midnights if m > t]
        until = following[0] if following else self.periods
        lives = list(active.values())
        for k in range(t + 1, until):
            lives.extend(live for live in arrivals.get(k, []) if live.departure_t > k)
        if not lives:
            return None
        periods = max(until, *(live.departure_t for live in lives)) - t
        site = self._site(t, periods)
        sessions = [
            ActiveSession(
                session_id=live.record.session_id,
                evse_id=live.record.evse_id,
                arrival=max(live.record.arrival, self._now(t)),
                departure=live.record.departure,
                energy_needed_kwh=live.record.requested_energy_kwh,
                energy_delivered_kwh=live.delivered_kwh,
                vehicle_max_current_a=live.car_step_a,  # so that the plan's pilots are drawn in full
            )
            for live in lives
        ]
        now = self._now(t)
        schedule = self._timed(
            lambda: solve_offline(
                site, self.config.evses, sessions, now, periods, self.config.policy, self.network
            )
        )
        return _Plan.of(schedule, t)

    # -- read-back ----------------------------------------------------------------------------

    def _result(self, current_a: FloatArray, wall_s: float) -> SimulationResult:
        power_kw = current_a * self.kw_per_a[:, None]
        limit_kw = power_limit_kw(self.site, self.start, self.period_s, self.periods)
        network = self.network
        order = [self.rows[e] for e in network.evse_ids]
        utilisation = network.utilisation(current_a[order], limit_kw)
        prices = np.array(
            [self._price_at(self._now(t)) for t in range(self.periods)],
            dtype=np.float64,
        )
        outcomes = tuple(SessionOutcome(live.record, live.delivered_kwh, live.changes) for live in self.lives)
        logger.info(
            "%s: %d periods, %d sessions, %d solves in %.1f s",
            self.algorithm,
            self.periods,
            len(outcomes),
            self.solves,
            self.solve_time_s,
        )
        return SimulationResult(
            station=self.config,
            algorithm=self.algorithm,
            days=tuple(self.days),
            start=self.start.astimezone(UTC),
            period_s=self.period_s,
            evse_ids=self.evse_ids,
            current_a=current_a,
            power_kw=power_kw,
            limit_kw=limit_kw,
            price_per_kwh=prices,
            constraint_names=network.constraint_names,
            utilisation=utilisation,
            outcomes=outcomes,
            site=self.site,
            solves=self.solves,
            solve_time_s=self.solve_time_s,
            wall_time_s=wall_s,
        )

    def _price_at(self, instant: datetime) -> float:
        k = bisect.bisect_right(self.price_starts, instant) - 1
        if k < 0:
            return self.site.prices[0].price_per_kwh if self.site.prices else 0.0
        return self.site.prices[k].price_per_kwh
