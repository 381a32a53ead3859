"""The quick answer to a cap: the plan in force, scaled where the new limit binds, exact-safe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from optimizer import solve
from optimizer.network import Network
from optimizer.quick import scaled_schedule
from optimizer.types import (
    ActiveSession,
    Algorithm,
    CapWindow,
    Connection,
    Evse,
    FeederNode,
    Policy,
    Site,
    StationSnapshot,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
EVSES = tuple(
    Evse(f"E{i}", (Connection.L1, Connection.L2, Connection.L3)[i % 3], 230.0, 32.0, 6.0) for i in range(9)
)
ROOT = FeederNode("main", limit_a=63.0, evse_ids=tuple(e.evse_id for e in EVSES))
POLICY = Policy(period_s=300, horizon_periods=24, deadline_s=5.0)


def snapshot(now: datetime, caps: tuple[CapWindow, ...] = (), sessions: int = 9) -> StationSnapshot:
    cars = tuple(
        ActiveSession(f"s{i}", f"E{i}", NOW - timedelta(minutes=20), NOW + timedelta(hours=4), 30.0)
        for i in range(sessions)
    )
    return StationSnapshot("ST", now, Site(grid_limit_kw=40.0, root=ROOT, caps=caps), EVSES, cars, POLICY)


def test_a_cap_scales_the_plan_in_force_within_every_limit() -> None:
    plan = solve(snapshot(NOW))
    assert plan.power_kw[:, 0].sum() > 30.0  # the normal plan uses most of the 40 kW
    later = NOW + timedelta(seconds=130)  # mid-period: each new period takes the higher of two old ones
    cap = CapWindow(later, later + timedelta(hours=1), limit_kw=24.0, source="dr")
    capped = snapshot(later, (cap,))
    quick = scaled_schedule(capped, plan)
    assert quick is not None
    assert quick.start == later
    assert quick.session_ids == plan.session_ids
    total_kw = quick.power_kw.sum(axis=0)
    in_cap = [t for t in range(quick.periods) if quick.period_start(t) + timedelta(seconds=300) <= cap.end]
    assert max(total_kw[t] for t in in_cap) <= 24.0 + 1e-9
    assert total_kw[0] > 20.0  # scaled, not switched off
    network = Network.build(capped.site, list(EVSES))
    full = np.zeros((len(network.evse_ids), quick.periods))
    full[network.index(quick.evse_ids)] = quick.current_a
    limits = np.where(
        [quick.period_start(t) < cap.end for t in range(quick.periods)], 24.0, capped.site.grid_limit_kw
    )
    assert network.utilisation(full, limits).max() <= 1.0 + 1e-9
    on = quick.current_a[quick.current_a > 0]
    assert (on >= 6.0 - 1e-9).all()  # the minimum current holds
    assert np.allclose(on * 10, np.round(on * 10))  # on the EVSEs' 0.1 A steps


def test_no_plan_or_other_sessions_means_use_the_fallback() -> None:
    plan = solve(snapshot(NOW), Algorithm.FAIRWATT)
    assert scaled_schedule(snapshot(NOW), None) is None
    assert scaled_schedule(snapshot(NOW, sessions=8), plan) is None  # a car left: plan again
    assert scaled_schedule(snapshot(NOW - timedelta(minutes=5)), plan) is None  # a plan from the future


def test_scaling_that_would_switch_cars_off_leaves_it_to_the_equal_share() -> None:
    plan = solve(snapshot(NOW))
    cap = CapWindow(NOW, NOW + timedelta(hours=1), limit_kw=8.0)  # 9 cars x 6 A would need 12.4 kW
    assert scaled_schedule(snapshot(NOW, (cap,)), plan) is None
