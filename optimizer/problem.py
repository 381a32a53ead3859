"""A station snapshot laid out as arrays on the solve's period grid.

Session ``i`` may charge in periods ``0 .. departure[i] - 1`` at up to ``upper_a[i]``
[A] (``upper_at_a[i, t]`` in period ``t``, lower where a cap limits its EVSE) and needs
``need_kwh[i]`` more energy. Unknown departures and needs take the
policy's defaults. The same prepared problem feeds the LP, the baselines and the
fallback, so all of them see the same limits.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from optimizer.errors import SnapshotError
from optimizer.limits import base_load_kw, evse_cap_a, power_limit_kw, price_per_kwh
from optimizer.network import Network
from optimizer.types import ActiveSession, FloatArray, StationSnapshot

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Problem:
    snapshot: StationSnapshot
    network: Network
    periods: int
    period_h: float
    cols: IntArray  # session -> EVSE column in the network
    upper_a: FloatArray  # per session: what the car can draw (EVSE and vehicle maximum)
    pilot_upper_a: FloatArray  # the highest pilot worth sending: upper_a up to the EVSE's next step
    upper_at_a: (
        FloatArray  # (sessions, T): upper_a, lowered where an EvseCap limits the EVSE (0 below its minimum)
    )
    pilot_upper_at_a: FloatArray  # (sessions, T): pilot_upper_a, likewise
    min_a: FloatArray
    step_a: FloatArray
    kw_per_a: FloatArray
    need_kwh: FloatArray  # still to deliver
    delivered_kwh: FloatArray  # delivered so far (the request is need + delivered)
    departure: IntArray  # first period the session is gone (>= 1)
    arrival: IntArray  # first period the session may charge (0 online; later in the offline bound)
    arrivals_known: bool  # the offline bound: every arrival of the horizon is in the problem
    forecast_periods: int  # arrivals before this period are all forecast (expected sessions); 0: no forecast
    priority: FloatArray
    energy_weight: FloatArray  # what a kWh of each session is worth in the energy stage (1; less if expected)
    expected: npt.NDArray[np.bool_]  # sessions forecast, not plugged in
    scenario: IntArray  # per session: the possible future an expected session belongs to; -1 for the rest
    offered_a: FloatArray  # (sessions, hold periods): the limits each charger holds (NaN: unknown)
    site_limit_kw: FloatArray  # (T,) after caps and base load
    price_per_kwh: FloatArray  # (T,)
    base_load_kw: FloatArray  # (T,)

    @property
    def sessions(self) -> int:
        return int(self.cols.size)

    @property
    def scenarios(self) -> int:
        """How many possible futures the expected sessions are split into (0: no split)."""
        return int(self.scenario.max(initial=-1)) + 1

    def per_evse(self, current_a: FloatArray) -> FloatArray:
        """Sessions' currents (sessions, T) summed per EVSE of the network: (EVSEs, T).

        Bit for bit ``np.add.at``; without its overhead when no two sessions share an EVSE."""
        full = np.zeros((len(self.network.evse_ids), current_a.shape[1]))
        if self.cols.size == 0 or np.bincount(self.cols).max() <= 1:
            full[self.cols] += current_a
        else:  # expected sessions may share an EVSE with each other or with a car present
            np.add.at(full, self.cols, current_a)
        return full

    def laxity_h(self) -> FloatArray:
        """Hours to departure minus hours needed at full rate (least laxity first)."""
        rate_kw = np.maximum(self.upper_a * self.kw_per_a, 1e-9)
        return (self.departure - self.arrival) * self.period_h - self.need_kwh / rate_kw


def prepare(
    snapshot: StationSnapshot,
    network: Network | None = None,
    periods: int | None = None,
    *,
    future_arrivals: bool = False,
) -> Problem:
    """Lay the snapshot out on the period grid.

    With ``future_arrivals`` (the offline bound only) a session may arrive after ``now``
    and charges from its arrival; online every session is already plugged in.
    """
    policy = snapshot.policy
    peak_kw = snapshot.site.peak_so_far_kw
    if not math.isfinite(peak_kw) or peak_kw < 0:
        raise SnapshotError(f"peak_so_far_kw must be a finite number >= 0, got {peak_kw}")
    grid_kw = snapshot.site.grid_limit_kw
    if not math.isfinite(grid_kw) or grid_kw < 0:
        raise SnapshotError(f"grid_limit_kw must be a finite number >= 0, got {grid_kw}")
    _aware(snapshot.now, "now")
    for s in snapshot.sessions:
        _check_session(s)
    horizon = periods if periods is not None else policy.horizon_periods
    net = network if network is not None else Network.build(snapshot.site, snapshot.evses)
    period = timedelta(seconds=policy.period_s)
    lookup = {evse_id: i for i, evse_id in enumerate(net.evse_ids)}
    evses = {e.evse_id: e for e in snapshot.evses}
    n = len(snapshot.sessions)
    # per session, gathered as Python values and made arrays once
    cols_l: list[int] = []
    upper_l: list[float] = []
    pilot_upper_l: list[float] = []
    min_a_l: list[float] = []
    step_l: list[float] = []
    kw_l: list[float] = []
    need_l: list[float] = []
    delivered_l: list[float] = []
    departure_l: list[int] = []
    arrival_l: list[int] = []
    priority_l: list[float] = []
    energy_weight_l: list[float] = []
    expected_l: list[bool] = []
    scenario_l: list[int] = []
    hold = min(policy.hold_periods, horizon)
    offered = np.full((n, hold), np.nan)
    seen: set[str] = set()
    for i, s in enumerate(snapshot.sessions):
        if s.evse_id not in lookup:
            raise SnapshotError(f"session {s.session_id}: unknown EVSE {s.evse_id}")
        forecast = s.forecast_weight is not None
        if s.evse_id in seen and not future_arrivals and not forecast:
            raise SnapshotError(f"two active sessions on EVSE {s.evse_id}")
        if not forecast:
            seen.add(s.evse_id)
        evse = evses[s.evse_id]
        cols_l.append(lookup[s.evse_id])
        cap = evse.max_current_a
        pilot_cap = cap
        step_a = evse.step_a
        if s.vehicle_max_current_a is not None:
            car_a = max(s.vehicle_max_current_a, evse.min_current_a)
            cap = min(cap, car_a)
            # the pilot may go up to the next step: a pilot above what the car takes is
            # harmless, one below (31.7 A for a car taking 31.73 A) short-changes it
            stepped = math.ceil(car_a / step_a - 1e-9) * step_a if step_a > 0 else car_a
            pilot_cap = min(pilot_cap, stepped)
        upper_l.append(cap)
        pilot_upper_l.append(pilot_cap)
        min_a_l.append(evse.min_current_a)
        step_l.append(step_a)
        kw_l.append(evse.kw_per_a)
        wanted = s.energy_needed_kwh if s.energy_needed_kwh is not None else policy.default_energy_kwh
        need_l.append(max(wanted - s.energy_delivered_kwh, 0.0))
        delivered_l.append(min(s.energy_delivered_kwh, wanted))
        leaves = s.departure if s.departure is not None else s.arrival + policy.default_stay
        leaves_at = min(max(math.ceil((leaves - snapshot.now) / period - 1e-9), 1), horizon)
        arrives_at = 0
        if future_arrivals or forecast:
            # an expected session is not here now: it charges from the period after its arrival
            earliest = 1 if forecast and not future_arrivals else 0
            arrives_at = min(max(math.ceil((s.arrival - snapshot.now) / period - 1e-9), earliest), horizon)
            leaves_at = max(leaves_at, arrives_at)
        departure_l.append(leaves_at)
        arrival_l.append(arrives_at)
        energy_weight_l.append(min(max(float(s.forecast_weight or 0.0), 0.0), 1.0) if forecast else 1.0)
        expected_l.append(forecast)
        if forecast and s.scenario is not None:
            if s.scenario < 0:
                raise SnapshotError(f"session {s.session_id}: scenario must be 0 or more")
            scenario_l.append(s.scenario)
        else:
            scenario_l.append(-1)
        priority_l.append(max(s.priority, 1e-6))
        if s.offered_current_a is not None:
            offered[i, :] = s.offered_current_a
        held = s.held_current_a[:hold]
        if len(held):
            offered[i, : len(held)] = held
    cols = np.array(cols_l, dtype=np.int64)
    upper = np.array(upper_l, dtype=np.float64)
    pilot_upper = np.array(pilot_upper_l, dtype=np.float64)
    min_a = np.array(min_a_l, dtype=np.float64)
    step = np.array(step_l, dtype=np.float64)
    kw = np.array(kw_l, dtype=np.float64)
    need = np.array(need_l, dtype=np.float64)
    delivered = np.array(delivered_l, dtype=np.float64)
    departure = np.array(departure_l, dtype=np.int64)
    arrival = np.array(arrival_l, dtype=np.int64)
    priority = np.array(priority_l, dtype=np.float64)
    energy_weight = np.array(energy_weight_l, dtype=np.float64)
    expected = np.array(expected_l, dtype=np.bool_)
    scenario = np.array(scenario_l, dtype=np.int64)
    if future_arrivals:
        _check_no_overlap(snapshot, cols, arrival, departure)
    upper_at, pilot_upper_at = _capped(snapshot, net.evse_ids, cols, upper, pilot_upper, min_a, step, horizon)
    return Problem(
        snapshot=snapshot,
        network=net,
        periods=horizon,
        period_h=policy.period_s / 3600.0,
        cols=cols,
        upper_a=upper,
        pilot_upper_a=pilot_upper,
        upper_at_a=upper_at,
        pilot_upper_at_a=pilot_upper_at,
        min_a=min_a,
        step_a=step,
        kw_per_a=kw,
        need_kwh=need,
        delivered_kwh=delivered,
        departure=departure,
        arrival=arrival,
        arrivals_known=future_arrivals,
        forecast_periods=_forecast_periods(snapshot, period, horizon),
        priority=priority,
        energy_weight=energy_weight,
        expected=expected,
        scenario=scenario,
        offered_a=offered,
        site_limit_kw=power_limit_kw(snapshot.site, snapshot.now, policy.period_s, horizon),
        price_per_kwh=price_per_kwh(snapshot.site, snapshot.now, policy.period_s, horizon),
        base_load_kw=base_load_kw(snapshot.site, snapshot.now, policy.period_s, horizon),
    )


def _capped(
    snapshot: StationSnapshot,
    evse_ids: tuple[str, ...],
    cols: IntArray,
    upper: FloatArray,
    pilot_upper: FloatArray,
    min_a: FloatArray,
    step: FloatArray,
    horizon: int,
) -> tuple[FloatArray, FloatArray]:
    """Per session and period, what it may draw and the highest pilot, under the EVSE caps.

    Without caps these are read-only broadcasts of the per-session values (no copy per period).
    A cap below the EVSE's minimum current leaves nothing: the EVSE must get 0 then.
    """
    shape = (cols.size, horizon)
    if not snapshot.site.evse_caps:
        return np.broadcast_to(upper[:, None], shape), np.broadcast_to(pilot_upper[:, None], shape)
    for cap in snapshot.site.evse_caps:
        for moment in (cap.start, cap.end):
            if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
                raise SnapshotError(
                    f"EVSE cap on {cap.evse_id}: {moment!r} is naive: times must be timezone-aware"
                )
        if not math.isfinite(cap.max_current_a):
            raise SnapshotError(
                f"EVSE cap on {cap.evse_id}: max_current_a must be finite, got {cap.max_current_a}"
            )
    policy = snapshot.policy
    cap_a = evse_cap_a(snapshot.site, evse_ids, snapshot.now, policy.period_s, horizon)[cols]
    # on the EVSE's step grid: a pilot must not go above the cap, so the plan should not either
    steps = np.where(step > 0, step, 1e-3)[:, None]
    cap_a = np.where(np.isfinite(cap_a), np.floor(cap_a / steps + 1e-7) * steps, cap_a)
    allowed = cap_a >= min_a[:, None] - 1e-9
    upper_at = np.where(allowed, np.minimum(upper[:, None], cap_a), 0.0)
    pilot_upper_at = np.where(allowed, np.minimum(pilot_upper[:, None], cap_a), 0.0)
    return upper_at, pilot_upper_at


def _forecast_periods(snapshot: StationSnapshot, period: timedelta, horizon: int) -> int:
    """Whole periods from ``now`` before ``snapshot.forecast_until`` (0 without a forecast)."""
    until = snapshot.forecast_until
    if until is None:
        return 0
    if until.tzinfo is None or until.utcoffset() is None:
        raise SnapshotError(f"forecast_until {until!r} is naive: times must be timezone-aware")
    if until <= snapshot.now:
        return 0
    return min(math.floor((until - snapshot.now) / period + 1e-9), horizon)


def _check_no_overlap(
    snapshot: StationSnapshot, cols: IntArray, arrival: IntArray, departure: IntArray
) -> None:
    """Offline, an EVSE serves its visits one after another; two at once is a data error."""
    order = np.lexsort((arrival, cols))
    for a, b in itertools.pairwise(order):
        if cols[a] == cols[b] and arrival[b] < departure[a]:
            first, second = snapshot.sessions[int(a)], snapshot.sessions[int(b)]
            raise SnapshotError(
                f"sessions {first.session_id} and {second.session_id} overlap on EVSE {first.evse_id}"
            )


def _aware(moment: datetime, what: str) -> None:
    if moment.utcoffset() is None:
        raise SnapshotError(f"{what} {moment!r} is naive: times must be timezone-aware")


def _check_session(s: ActiveSession) -> None:
    """A session's times and numbers must make sense: a NaN or a negative need would otherwise
    reach the LP (infeasible, or a schedule of nothing) instead of a clear error."""
    _aware(s.arrival, f"session {s.session_id}: arrival")
    if s.departure is not None:
        _aware(s.departure, f"session {s.session_id}: departure")
    numbers = {
        "energy_needed_kwh": s.energy_needed_kwh,
        "energy_delivered_kwh": s.energy_delivered_kwh,
        "vehicle_max_current_a": s.vehicle_max_current_a,
        "priority": s.priority,
    }
    for name, value in numbers.items():
        if value is not None and (not math.isfinite(value) or value < 0):
            raise SnapshotError(f"session {s.session_id}: {name} must be a finite number >= 0, got {value}")
