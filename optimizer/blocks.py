"""The LP's time grid: blocks of periods, one variable per session and block.

The first ``policy.exact_periods`` periods are blocks of one; after them blocks grow
geometrically, and they also break wherever a session arrives or leaves in the first hours,
and wherever the site limit, the price or a cap on an EVSE changes (see ``lp``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from optimizer.problem import Problem

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Blocks:
    start: IntArray  # first period of each block
    length: IntArray


def make_blocks(problem: Problem) -> Blocks:
    horizon = problem.periods
    exact = min(problem.snapshot.policy.exact_periods, horizon)
    cuts = [np.arange(exact + 1)]
    t, length, geometric = exact, 2, []
    while t < horizon:  # then blocks of 2, 4, 8, ... periods
        geometric.append(t)
        t += length
        length *= 2
    cuts.append(np.array(geometric, dtype=np.int64))
    # a departure inside the first hours cuts a block; a later one may fall inside a block
    fine = min(horizon, 4 * exact)
    cuts.append(problem.departure[problem.departure <= fine])
    cuts.append(problem.arrival[problem.arrival <= fine])
    for series in (problem.site_limit_kw, problem.price_per_kwh):
        cuts.append(np.nonzero(np.diff(series))[0] + 1)
    if problem.snapshot.site.evse_caps and problem.sessions:  # where a cap on an EVSE starts or ends
        cuts.append(np.nonzero(np.any(np.diff(problem.upper_at_a, axis=1) != 0, axis=0))[0] + 1)
    every = np.concatenate(cuts).astype(np.int64)
    edges = np.unique(np.append(every[(every >= 0) & (every <= horizon)], horizon))
    return Blocks(start=edges[:-1], length=np.diff(edges))
