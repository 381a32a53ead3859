"""fairwatt's solver behind acnportal's algorithm interface, and ACN-Sim events from our CSV.

``FairwattAlgorithm`` is online: each call it sees only what ``interface.active_sessions()``
shows (plugged-in sessions, their estimated departure, requested and delivered energy),
the tariff's prices, and what it has observed so far (the highest current a car drew when
offered more). ``OfflineReplay`` is the perfect-knowledge bound: at each local midnight it
solves the coming day once with ``solve_offline`` from the true sessions (arrivals,
departures, needs, car limits) and plays the plan back through the same simulator.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from acnportal import acnsim
from acnportal.algorithms import BaseAlgorithm

from benchmarks.caltech_site import (
    EPOCH,
    MAX_PILOT_A,
    PERIOD_MIN,
    TIME_ZONE,
    VOLTAGE_V,
    SessionRow,
    caltech_evses,
    caltech_site,
)
from optimizer.forecast import Forecast, PastSession, forecast, with_group_evses
from optimizer.network import Network
from optimizer.offline import solve_offline
from optimizer.solver import solve
from optimizer.types import ActiveSession, Evse, Policy, PricePeriod, Schedule, Site, StationSnapshot

_PRICE_CHUNK = 7 * 288  # periods of tariff fetched at once (prices are known ahead; sessions are not)
_CAR_LIMITED_A = 0.01  # a car drawing this much less than its pilot is at its own limit


def make_events(rows: Sequence[SessionRow], battery_power_kw: float = 6.6) -> acnsim.EventQueue:
    """Plug-in events as the ACN-Sim experiments built them from ACN-Data.

    Each EV has an ideal ``Battery`` with capacity = requested energy, empty on arrival and a
    6.6 kW power limit (the experiments' ``default_battery_power``), so a car draws
    ``min(pilot, 6.6 kW / 208 V, what is left)``. Its estimated departure is the file's.
    """
    events = []
    for r in rows:
        battery = acnsim.Battery(r.requested_kwh, 0, min(r.max_power_kw, battery_power_kw))
        ev = acnsim.EV(
            r.arrival,
            r.departure,
            r.requested_kwh,
            r.station_id,
            r.session_id,
            battery,
            r.estimated_departure,
        )
        events.append(acnsim.PluginEvent(r.arrival, ev))
    return acnsim.EventQueue(events)


def period_datetime(period: int) -> datetime:
    """The UTC instant ``period`` 5-minute periods after the sessions file's epoch."""
    return EPOCH.astimezone(UTC) + timedelta(minutes=PERIOD_MIN * period)


def local_midnights(periods: int) -> list[int]:
    """Periods (from the epoch) at which a local day starts, across DST changes."""
    out: list[int] = []
    day = EPOCH.date()
    while True:
        instant = datetime(day.year, day.month, day.day, tzinfo=TIME_ZONE).astimezone(UTC)
        k = math.ceil((instant - EPOCH.astimezone(UTC)) / timedelta(minutes=PERIOD_MIN) - 1e-9)
        if k > periods:
            return out
        out.append(k)
        day += timedelta(days=1)


class _PriceCache:
    """Tariff prices per period fetched from the interface in chunks [currency/kWh]."""

    def __init__(self) -> None:
        self.prices: list[float] = []

    def get(self, interface: Any, start: int, length: int) -> list[float]:
        while len(self.prices) < start + length:
            chunk = interface.get_prices(_PRICE_CHUNK, start=len(self.prices))
            self.prices.extend(float(p) for p in chunk)
        return self.prices[start : start + length]


def price_periods(prices: Sequence[float], first_period: int) -> tuple[PricePeriod, ...]:
    """Price periods where the price changes (the solver averages within a period)."""
    out: list[PricePeriod] = []
    for k, price in enumerate(prices):
        if not out or abs(out[-1].price_per_kwh - price) > 1e-12:
            out.append(PricePeriod(period_datetime(first_period + k), price))
    return tuple(out)


@dataclass
class CallStats:
    """Per-call timings of an adapter [s] and how the solver finished."""

    schedule_s: list[float] = field(default_factory=list)  # whole ``schedule`` call
    solve_s: list[float] = field(default_factory=list)  # ``optimizer.solve`` alone
    sessions: list[int] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    def count(self, schedule: Schedule) -> None:
        key = schedule.status.value
        self.statuses[key] = self.statuses.get(key, 0) + 1


# each EVSE's group of EVSEs wired alike (``with_group_evses``): its virtual EVSE carries the group's
# expected sessions and is never sent a profile
GROUP_OF: dict[str, str] = with_group_evses(caltech_site(), caltech_evses())[2]


class FairwattAlgorithm(BaseAlgorithm):  # type: ignore[misc]
    """fairwatt's online solver as an ACN-Sim scheduler, re-solved every period."""

    def __init__(
        self,
        transformer_kw: float,
        policy: Policy | None = None,
        *,
        min_current_a: float = 0.0,
        step_a: float = 0.1,
        use_prices: bool = True,
        forecast_weight: float = 0.0,
        history: Sequence[PastSession] = (),
        scenarios: bool = True,
    ) -> None:
        super().__init__()
        self.max_recompute = 1
        self.policy = policy if policy is not None else Policy()
        # sessions expected within the horizon (learned from earlier days) weigh this much (0: none)
        self.forecast_weight = forecast_weight
        # each earlier day a scenario of its own (``forecast(scenarios=True)``), else their mean
        self.scenarios = scenarios
        self._history: dict[str, PastSession] = {f"history-{k}": s for k, s in enumerate(history)}
        self.site = caltech_site(transformer_kw)
        self.evses = caltech_evses(min_current_a, step_a)
        if forecast_weight > 0:
            self.site, self.evses, _ = with_group_evses(self.site, self.evses)
        self.network = Network.build(self.site, self.evses)
        self.use_prices = use_prices
        self.step_a = step_a
        self.stats = CallStats()
        self._prices = _PriceCache()
        self._car_max_a: dict[str, float] = {}
        self._fleet_a: list[float] = []  # observed car limits, the prior for cars not yet seen
        self._offered_a: dict[str, float] = {}  # session -> the pilot its charger holds

    def _learn_car_limits(self) -> None:
        pilots = self.interface.last_applied_pilot_signals
        actual = self.interface.last_actual_charging_rate
        for session_id, pilot in pilots.items():
            drawn = float(actual.get(session_id, 0.0))
            if drawn > 0 and pilot > drawn + _CAR_LIMITED_A and session_id not in self._car_max_a:
                # the exact limit: planned at it, the car gets the pilot at the step above (31.8 A
                # for 31.73 A) and draws it all (60 kW: 99.871 -> 99.881 % against 31.7 A)
                self._car_max_a[session_id] = drawn
                self._fleet_a.append(self._car_max_a[session_id])

    def _car_limit_a(self, session_id: str) -> float | None:
        """The car's observed limit, else the fleet's typical one learned from earlier sessions.

        Without a prior, a cost-aware plan that leaves a car to charge at full rate just before
        it leaves learns only then that the car takes 31.73 A, not 32 A, and cannot make up the gap.
        """
        if session_id in self._car_max_a:
            return self._car_max_a[session_id]
        return float(np.median(self._fleet_a)) if self._fleet_a else None

    def schedule(self, active_sessions: list[Any]) -> dict[str, list[float]]:
        if not active_sessions:
            return {}
        began = time.perf_counter()
        self._learn_car_limits()
        now_period = int(self.interface.current_time)
        site = self.site
        if self.use_prices:
            prices = self._prices.get(self.interface, now_period, self.policy.horizon_periods)
            site = replace(site, prices=price_periods(prices, now_period))
        self._remember(active_sessions)
        sessions = tuple(
            ActiveSession(
                session_id=s.session_id,
                evse_id=s.station_id,
                arrival=period_datetime(s.arrival),
                departure=period_datetime(s.estimated_departure),
                energy_needed_kwh=float(s.requested_energy),
                energy_delivered_kwh=float(s.energy_delivered),
                vehicle_max_current_a=self._car_limit_a(s.session_id),
                offered_current_a=self._offered_a.get(s.session_id),
            )
            for s in active_sessions
        )
        now = period_datetime(now_period)
        ahead = Forecast((), None)
        if self.forecast_weight > 0:
            ahead = forecast(
                self._history.values(),
                now,
                TIME_ZONE,
                GROUP_OF,
                weight=self.forecast_weight,
                until=now + timedelta(minutes=PERIOD_MIN * self.policy.horizon_periods),
                scenarios=self.scenarios,
            )
        snapshot = StationSnapshot(
            "caltech", now, site, self.evses, sessions + ahead.sessions, self.policy, ahead.until
        )
        solve_began = time.perf_counter()
        schedule = solve(snapshot, network=self.network)
        self.stats.solve_s.append(time.perf_counter() - solve_began)
        self.stats.count(schedule)
        out = {  # the expected sessions' rows come after the real ones and are not sent
            s.evse_id: [float(np.clip(schedule.current_a[i, 0], 0.0, MAX_PILOT_A))]
            for i, s in enumerate(sessions)
        }
        # what each charger holds now: the solver keeps it where that costs nothing
        self._offered_a = {s.session_id: out[s.evse_id][0] for s in sessions}
        self.stats.sessions.append(len(sessions))
        self.stats.schedule_s.append(time.perf_counter() - began)
        return out

    def _remember(self, active_sessions: list[Any]) -> None:
        """Keep what each session told on arrival: the history later days' forecasts learn from."""
        for s in active_sessions:
            if s.session_id not in self._history:
                self._history[s.session_id] = PastSession(
                    evse_id=s.station_id,
                    arrival=period_datetime(s.arrival),
                    departure=period_datetime(s.estimated_departure),
                    energy_kwh=float(s.requested_energy),
                    max_current_a=self._car_limit_a(s.session_id) or MAX_PILOT_A,
                )


def virtual_evses(evses: Sequence[Evse], sessions: Sequence[ActiveSession]) -> dict[str, tuple[str, ...]]:
    """One column per session: ``station|session`` ids grouped by their physical EVSE."""
    known = {e.evse_id for e in evses}
    out: dict[str, list[str]] = {}
    for s in sessions:
        if s.evse_id in known:
            out.setdefault(s.evse_id, []).append(f"{s.evse_id}|{s.session_id}")
    return {k: tuple(v) for k, v in out.items()}


def solve_offline_virtual(
    transformer_kw: float,
    evses: Sequence[Evse],
    sessions: Sequence[ActiveSession],
    start: datetime,
    periods: int,
    policy: Policy,
    prices: tuple[PricePeriod, ...] = (),
) -> tuple[Schedule, list[str]]:
    """``solve_offline`` with each session on its own copy of its EVSE.

    Sessions that follow each other on one EVSE never overlap in time, so giving each its own
    column (wired and limited exactly as the physical EVSE) changes no limit. Returns the
    schedule (rows in ``sessions`` order) and the physical EVSE of each row.
    """
    mapping = virtual_evses(evses, sessions)
    by_id = {e.evse_id: e for e in evses}
    virtual = [replace(by_id[physical], evse_id=v) for physical, ids in mapping.items() for v in ids]
    site: Site = replace(caltech_site(transformer_kw, virtual=mapping), prices=prices)
    moved = [replace(s, evse_id=f"{s.evse_id}|{s.session_id}") for s in sessions]
    schedule = solve_offline(site, virtual, moved, start, periods, policy)
    return schedule, [s.evse_id for s in sessions]


class OfflineReplay(BaseAlgorithm):  # type: ignore[misc]
    """The perfect-knowledge bound: a plan per local day from the true sessions, played back."""

    def __init__(
        self,
        rows: Sequence[SessionRow],
        transformer_kw: float,
        policy: Policy | None = None,
        *,
        min_current_a: float = 0.0,
        step_a: float = 0.1,
        use_prices: bool = True,
    ) -> None:
        super().__init__()
        self.max_recompute = 1
        self.rows = {r.session_id: r for r in rows}
        self.by_arrival = sorted(rows, key=lambda r: r.arrival)
        self.transformer_kw = transformer_kw
        self.policy = policy if policy is not None else Policy()
        self.evses = caltech_evses(min_current_a, step_a)
        self.step_a = step_a
        self.use_prices = use_prices
        last = max((r.departure for r in rows), default=0)
        self.midnights = local_midnights(last + 288)
        self.stats = CallStats()
        self._prices = _PriceCache()
        self._plan: Schedule | None = None
        self._plan_start = 0
        self._plan_until = -1
        self._rows_of: dict[str, int] = {}

    def _car_max_a(self, row: SessionRow) -> float:
        # the highest step the car draws in full (31.7 A for 6.6 kW at 208 V): planning the whole day
        # at its exact 31.73 A instead gave a lower bound (20 kW: 78.25 -> 78.20 %, 60 kW: 99.87 ->
        # 99.85 %); the bound is the better of the two
        return (
            math.floor(min(MAX_PILOT_A, row.max_power_kw * 1000.0 / VOLTAGE_V) / self.step_a + 1e-9)
            * self.step_a
        )

    def _make_plan(self, now_period: int, active_sessions: list[Any]) -> None:
        until = next(m for m in self.midnights if m > now_period)
        sessions: list[ActiveSession] = []
        for s in active_sessions:
            row = self.rows[s.session_id]
            sessions.append(self._session(row, max(row.arrival, now_period), float(s.energy_delivered)))
        active_ids = {s.session_id for s in active_sessions}
        for row in self.by_arrival:
            if now_period <= row.arrival < until and row.session_id not in active_ids:
                sessions.append(self._session(row, row.arrival, 0.0))
        self._plan_start, self._plan_until = now_period, until
        if not sessions:
            self._plan, self._rows_of = None, {}
            return
        periods = max(until, *(self.rows[s.session_id].departure for s in sessions)) - now_period
        prices: tuple[PricePeriod, ...] = ()
        if self.use_prices:
            prices = price_periods(self._prices.get(self.interface, now_period, periods), now_period)
        began = time.perf_counter()
        plan, _ = solve_offline_virtual(
            self.transformer_kw,
            self.evses,
            sessions,
            period_datetime(now_period),
            periods,
            self.policy,
            prices,
        )
        self.stats.solve_s.append(time.perf_counter() - began)
        self.stats.sessions.append(len(sessions))
        self.stats.count(plan)
        self._plan = plan
        self._rows_of = {s.session_id: i for i, s in enumerate(sessions)}

    def _session(self, row: SessionRow, arrival: int, delivered_kwh: float) -> ActiveSession:
        return ActiveSession(
            session_id=row.session_id,
            evse_id=row.station_id,
            arrival=period_datetime(arrival),
            departure=period_datetime(row.departure),
            energy_needed_kwh=row.requested_kwh,
            energy_delivered_kwh=delivered_kwh,
            vehicle_max_current_a=self._car_max_a(row),
        )

    def schedule(self, active_sessions: list[Any]) -> dict[str, list[float]]:
        now_period = int(self.interface.current_time)
        if now_period >= self._plan_until:
            self._make_plan(now_period, active_sessions)
        if self._plan is None or not active_sessions:
            return {}
        t = now_period - self._plan_start
        out: dict[str, list[float]] = {}
        for s in active_sessions:
            i = self._rows_of.get(s.session_id)
            rate = 0.0 if i is None or t >= self._plan.periods else float(self._plan.current_a[i, t])
            out[s.station_id] = [float(np.clip(rate, 0.0, MAX_PILOT_A))]
        return out
