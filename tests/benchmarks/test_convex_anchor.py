"""The micro benchmark's convex anchor solves the problem ours does, on the exact cones.

Not a timing test. Its plan must keep every limit of the Caltech site (the cones are exact),
never beat a session's remaining need, and plan at least the energy our LP plans (our LP holds
each cone by an inner polygon, so it can only plan less) but not much more.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("cvxpy")

from benchmarks.caltech_site import caltech_evses, caltech_site
from benchmarks.convex_anchor import solve_convex
from benchmarks.micro import PERIOD_S, random_snapshot
from optimizer import Network, solve


@pytest.mark.parametrize("cap_kw", [30.0, 150.0])
def test_the_convex_plan_keeps_the_limits_and_plans_at_least_our_energy(cap_kw: float) -> None:
    snapshot = random_snapshot(np.random.default_rng(5), 20, 48, cap_kw)
    network = Network.build(caltech_site(cap_kw), caltech_evses())
    result = solve_convex(snapshot, network)
    assert result.status == "optimal"
    cols = network.index([s.evse_id for s in snapshot.sessions])
    current_a = np.zeros((len(network.evse_ids), 48))
    current_a[cols] = result.current_a
    assert network.utilisation(current_a, cap_kw).max() <= 1.0 + 1e-5
    kwh = result.current_a.sum(axis=1) * network.kw_per_a[cols] * PERIOD_S / 3600
    remaining = np.array([(s.energy_needed_kwh or 0.0) - s.energy_delivered_kwh for s in snapshot.sessions])
    assert np.all(kwh <= remaining + 1e-4)
    ours_kwh = float(solve(snapshot, network=network).power_kw.sum()) * PERIOD_S / 3600
    assert ours_kwh <= kwh.sum() + 1e-3
    assert ours_kwh >= 0.9 * kwh.sum()


def test_a_car_that_left_gets_nothing_and_a_slow_car_stays_under_its_rate() -> None:
    snapshot = random_snapshot(np.random.default_rng(6), 4, 24, 150.0)
    first, second, *rest = snapshot.sessions
    sessions = (
        replace(first, departure=snapshot.now),  # leaves now: no period left
        replace(second, vehicle_max_current_a=7.5),
        *rest,
    )
    network = Network.build(caltech_site(150.0), caltech_evses())
    result = solve_convex(replace(snapshot, sessions=sessions), network)
    assert np.allclose(result.current_a[0], 0.0, atol=1e-6)
    assert result.current_a[1].max() <= 7.5 + 1e-5
    assert result.current_a[1].max() > 1.0
