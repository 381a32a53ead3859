"""A convex scheduler of adacharge's kind, timed beside ours in ``python -m benchmarks micro``.

Issue 2 compares our per-call time with adacharge, the convex-optimisation scheduler of the
ACN-Sim paper (0.8-0.9 s for 50 EVs x 288 periods on the authors' machine). adacharge itself
is not on PyPI, and a figure from another machine says little on ours, so this module builds a
problem of the same kind, in our own code, and the benchmark times it on the same snapshots in
the same run: a ratio to it travels between machines, milliseconds do not.

The model (written from the paper's description, not from adacharge's code):

- one CVXPY variable per session and period, ``0 <= r <=`` the EVSE's maximum while the car is plugged in,
  0 after it leaves; energy over the horizon at most what the session still needs (request less delivered);
- every current limit of the site as a second-order cone per period: the magnitude of the
  phasor sum of the currents, ``|sum_i c_ki r_it| <= m_k`` (adacharge's ``SOC`` constraints;
  our LP uses an inner polygon of each cone instead), and the power rows linearly;
- objective, maximised: energy delivered (weight 1000), less its energy cost, plus a small
  quick-charge term (earlier periods weigh more) and adacharge's tiny equal-share regulariser
  (``-1e-12 * sum r^2``), the terms of the paper's cost-minimising MPC.

Built anew on every call, as an MPC loop built around CVXPY does, and solved with Clarabel
(CVXPY's default conic solver). ``cvxpy`` comes with the ``bench`` extra; without it the
benchmark leaves this column out.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizer import Network, StationSnapshot
from optimizer.limits import power_limit_kw, price_per_kwh
from optimizer.types import FloatArray


@dataclass(frozen=True, slots=True)
class ConvexResult:
    """One call: wall time [s] (build + solve), the solver's status and the plan [A]."""

    seconds: float
    status: str
    current_a: FloatArray  # (sessions, periods), in the snapshot's session order


def available() -> bool:
    """Whether CVXPY (and so this anchor) is installed."""
    try:
        importlib.import_module("cvxpy")
    except ImportError:
        return False
    return True


def solve_convex(snapshot: StationSnapshot, network: Network) -> ConvexResult:
    """Build and solve the model above for ``snapshot`` on ``network``."""
    cp: Any = importlib.import_module("cvxpy")  # optional (the ``bench`` extra); its stubs are partial

    policy = snapshot.policy
    horizon, period_s = policy.horizon_periods, policy.period_s
    sessions = snapshot.sessions
    n = len(sessions)
    began = time.perf_counter()
    cols = network.index([s.evse_id for s in sessions])
    kw_per_a = network.kw_per_a[cols]
    upper = np.zeros((n, horizon))
    for i, s in enumerate(sessions):
        stay_s = None if s.departure is None else (s.departure - snapshot.now).total_seconds()
        leave = horizon if stay_s is None else int(stay_s // period_s)
        car_a = s.vehicle_max_current_a if s.vehicle_max_current_a is not None else np.inf
        upper[i, : max(0, min(leave, horizon))] = min(snapshot.evse(s.evse_id).max_current_a, car_a)
    need_kwh = np.array([max((s.energy_needed_kwh or 0.0) - s.energy_delivered_kwh, 0.0) for s in sessions])
    hours = period_s / 3600
    rate = cp.Variable((n, horizon), nonneg=True)
    energy_kwh = cp.multiply(rate, (kw_per_a * hours)[:, None])
    constraints: list[Any] = [rate <= upper, cp.sum(energy_kwh, axis=1) <= need_kwh]
    coef = network.current_coef[:, cols]
    for k in range(coef.shape[0]):
        phasor = np.vstack([coef[k].real, coef[k].imag]) @ rate  # (2, horizon)
        constraints.append(cp.SOC(np.full(horizon, network.current_limit_a[k]), phasor, axis=0))
    power = network.power_coef[:, cols]
    site_kw = power_limit_kw(snapshot.site, snapshot.now, period_s, horizon)  # caps and base load too
    constraints.append(power @ rate <= network.power_limits(site_kw))
    price = price_per_kwh(snapshot.site, snapshot.now, period_s, horizon)
    quick = (horizon - np.arange(horizon)) / horizon
    objective = cp.Maximize(
        1000 * cp.sum(energy_kwh)
        - cp.sum(energy_kwh @ price)
        + 1e-3 * cp.sum(energy_kwh @ quick)
        - 1e-12 * cp.sum_squares(rate)
    )
    problem = cp.Problem(objective, constraints)
    problem.solve(solver=cp.CLARABEL)
    seconds = time.perf_counter() - began
    value = rate.value if rate.value is not None else np.zeros((n, horizon))
    return ConvexResult(seconds, str(problem.status), np.asarray(value, dtype=np.float64))
