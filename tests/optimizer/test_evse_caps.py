"""Caps on single EVSEs over time windows (``Site.evse_caps``): hand-checked cases.

A charger limited from outside (OCPP 2.0.1 NotifyChargingLimit) for part of the horizon is planned
at no more than the cap while it lasts and freely around it, so the room it frees goes to the
other EVSEs then, and the capped car makes up later what it could not take.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from optimizer import (
    ActiveSession,
    Connection,
    Evse,
    EvseCap,
    FeederNode,
    Policy,
    Site,
    SnapshotError,
    SolveStatus,
    StationSnapshot,
    solve,
)
from optimizer.quick import scaled_schedule

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
POLICY = Policy(period_s=900, horizon_periods=16, exact_periods=4)


def station(
    caps: tuple[EvseCap, ...], *, min_a: float = 0.0, step: float = 0.1, hours: float = 2.0
) -> StationSnapshot:
    """Two single-phase 32 A EVSEs on a 40 A feeder, two cars staying ``hours`` that need more
    than they can get."""
    evses = tuple(Evse(e, Connection.L1, 230.0, 32.0, min_current_a=min_a, step=step) for e in ("a", "b"))
    site = Site(
        grid_limit_kw=1000.0, root=FeederNode("main", limit_a=40.0, evse_ids=("a", "b")), evse_caps=caps
    )
    sessions = tuple(ActiveSession(f"s-{e}", e, NOW, NOW + hours * HOUR, 100.0) for e in ("a", "b"))
    return StationSnapshot("st", NOW, site, evses, sessions, POLICY)


def test_a_cap_for_the_first_hour_gives_its_room_to_the_other_car_and_is_made_up_after() -> None:
    # 40 A for two cars over 2 h (8 periods); equal needs, so max-min fairness gives each 160 A-periods.
    # While a is capped at 10 A (periods 0-3), b takes the other 30 A; after, a 30 A and b 10 A.
    result = solve(station((EvseCap("a", NOW, NOW + HOUR, 10.0),)))
    assert result.status is SolveStatus.OPTIMAL
    a, b = result.current_a
    assert a[:4] == pytest.approx([10.0] * 4, abs=0.1)
    assert b[:4] == pytest.approx([30.0] * 4, abs=0.1)
    assert a[:8].sum() == pytest.approx(160.0, abs=0.5)
    assert b[:8].sum() == pytest.approx(160.0, abs=0.5)
    assert np.all(a[:8] + b[:8] <= 40.0 + 1e-9)


def test_a_cap_later_in_the_horizon_does_not_hold_the_car_now() -> None:
    # a is capped at 8 A in the second hour only: now it is free, and the fair plan gives it the room
    # it will lack then (the old "lowest value over the horizon" held it at 8 A from now on).
    result = solve(station((EvseCap("a", NOW + HOUR, NOW + 2 * HOUR, 8.0),)))
    a, b = result.current_a
    assert np.all(a[4:8] <= 8.0 + 1e-9)
    assert a[:4] == pytest.approx([32.0] * 4, abs=0.1)  # 160 = 4 x 32 + 4 x 8
    assert a[:8].sum() == pytest.approx(160.0, abs=0.5)
    assert b[:8].sum() == pytest.approx(160.0, abs=0.5)


def test_a_cap_below_the_minimum_current_switches_the_evse_off_while_it_lasts() -> None:
    # 6 A minimum, capped at 4 A for an hour: a cannot charge under the cap, so it gets 0 and b its
    # own maximum (32 A, under the 40 A feeder); after the hour a is on again (at least 6 A).
    result = solve(station((EvseCap("a", NOW, NOW + HOUR, 4.0),), min_a=6.0, step=1.0))
    a, b = result.current_a
    assert a[:4] == pytest.approx([0.0] * 4)
    assert b[:4] == pytest.approx([32.0] * 4)
    assert np.all(a[4:8] >= 6.0)


def test_whole_amp_steps_round_a_cap_down() -> None:
    result = solve(station((EvseCap("a", NOW, None, 10.5),), step=1.0))
    a, b = result.current_a
    assert np.all(a <= 10.0 + 1e-9)  # 10.5 A is not on the 1 A grid: the pilot is 10 A
    assert a[:8] == pytest.approx([10.0] * 8)
    assert b[:8] == pytest.approx([30.0] * 8)


def test_several_caps_on_one_evse_the_lowest_counts() -> None:
    caps = (EvseCap("a", NOW, NOW + HOUR, 12.0), EvseCap("a", NOW + 0.5 * HOUR, NOW + 2 * HOUR, 7.0))
    a, _ = solve(station(caps)).current_a
    assert np.all(a[:2] <= 12.0 + 1e-9)
    assert np.all(a[2:8] <= 7.0 + 1e-9)


def test_the_fallback_keeps_the_caps() -> None:
    result = solve(station((EvseCap("a", NOW, NOW + HOUR, 10.0),)), force_fallback=True)
    assert result.status is SolveStatus.FALLBACK
    a, b = result.current_a
    assert np.all(a[:4] <= 10.0 + 1e-9)
    assert a[:4].sum() > 0
    assert b[:4] == pytest.approx([30.0] * 4, abs=0.1)  # the room goes to b


def test_a_plan_scaled_to_a_new_cap_keeps_the_evse_caps() -> None:
    previous = solve(station(()))
    assert previous.current_a[0, 0] == pytest.approx(20.0, abs=0.1)
    capped = station((EvseCap("a", NOW, NOW + HOUR, 5.0),))
    scaled = scaled_schedule(capped, previous)
    assert scaled is not None
    assert np.all(scaled.current_a[0, :4] <= 5.0 + 1e-9)


def test_a_cap_on_another_stations_evse_is_ignored() -> None:
    free = solve(station(()))
    other = solve(station((EvseCap("elsewhere", NOW, None, 1.0),)))
    assert other.current_a == pytest.approx(free.current_a)


def test_a_naive_cap_time_is_refused() -> None:
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(SnapshotError, match="naive"):
        solve(station((EvseCap("a", naive, None, 10.0),)))
    with pytest.raises(SnapshotError, match="finite"):
        solve(station((EvseCap("a", NOW, None, float("nan")),)))


def test_no_cap_leaves_the_plan_as_it_was() -> None:
    base = station(())
    expired = replace(
        base, site=replace(base.site, evse_caps=(EvseCap("a", NOW - 2 * HOUR, NOW - HOUR, 1.0),))
    )
    assert solve(expired).current_a == pytest.approx(solve(base).current_a)
