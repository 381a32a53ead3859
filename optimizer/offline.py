"""The offline bound: one LP over a whole day with perfect knowledge of every session.

It sees each session's true arrival, departure and energy need, solves every period
exactly (no blocking) and is the upper bound the online solver is measured against.
Its phasor limits are linearised 40x finer than the online solver's default: a bound should
give away as little of the true (circular) limit as it can, and it runs once, not every period.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from optimizer import lp
from optimizer.heuristics import schedule_by_rule
from optimizer.network import Network
from optimizer.problem import prepare
from optimizer.solver import finish, make_schedule
from optimizer.types import (
    ActiveSession,
    Algorithm,
    Evse,
    Policy,
    Schedule,
    Site,
    SolveStatus,
    StationSnapshot,
)

# relative share of a phasor limit the bound may give away (the online default is 0.002): on the
# Caltech month at 20 / 25 / 30 kW the bound rises by 0.020 / 0.031 / 0.021 points against 0.002,
# and by no more than 0.006 below this (0.0002 -> 0.00005)
OFFLINE_PHASOR_TOLERANCE = 5e-5


def solve_offline(
    site: Site,
    evses: Sequence[Evse],
    sessions: Sequence[ActiveSession],
    start: datetime,
    periods: int,
    policy: Policy,
    network: Network | None = None,
) -> Schedule:
    """Schedule ``sessions`` (true arrivals, departures, needs) over ``periods`` from ``start``."""
    started = time.perf_counter()
    exact_policy = replace(
        policy,
        horizon_periods=periods,
        exact_periods=periods,
        deadline_s=max(policy.deadline_s, 120),
        phasor_tolerance=min(policy.phasor_tolerance, OFFLINE_PHASOR_TOLERANCE),
    )
    snapshot = StationSnapshot("offline", start, site, tuple(evses), tuple(sessions), exact_policy)
    problem = prepare(snapshot, network, periods, future_arrivals=True)
    if problem.sessions == 0:
        return make_schedule(
            problem, problem.need_kwh[:, None] * 0, SolveStatus.EMPTY, started, "no sessions"
        )
    result = lp.solve(lp.build(problem), problem, exact_policy.deadline_s)
    if result is None:
        current = schedule_by_rule(problem, Algorithm.EQUAL_SHARE)
        return make_schedule(problem, current, SolveStatus.FALLBACK, started, "offline LP failed")
    current = finish(problem, result.current_a)
    return make_schedule(
        problem, current, SolveStatus.OPTIMAL, started, "offline: " + ",".join(result.stages_done)
    )
