"""The per-station solver: snapshot in, safe schedule out, whatever happens.

``solve`` prepares the problem, runs the LP (or a baseline rule), rounds to the
EVSEs' steps and minimum currents, hands out what rounding freed in the first
periods, checks every period against the exact limits and falls back to the
equal-share heuristic on any failure, deadline overrun or violation.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from optimizer import heuristics, lp, minimum
from optimizer.allocate import PeriodAllocator, round_to_step
from optimizer.network import Network
from optimizer.problem import Problem, prepare
from optimizer.types import (
    Algorithm,
    FloatArray,
    ObjectiveBreakdown,
    Schedule,
    SolveStatus,
    StationSnapshot,
)

log = logging.getLogger(__name__)


def solve(
    snapshot: StationSnapshot,
    algorithm: Algorithm = Algorithm.FAIRWATT,
    network: Network | None = None,
    *,
    force_fallback: bool = False,
) -> Schedule:
    """Schedule the station's active sessions over the policy's horizon.

    ``network`` may be passed to reuse a compiled site (it must match the snapshot).
    ``force_fallback`` skips the LP (for tests and for an operator who distrusts it).
    """
    started = time.perf_counter()
    problem = prepare(snapshot, network)
    if problem.sessions == 0:
        return make_schedule(
            problem, np.zeros((0, problem.periods)), SolveStatus.EMPTY, started, "no active sessions"
        )
    status, message = SolveStatus.OPTIMAL, ""
    if algorithm is not Algorithm.FAIRWATT:
        by_rule = heuristics.schedule_by_rule(problem, algorithm)
        return make_schedule(problem, by_rule, SolveStatus.OPTIMAL, started, algorithm.value)
    current: FloatArray | None = None
    if not force_fallback:
        try:
            model = lp.build(problem)
            result = lp.solve(model, problem, snapshot.policy.deadline_s)
        except Exception:  # the solver must never take the station down: fall back, loudly
            log.exception("station %s: LP failed; falling back to equal share", snapshot.station_id)
            result = None
        if result is None:
            message = "LP did not reach an optimum in time"
        else:
            current = finish(problem, result.current_a)
            message = "stages: " + ",".join(result.stages_done)
            violation = _worst_violation(problem, current)
            if violation > 1e-6:
                log.error(
                    "station %s: LP schedule over a limit by %.2e; falling back",
                    snapshot.station_id,
                    violation,
                )
                current, message = None, f"LP schedule violated a limit by {violation:.2e}"
    else:
        message = "fallback forced"
    if current is None:
        status = SolveStatus.FALLBACK
        current = heuristics.schedule_by_rule(problem, Algorithm.EQUAL_SHARE)
    return make_schedule(problem, current, status, started, message)


def finish(problem: Problem, current_a: FloatArray) -> FloatArray:
    """Round to steps and minimum currents; make up in the exact periods what rounding took there.

    The exact periods (the one applied now and the next few) are rounded down and topped up
    with what each car lost in them; the later periods carry each car's remainder from period
    to period, so the plan keeps its energy where (and at the price) the LP put it, and cars
    planned below their minimum there get pulses at it. A scenario's sessions get nothing: each
    is one possible future among several, and the LP held only the cars present with a single
    future's sessions to the limits together.
    """
    in_scenario = problem.scenario >= 0
    planned_a = np.where(in_scenario[:, None], 0.0, current_a) if in_scenario.any() else current_a
    clipped = np.clip(planned_a, 0.0, problem.upper_at_a)
    # a session planned at its car's own maximum gets the pilot at the step above it (an EVSE's cap
    # is its own maximum then: that pilot is the cap)
    at_car_max = (clipped >= problem.upper_at_a - 1e-6) & (clipped > 0)
    lifted = np.where(at_car_max, problem.pilot_upper_at_a, clipped)
    if problem.periods and float(problem.min_a.max(initial=0.0)) > 0:
        switched = minimum.switch_on(problem, lifted, 0)  # the period applied now
        if switched is not None:
            lifted[:, 0] = switched
            clipped[:, 0] = np.minimum(switched, clipped[:, 0])
    exact = min(problem.snapshot.policy.exact_periods, problem.periods)
    out = np.empty_like(lifted)
    out[:, :exact] = round_to_step(lifted[:, :exact], problem.step_a, problem.min_a, snap=1e-2)
    top_a = _top_a(problem)
    out[:, exact:] = _carry_rounding(lifted[:, exact:], problem, top_a[:, exact:])
    # where lifting or snapping to a step pushed a period over an exact limit, round that
    # period's planned currents strictly down instead
    use = problem.network.utilisation(problem.per_evse(out), problem.site_limit_kw)
    over = np.nonzero(use.max(axis=0, initial=0.0) > 1.0 + 1e-9)[0]
    if over.size:
        out[:, over] = round_to_step(clipped[:, over], problem.step_a, problem.min_a)
    kwh_per_a = problem.kw_per_a * problem.period_h
    # What rounding took is made up in the exact periods only as far as it is lost in them: the
    # later periods are solved again before they are applied, and rounded then. (Made up now, a
    # depot's whole-amp night plan came back as full power at the evening's price.)
    later_a = np.maximum(out[:, exact:], clipped[:, exact:])  # the plan, or its snap to a step above
    kept_kwh = (out[:, :exact].sum(axis=1) + later_a.sum(axis=1)) * kwh_per_a
    shortfall_kwh = np.where(in_scenario, 0.0, np.maximum(problem.need_kwh - kept_kwh, 0.0))
    order = np.argsort(problem.laxity_h(), kind="stable")
    steps = np.where(problem.step_a > 0, problem.step_a, 1e-3)
    noise_a, half_min_a = 1e-2 * steps, 0.5 * problem.min_a
    leaving = problem.departure <= exact  # no later period to make up a car's loss in
    for t in range(exact):
        # what is still short, up to the next step and at least the minimum: the pilot that finishes
        # a car's need may round up (the car stops when it is full), else the last few watt-hours
        # are never delivered. Not below a hundredth of a step (solver noise), nor below half the
        # minimum for a car that stays past the exact periods (rounded to the nearest, as
        # ``minimum.in_between`` does; the next solve plans it again)
        room = shortfall_kwh / kwh_per_a
        worth = (room > noise_a) & ((room >= half_min_a) | leaving)
        if not worth.any():
            continue  # nothing to make up: no car may go above its planned current
        live = (problem.departure > t) & (problem.arrival <= t)
        room = np.where(worth, np.maximum(np.ceil(room / steps - 1e-6) * steps, problem.min_a), 0.0)
        upper = np.where(live, np.minimum(problem.pilot_upper_at_a[:, t], out[:, t] + room), 0.0)
        if not np.any(upper > out[:, t] + 1e-9):
            continue
        alloc = PeriodAllocator(
            problem.network,
            problem.cols,
            upper,
            problem.min_a,
            problem.step_a,
            float(problem.site_limit_kw[t]),
        )
        topped = alloc.top_up(out[:, t], order)
        shortfall_kwh = np.maximum(shortfall_kwh - (topped - out[:, t]) * kwh_per_a, 0.0)
        out[:, t] = topped
    # later periods: cars planned below their minimum get pulses at it instead of nothing, so the
    # plan (and a profile a charger keeps if it loses us) still finishes them
    if problem.periods > exact and np.any(problem.min_a > 0):  # (no minimum current: no pulses)
        planned = np.where(in_scenario[:, None], 0.0, lifted)
        left_kwh = np.where(in_scenario, 0.0, np.maximum(problem.need_kwh - out.sum(axis=1) * kwh_per_a, 0.0))
        out = minimum.pulse_later(problem, planned, out, left_kwh, exact)
    # no pilot above what a cap leaves the EVSE (snapping to a step may round up by a hair)
    return np.minimum(out, top_a)


def _top_a(problem: Problem) -> FloatArray:
    """Per session and period, the highest pilot on the EVSE's step grid that is worth sending."""
    steps = np.where(problem.step_a > 0, problem.step_a, 1e-3)[:, None]
    top: FloatArray = np.floor(problem.pilot_upper_at_a / steps + 1e-7) * steps
    return top


