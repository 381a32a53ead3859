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
    """Mask of the sessions planned above 0 but below their minimum current in period ``t``."""
    x = current_a[:, t]
    live = (problem.departure > t) & (problem.arrival <= t)
    return np.asarray(live & (x > 1e-9) & (x < problem.min_a - 1e-9), dtype=np.bool_)


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
    upper = np.where(live, np.minimum(upper, problem.pilot_upper_a), 0.0)
    on_cols = np.nonzero(between)[0]
    n_bin = on_cols.size
    # columns: x (n), then z (n_bin); rows: limits over x, then x_i - upper_i z_i <= 0 and
    # x_i - min_i z_i >= 0 for the in-between cars
    linear = problem.network.linear_rows(problem.snapshot.policy.phasor_tolerance)
    coef = np.vstack([linear.matrix, problem.network.power_coef])[:, problem.cols]
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
