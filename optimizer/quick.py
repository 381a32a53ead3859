"""A cap's first answer in a tenth of a millisecond: the plan in force, scaled down where it must.

When a utility event or a manual peak event lowers a station's import limit, every charger must
get a lower profile at once (thousands of stations at a time), and the full LP can follow a few
seconds later. Scaling every current of a period by the same factor scales every phasor sum and
every power sum by that factor, so a plan that kept the old limits keeps the new ones once each
period's power fits the new site limit; rounding down to each EVSE's step only lowers currents
further. Where scaling would push a car below its EVSE's minimum current the equal share is the
better first answer (it switches fewer cars off); in later periods such a car gets 0 until the
LP's refinement, seconds later, plans them again. The result is checked against the exact
limits like any schedule; ``None`` means "use the exact-safe fallback instead" (the sessions
changed, there is no plan, or the check failed).
"""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np

from optimizer.network import Network
from optimizer.problem import prepare
from optimizer.solver import make_schedule
from optimizer.types import FloatArray, Schedule, SolveStatus, StationSnapshot

_TOLERANCE = 1e-9


def scaled_schedule(
    snapshot: StationSnapshot, previous: Schedule | None, network: Network | None = None
) -> Schedule | None:
    """``previous`` laid on ``snapshot``'s periods and scaled to its site limits, or ``None``."""
    started = time.perf_counter()
    if previous is None or previous.period_s != snapshot.policy.period_s or previous.periods == 0:
        return None
    if previous.session_ids != tuple(s.session_id for s in snapshot.sessions):
        return None
    offset_s = (snapshot.now - previous.start) / timedelta(seconds=1)
    if offset_s < 0:
        return None
    problem = prepare(snapshot, network)
    if tuple(problem.network.evse_ids[int(c)] for c in problem.cols) != previous.evse_ids:
        return None
    current_a = _laid_on(previous.current_a, offset_s / previous.period_s, problem.periods)
    power_kw = (current_a * problem.kw_per_a[:, None]).sum(axis=0)
    room_kw = np.maximum(problem.site_limit_kw, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(power_kw > room_kw, room_kw / np.where(power_kw > 0, power_kw, 1.0), 1.0)
    current_a = np.minimum(current_a * factor[None, :], problem.pilot_upper_at_a)
    step_a = problem.step_a[:, None]
    current_a = np.where(step_a > 0, np.floor(current_a / step_a + _TOLERANCE) * step_a, current_a)
    below_minimum = (current_a > _TOLERANCE) & (current_a + _TOLERANCE < problem.min_a[:, None])
    if below_minimum[:, 0].any():
        return None  # scaling would switch cars off now: the equal share gives the room to fewer, better
    current_a = np.where(below_minimum, 0.0, current_a)  # later periods: the LP's refinement replans them
    use = problem.network.utilisation(problem.per_evse(current_a), problem.site_limit_kw)
    if use.size and float(use.max()) > 1.0 + 1e-6:
        return None
    return make_schedule(
        problem, current_a, SolveStatus.FALLBACK, started, "the plan in force, scaled to a cap"
    )


def _laid_on(current_a: FloatArray, first: float, periods: int) -> FloatArray:
    """Period ``t`` of the result covers ``[first + t, first + t + 1)`` of ``current_a``'s periods:
    it takes the higher of the (at most two) periods it overlaps; past the end, the last one."""
    last = current_a.shape[1] - 1
    start = np.floor(first + np.arange(periods)).astype(np.int64)
    spill = np.where(first % 1.0 > _TOLERANCE, start + 1, start)
    a = current_a[:, np.minimum(start, last)]
    b = current_a[:, np.minimum(spill, last)]
    out: FloatArray = np.maximum(a, b)
    return out