def _carry_rounding(current_a: FloatArray, problem: Problem, top_a: FloatArray) -> FloatArray:
    """The later periods rounded to each EVSE's step with the remainder carried to the next period.

    Each car's running total is rounded to the nearest step, so the plan keeps its energy where
    the LP put it (5.33 A for six periods: 5.3, 5.4, 5.3, 5.4, 5.3, 5.3 A, not 5.3 A six times).
    No pilot goes above the highest worth sending; below the minimum current becomes 0 (the
    pulses of ``minimum.pulse_later`` put that energy back).
    """
    if current_a.shape[1] == 0:
        return current_a.copy()
    steps = np.where(problem.step_a > 0, problem.step_a, 1e-3)[:, None]
    # floor(cumsum / steps + 0.5), its differences, times steps, clipped: computed in place
    running = np.cumsum(current_a, axis=1)
    running /= steps
    running += 0.5
    np.floor(running, out=running)
    out = np.empty_like(running)
    out[:, 0] = running[:, 0]
    np.subtract(running[:, 1:], running[:, :-1], out=out[:, 1:])
    out *= steps
    np.clip(out, 0.0, top_a, out=out)
    out[out < problem.min_a[:, None] - 1e-9] = 0.0
    return out


def _worst_violation(problem: Problem, current_a: FloatArray) -> float:
    """How far the schedule goes over its worst limit (relative; <= 0: within every limit).

    An EVSE cap counts against the pilot's step above the cap (a pilot never goes above the cap's
    step: see ``_top_a``): over it by more than a step's hair is a violation like any other."""
    use = problem.network.utilisation(problem.per_evse(current_a), problem.site_limit_kw)
    worst = float(np.max(use, initial=0.0) - 1.0)
    if problem.snapshot.site.evse_caps and current_a.size:
        over_a = current_a - problem.pilot_upper_at_a
        scale = np.maximum(problem.upper_a, 1.0)[:, None]
        worst = max(worst, float(np.max(over_a / scale)))
    return worst


