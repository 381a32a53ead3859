"""Schedules from per-period rules: the fallback (equal share) and the baselines.

Each rule allocates one period at a time; the allocation is held until a session
leaves or its need is met, then recomputed, so a horizon costs one allocation per
event, not per period. Every allocation is exact-safe (see ``allocate``); only
``uncontrolled`` ignores the limits, as a baseline should.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from optimizer.allocate import PeriodAllocator
from optimizer.problem import Problem
from optimizer.types import Algorithm, FloatArray

Rule = Callable[[PeriodAllocator, Problem, FloatArray, Sequence[int]], FloatArray]


def _edf_order(problem: Problem, remaining: FloatArray, live: Sequence[int]) -> list[int]:
    return sorted(live, key=lambda i: (int(problem.departure[i]), -problem.priority[i], i))


def _llf_order(problem: Problem, remaining: FloatArray, live: Sequence[int], t: int) -> list[int]:
    rate = np.maximum(problem.upper_a * problem.kw_per_a, 1e-9)
    lax = (problem.departure - t) * problem.period_h - remaining / rate
    return sorted(live, key=lambda i: (float(lax[i]), i))


def schedule_by_rule(problem: Problem, algorithm: Algorithm) -> FloatArray:
    """Current per session per period [A], shape (sessions, periods)."""
    n, horizon = problem.sessions, problem.periods
    out = np.zeros((n, horizon))
    remaining = problem.need_kwh.copy()
    t = 0
    while t < horizon:
        live = [i for i in range(n) if problem.arrival[i] <= t < problem.departure[i] and remaining[i] > 1e-6]
        if not live:
            later = [int(a) for a in problem.arrival if a > t]
            if not later:
                break
            t = min(later)
            continue
        upper = np.zeros(n)
        for i in live:
            upper[i] = min(problem.upper_at_a[i, t], remaining[i] / (problem.kw_per_a[i] * problem.period_h))
        alloc = PeriodAllocator(
            problem.network,
            problem.cols,
            upper,
            problem.min_a,
            problem.step_a,
            float(problem.site_limit_kw[t]),
        )
        x = _allocate(alloc, problem, algorithm, remaining, live, t)
        # hold the allocation until someone leaves, finishes or the site limit changes
        end = t + 1
        energy = x * problem.kw_per_a * problem.period_h
        while end < horizon:
            if any(problem.departure[i] <= end for i in live) or any(problem.arrival == end):
                break
            if problem.site_limit_kw[end] != problem.site_limit_kw[t]:
                break
            if np.any(problem.upper_at_a[live, end] != problem.upper_at_a[live, t]):
                break  # a cap on an EVSE starts or ends
            if np.any((energy > 0) & (remaining - energy * (end - t + 1) < -1e-9)):
                break
            end += 1
        out[:, t:end] = x[:, None]
        remaining = np.maximum(remaining - energy * (end - t), 0.0)
        t = end
    return out


def _allocate(
    alloc: PeriodAllocator,
    problem: Problem,
    algorithm: Algorithm,
    remaining: FloatArray,
    live: Sequence[int],
    t: int,
) -> FloatArray:
    if algorithm is Algorithm.UNCONTROLLED:
        x = np.zeros(problem.sessions)
        for i in live:
            x[i] = alloc.upper_a[i] if alloc.upper_a[i] >= alloc.min_a[i] else 0.0
        return x
    if algorithm is Algorithm.EDF:
        return alloc.sorted_fill(_edf_order(problem, remaining, live))
    if algorithm is Algorithm.LLF:
        return alloc.sorted_fill(_llf_order(problem, remaining, live, t))
    if algorithm is Algorithm.ROUND_ROBIN:
        return alloc.round_robin_fast(sorted(live))
    # equal share (the fallback): weighted by priority; dropped last-first in laxity order
    order = _llf_order(problem, remaining, live, t)
    weights = np.where(np.isin(np.arange(problem.sessions), live), problem.priority, 0.0)
    return alloc.equal_share(weights, order)
