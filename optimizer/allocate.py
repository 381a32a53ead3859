"""Allocation within one period: rounding, greedy top-up, sorted and equal-share filling.

These are the exact, always-safe building blocks shared by the fallback heuristic, the
baselines and the read-back of the LP: every function returns currents that meet every
limit of the network exactly (not only its linearisation), respect each EVSE's step
and the minimum-current rule (a current is either 0 or at least the minimum).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from optimizer.network import Network
from optimizer.types import FloatArray

IntArray = npt.NDArray[np.int64]

_EPS = 1e-9


def round_to_step(
    current_a: FloatArray, step_a: FloatArray, min_a: FloatArray, snap: float = 1e-7
) -> FloatArray:
    """Round down to each EVSE's step; below the minimum current becomes 0.

    A value within ``snap`` of a step below the next step counts as on it (solver noise:
    15.99999 A is 16 A); the caller checks the result against the exact limits.
    """
    steps = np.where(step_a > 0, step_a, 1e-3)
    shape = (-1,) + (1,) * (current_a.ndim - 1)
    st = steps.reshape(shape)
    out = np.asarray(current_a / st, dtype=np.float64)  # floor(current / step + snap) * step, in place
    out += snap
    np.floor(out, out=out)
    out *= st
    out[out < min_a.reshape(shape) - _EPS] = 0.0
    return np.maximum(out, 0.0, out=out)


def floor_step(value_a: float, step_a: float) -> float:
    if step_a <= 0:
        return value_a
    return math.floor(value_a / step_a + 1e-7) * step_a


class PeriodAllocator:
    """Allocates one period's currents over the network's EVSEs for a set of active sessions.

    ``cols`` maps each session to its EVSE's column in ``network``; ``upper_a`` is what
    each session may take this period (EVSE and vehicle maximum, remaining need), ``min_a``
    and ``step_a`` come from its EVSE.
    """

    def __init__(
        self,
        network: Network,
        cols: IntArray,
        upper_a: FloatArray,
        min_a: FloatArray,
        step_a: FloatArray,
        site_limit_kw: float,
    ) -> None:
        self.network = network
        self.cols = cols
        self.upper_a = np.maximum(upper_a, 0.0)
        self.min_a = min_a
        self.step_a = step_a
        self.site_limit_kw = site_limit_kw

    def full(self, session_a: FloatArray) -> FloatArray:
        x = np.zeros(len(self.network.evse_ids), dtype=np.float64)
        np.add.at(x, self.cols, session_a)
        return x

    def feasible(self, session_a: FloatArray) -> bool:
        return self.network.is_feasible(self.full(session_a), self.site_limit_kw)

    def top_up(self, session_a: FloatArray, order: Sequence[int] | IntArray) -> FloatArray:
        """Raise sessions, first come first in ``order``, to the most each can take (exact, stepped).

        All candidates' headrooms are computed at once; the first that can gain is raised
        and the rest re-examined, so the loop runs once per session raised.
        """
        x = session_a.copy()
        full = self.full(x)
        ranked = np.asarray(order, dtype=np.int64)
        candidates = ranked[self.upper_a[ranked] > x[ranked] + _EPS]
        if candidates.size == 0:
            return x
        # each round evaluates every candidate found above (their terms gathered once); ``alive``
        # marks the ones still examined: after the last one raised, and able to gain before
        headrooms = self.network.headrooms(self.cols[candidates], self.site_limit_kw)
        steps = np.where(self.step_a > 0, self.step_a, 1e-3)[candidates]
        upper = self.upper_a[candidates]
        least = self.min_a[candidates] - _EPS
        alive = np.ones(candidates.size, dtype=np.bool_)
        while alive.any():
            now = x[candidates]
            want = np.minimum(now + headrooms(full), upper)
            target = np.floor(want / steps + 1e-7) * steps
            gains = (target > now + _EPS) & (target >= least) & alive
            if not gains.any():
                break
            k = int(np.argmax(gains))
            i = int(candidates[k])
            full[self.cols[i]] += target[k] - x[i]
            x[i] = target[k]
            alive = gains
            alive[: k + 1] = False
        return x

    def sorted_fill(self, order: Sequence[int]) -> FloatArray:
        """Each session in ``order`` gets the most it can take (EDF, LLF and priority baselines)."""
        return self.top_up(np.zeros(self.cols.size), order)

    def round_robin(self, order: Sequence[int]) -> FloatArray:
        """Hand out one step at a time in turn until nobody can take more.

        Kept as the literal rule for small cases and tests; ``round_robin_fast`` gives the
        same allocation (equal share, stepped) without one headroom check per step.
        """
        x = np.zeros(self.cols.size)
        full = self.full(x)
        live = [i for i in order if self.upper_a[i] >= max(self.min_a[i], self.step_a[i]) - _EPS]
        while live:
            still: list[int] = []
            for i in live:
                inc = max(float(self.step_a[i]), self.min_a[i] - x[i])
                target = min(x[i] + inc, self.upper_a[i])
                target = floor_step(target, float(self.step_a[i]))
                if target <= x[i] + _EPS:
                    continue
                room = self.network.headroom_a(full, int(self.cols[i]), self.site_limit_kw)
                if target - x[i] > room + _EPS:
                    continue
                full[self.cols[i]] += target - x[i]
                x[i] = target
                if x[i] < self.upper_a[i] - _EPS:
                    still.append(i)
            live = still
        return x

    def round_robin_fast(self, order: Sequence[int]) -> FloatArray:
        """Round robin's end state: everyone raised together, stepped, then topped up in turn."""
        return self.equal_share(np.ones(self.cols.size), order)

    def equal_share(self, weights: FloatArray, order: Sequence[int]) -> FloatArray:
        """Water-filling: raise everyone's current together (in proportion to ``weights``).

        Progressive filling: find the highest common level that fits, freeze the sessions
        held by a binding limit or their own maximum, repeat with the rest. Then apply the
        minimum-current rule (dropping the last sessions in ``order`` until the rest can
        have their minimum), round down to steps and hand out what rounding freed.
        """
        n = self.cols.size
        dropped: set[int] = set()
        while True:
            x = self._progressive(weights, dropped)
            below = [i for i in range(n) if i not in dropped and _EPS < x[i] < self.min_a[i] - _EPS]
            below += [i for i in range(n) if i not in dropped and x[i] <= _EPS and self.upper_a[i] > _EPS]
            if not below:
                break
            victims = [i for i in reversed(order) if i in below]
            dropped.add(victims[0])
        stepped = round_to_step(x, self.step_a, self.min_a, snap=1e-2)  # 15.99999 A is 16 A
        if not self.feasible(stepped):
            stepped = round_to_step(x, self.step_a, self.min_a)
        return self.top_up(stepped, order)

    def _progressive(self, weights: FloatArray, dropped: set[int]) -> FloatArray:
        """Progressive filling with the exact level of each round (no search).

        In a round the live sessions rise along ``w``; each current limit allows the
        level where ``|z + level * c| = m`` (the positive root of a quadratic), each power
        limit a linear one, each session its own maximum. The smallest wins; the sessions
        it holds freeze, the rest go on.
        """
        n = self.cols.size
        x = np.zeros(n)
        live = np.array([i not in dropped and self.upper_a[i] > _EPS for i in range(n)])
        w = np.where(weights > 0, weights, 1.0)
        net = self.network
        for _ in range(n + 1):
            if not live.any():
                break
            step = np.where(live, w, 0.0)
            level = float(np.min(np.where(live, (self.upper_a - x) / w, np.inf)))
            full, direction = self.full(x), self.full(step)
            z, c = net.current_coef @ full, net.current_coef @ direction
            cc = np.abs(c) ** 2
            moving = cc > 1e-18
            if moving.any():
                b = (np.conj(z[moving]) * c[moving]).real
                slack = np.abs(z[moving]) ** 2 - net.current_limit_a[moving] ** 2
                disc = np.maximum(b * b - cc[moving] * slack, 0.0)
                level = min(level, float(np.min((-b + np.sqrt(disc)) / cc[moving])))
            rise_kw = net.power_coef @ direction
            free_kw = net.power_limits(self.site_limit_kw)[:, 0] - net.power_coef @ full
            rising = rise_kw > 1e-12
            if rising.any():
                level = min(level, float(np.min(free_kw[rising] / rise_kw[rising])))
            level = max(level * (1.0 - 1e-9), 0.0)
            x = np.where(live, np.minimum(x + level * w, self.upper_a), x)
            still = self._still_free(x, live)
            if np.array_equal(still, live):  # nothing froze: a limit is tight to rounding; stop
                break
            live = still
        return x

    def _still_free(self, x: FloatArray, live: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Sessions not held by their own maximum nor by a limit at (or within 0.1 % of) full use."""
        full = self.full(x)
        use = self.network.utilisation(full, self.site_limit_kw)
        tight = use >= 1.0 - 1e-3
        coef = np.vstack([np.abs(self.network.current_coef), self.network.power_coef])
        blocked_cols = np.any(coef[tight] > 0, axis=0) if tight.any() else np.zeros(coef.shape[1], dtype=bool)
        free = live & (x < self.upper_a - _EPS) & ~blocked_cols[self.cols]
        return np.asarray(free, dtype=np.bool_)
