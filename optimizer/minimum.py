"""Minimum currents in the period applied now: a small mixed-integer program.

An EVSE charges at 0 or at least its minimum current (e.g. 6 A). The LP knows nothing of
that, so it may plan a car at 3 A; rounding would switch it off. Here, for the period
applied now, the cars the LP planned between 0 and their minimum get an on/off binary
(every other car is continuous): the program keeps the LP's energy where it can and
switches on as many of those cars as fit, at least at their minimum, under the same
(inner-polygon) limits. It is mixed-integer only where the minimum current requires it,
and small: one period, binaries only for the cars in between. When it finds nothing in
its time, the caller keeps the plain rounding.
"""

from __future__ import annotations

import logging

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from optimizer.problem import Problem
from optimizer.types import FloatArray

log = logging.getLogger(__name__)

_INF = highspy.kHighsInf
TIME_LIMIT_S = 0.2


def in_between(problem: Problem, current_a: FloatArray, t: int) -> npt.NDArray[np.bool_]:
    """Mask of the sessions planned at least half their minimum current but below it in period ``t``.

    Below half, the plan is rounded to 0 like any other rounding (the top-up of the periods
    applied now and the pulses later make up what it loses where it adds up to enough): raised to
    the minimum, a car the cost stage planned at 0.01 A, a hair's breadth off 0, charged at 6 A
    through the dearest hours.
    """
    x = current_a[:, t]
    live = (problem.departure > t) & (problem.arrival <= t)
    return np.asarray(
        live & (x > 1e-9) & (x >= 0.5 * problem.min_a) & (x < problem.min_a - 1e-9), dtype=np.bool_
    )


def switch_on(problem: Problem, current_a: FloatArray, t: int) -> FloatArray | None:
    """Period ``t``'s currents with the in-between cars switched on or off (``None``: keep rounding).

    Every car keeps at most what the LP planned for it, except that a car switched on may
    be raised to its minimum; the objective is the energy in the period, then (far below)
    the number of cars switched on.
    """
    between = in_between(problem, current_a, t)
    if not between.any():
        return None
    n = problem.sessions
    planned = current_a[:, t]
    live = (problem.departure > t) & (problem.arrival <= t)
    upper = np.where(between, np.maximum(planned, problem.min_a), planned)
    upper = np.where(live, np.minimum(upper, problem.pilot_upper_at_a[:, t]), 0.0)
    on_cols = np.nonzero(between)[0]
    n_bin = on_cols.size
    # columns: x (n), then z (n_bin); rows: limits over x, then x_i - upper_i z_i <= 0 and
    # x_i - min_i z_i >= 0 for the in-between cars
    rows = problem.network.limit_rows(problem.snapshot.policy.phasor_tolerance)
    linear, coef = rows.linear, rows.coef[:, problem.cols]
    bound = np.concatenate(
        [linear.bound, problem.network.power_limits(float(problem.site_limit_kw[t]))[:, 0]]
    )
    keep = np.any(coef != 0, axis=1)
    coef, bound = coef[keep], bound[keep]
    k = np.arange(n_bin)
    link_hi = sp.coo_matrix(
        (
            np.concatenate([np.ones(n_bin), -upper[on_cols]]),
            (np.concatenate([k, k]), np.concatenate([on_cols, n + k])),
        ),
        shape=(n_bin, n + n_bin),
    )
    link_lo = sp.coo_matrix(
        (
            np.concatenate([np.ones(n_bin), -problem.min_a[on_cols]]),
            (np.concatenate([k, k]), np.concatenate([on_cols, n + k])),
        ),
        shape=(n_bin, n + n_bin),
    )
    limits = sp.hstack([sp.coo_matrix(coef), sp.coo_matrix((coef.shape[0], n_bin))])
    matrix = sp.vstack([limits, link_hi, link_lo]).tocsc()
    lp = highspy.HighsLp()
    lp.num_col_ = n + n_bin
    lp.num_row_ = matrix.shape[0]
    kwh = problem.kw_per_a * problem.period_h
    lp.col_cost_ = np.concatenate([-kwh, np.full(n_bin, -1e-4 * float(kwh.max(initial=1.0)))])
    # a car already at or above its minimum may give way, but not below its minimum
    on_already = live & ~between & (planned >= problem.min_a - 1e-9) & (planned > 1e-9)
    lp.col_lower_ = np.concatenate(
        [np.where(on_already, np.minimum(problem.min_a, upper), 0.0), np.zeros(n_bin)]
    )
    lp.col_upper_ = np.concatenate([upper, np.ones(n_bin)])
    lp.row_lower_ = np.concatenate([np.full(coef.shape[0], -_INF), np.full(n_bin, -_INF), np.zeros(n_bin)])
    lp.row_upper_ = np.concatenate([bound, np.zeros(n_bin), np.full(n_bin, _INF)])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    lp.integrality_ = [highspy.HighsVarType.kContinuous] * n + [highspy.HighsVarType.kInteger] * n_bin
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", TIME_LIMIT_S)
    h.setOptionValue("mip_rel_gap", 1e-4)
    h.passModel(lp)
    h.run()
    if h.getInfo().primal_solution_status != highspy.SolutionStatus.kSolutionStatusFeasible:
        log.info("station %s: minimum-current MIP found nothing in time", problem.snapshot.station_id)
        return None
    values = np.asarray(h.getSolution().col_value, dtype=np.float64)
    x = np.clip(values[:n], 0.0, upper)
    switched_off = np.zeros(n, dtype=np.bool_)
    switched_off[on_cols] = values[n:] < 0.5
    x[switched_off] = 0.0
    return x