def objective(
    problem: Problem, current_a: FloatArray, power_kw: FloatArray | None = None
) -> ObjectiveBreakdown:
    """The schedule's figures; ``power_kw``: ``current_a`` times each session's kW per A, if at hand."""
    drawn_a = np.minimum(current_a, problem.upper_at_a)  # a car takes no more than its maximum
    energy = drawn_a * (problem.kw_per_a * problem.period_h)[:, None]
    served = np.minimum(energy.sum(axis=1), problem.need_kwh)
    if power_kw is None:
        power_kw = current_a * problem.kw_per_a[:, None]
    power = power_kw.sum(axis=0) + problem.base_load_kw
    share = np.where(problem.need_kwh > 1e-9, served / np.maximum(problem.need_kwh, 1e-9), 1.0)
    return ObjectiveBreakdown(
        energy_kwh=float(served.sum()),
        energy_needed_kwh=float(problem.need_kwh.sum()),
        cost=float((energy.sum(axis=0) * problem.price_per_kwh).sum()),
        peak_kw=float(power.max(initial=0.0)),
        min_share_served=float(share.min(initial=1.0)),
    )


def make_schedule(
    problem: Problem, current_a: FloatArray, status: SolveStatus, started: float, message: str
) -> Schedule:
    snapshot = problem.snapshot
    ids = problem.network.evse_ids
    evse_ids = tuple(ids[c] for c in problem.cols.tolist())
    power_kw = current_a * problem.kw_per_a[:, None]
    return Schedule(
        station_id=snapshot.station_id,
        start=snapshot.now,
        period_s=snapshot.policy.period_s,
        evse_ids=evse_ids,
        session_ids=tuple(s.session_id for s in snapshot.sessions),
        current_a=current_a,
        power_kw=power_kw,
        status=status,
        objective=objective(problem, current_a, power_kw),
        solve_time_s=time.perf_counter() - started,
        message=message,
    )