def pulse_later(
    problem: Problem, planned_a: FloatArray, out: FloatArray, shortfall_kwh: FloatArray, first: int
) -> FloatArray:
    """Periods ``first``.. of ``out`` with the energy rounding took from cars planned below their minimum
    put back as pulses at the minimum, as far as each car is still short and every limit allows.

    The LP may spread a car's need at, say, 5 A over hours; rounding makes every such period 0, so
    the plan (and the profile the charger holds if it loses the central system) would stop the car
    early. Here each such car is switched on at its minimum in the share of those periods its
    planned current was of the minimum (spread like a delta-sigma modulator: on where its running
    sum crosses a whole period), at most until its shortfall is covered. A period that would then
    break a limit keeps the plain rounding. The period applied now is left alone (see ``switch_on``).
    """
    n, periods = out.shape
    if periods <= first or not np.any(problem.min_a > 0):
        return out
    steps = np.where(problem.step_a > 0, problem.step_a, 1e-3)
    min_on = np.ceil(problem.min_a / steps - 1e-6) * steps  # the minimum, up to a whole step
    can = (problem.min_a > 0) & (min_on <= problem.pilot_upper_a + 1e-9) & (shortfall_kwh > 1e-9)
    later = np.zeros((n, periods), dtype=np.bool_)
    later[:, first:] = True
    between = later & can[:, None] & (planned_a > 1e-9) & (out <= 1e-9)
    between &= planned_a < problem.min_a[:, None] - 1e-9
    between &= min_on[:, None] <= problem.pilot_upper_at_a + 1e-9  # not where a cap is below the minimum
    if not between.any():
        return out
    ratio = np.where(between, planned_a / np.maximum(problem.min_a, 1e-9)[:, None], 0.0)
    per_pulse_kwh = np.minimum(min_on, problem.upper_a) * problem.kw_per_a * problem.period_h
    allowed = np.ceil(shortfall_kwh / np.maximum(per_pulse_kwh, 1e-12) - 1e-9)
    # a car short of more than its plan's pulses give (what the periods applied now could not
    # take) gets proportionally more of them, at most one per period
    natural = ratio.sum(axis=1)
    ratio = np.minimum(ratio * np.maximum(allowed / np.maximum(natural, 1e-12), 1.0)[:, None], 1.0)
    running = np.cumsum(ratio, axis=1)
    on = between & (np.floor(running + 0.5) > np.floor(running - ratio + 0.5))
    on &= np.cumsum(on, axis=1) <= allowed[:, None]
    if not on.any():
        return out
    pulsed = np.where(on, min_on[:, None], out)
    over = _over(problem, pulsed, problem.site_limit_kw)
    order = np.argsort(problem.laxity_h(), kind="stable")
    for t in np.nonzero(over)[0]:
        # the period keeps the pulses of the least-laxity cars that fit: candidate k holds the first k
        cars = order[on[order, t]]
        candidates = np.repeat(out[:, t : t + 1], cars.size + 1, axis=1)
        for k in range(1, cars.size + 1):
            candidates[cars[:k], k] = min_on[cars[:k]]
        fits = ~_over(problem, candidates, np.full(cars.size + 1, problem.site_limit_kw[t]))
        pulsed[:, t] = candidates[:, int(np.nonzero(fits)[0].max(initial=0))]
    return pulsed


def _over(problem: Problem, current_a: FloatArray, site_limit_kw: FloatArray) -> npt.NDArray[np.bool_]:
    """Per column of ``current_a`` (sessions x columns): whether it breaks a limit."""
    use = problem.network.utilisation(problem.per_evse(current_a), site_limit_kw)
    return np.asarray(use.max(axis=0, initial=0.0) > 1.0 + 1e-9, dtype=np.bool_)
