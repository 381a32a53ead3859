"""Expected sessions: learned from earlier days only, and how the solver weighs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from optimizer import ActiveSession, Evse, FeederNode, Policy, Site, SnapshotError, StationSnapshot, solve
from optimizer.forecast import PastSession, expected_sessions, with_group_evses
from optimizer.network import Network
from optimizer.types import Connection

# Tuesday 2026-03-03 10:00 UTC (the zone of these tests is UTC)
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
GROUPS = {"a": "group-x", "b": "group-x", "c": "group-y"}


def past(evse_id: str, day: int, hour: float, stay_h: float, kwh: float) -> PastSession:
    """``day`` counts from 1 March 2026 (0 is 28 February)."""
    arrival = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=day - 1, hours=hour)
    return PastSession(evse_id, arrival, arrival + timedelta(hours=stay_h), kwh, 32.0)


def test_expected_sessions_average_later_arrivals_of_earlier_days_of_the_same_kind() -> None:
    history = [
        past("a", 2, 11.2, 3.0, 10.0),  # Monday, arrives after 10:00: counts
        past("b", -1, 11.6, 3.5, 20.0),  # Friday 27 Feb, same group and buckets: averaged with it
        past("a", 2, 9.0, 3.0, 99.0),  # arrived before 10:00 of its day: its car is in the snapshot
        past("c", 2, 14.0, 1.0, 4.0),  # another group
        past("z", 2, 15.0, 1.0, 4.0),  # an EVSE outside every group
        past("a", 1, 12.0, 2.0, 50.0),  # Sunday: not a weekday
        past("a", 3, 12.0, 2.0, 50.0),  # today: never used
    ]
    out = {s.session_id: s for s in expected_sessions(history, NOW, UTC, GROUPS, weight=0.5)}
    assert set(out) == {"group-x-11-1", "group-y-14-0"}
    x = out["group-x-11-1"]
    # two weekdays known (27 Feb and 2 Mar): (10 + 20) / 2 kWh, one 32 A car a day
    assert x.energy_needed_kwh == pytest.approx(15.0)
    assert x.vehicle_max_current_a == pytest.approx(32.0)
    assert x.arrival == NOW.replace(hour=11, minute=24)  # mean of 11:12 and 11:36
    assert x.departure == x.arrival + timedelta(hours=3.25)
    assert x.evse_id == "group-x"
    assert x.forecast_weight == 0.5
    assert out["group-y-14-0"].energy_needed_kwh == pytest.approx(2.0)


def test_no_earlier_day_of_the_kind_no_expected_sessions() -> None:
    assert expected_sessions([past("a", 1, 12.0, 2.0, 5.0)], NOW, UTC, GROUPS, weight=0.5) == ()


# the solver: one 32 A, 230 V feeder; 15-minute periods, 4 hours; energy alone (no peak
# objective spreading a lone car over its stay)
POLICY = Policy(period_s=900, horizon_periods=16, exact_periods=4, objective=("energy",))
EVSES = tuple(Evse(e, Connection.L1, 230.0, 32.0) for e in ("a", "x"))
SITE = Site(grid_limit_kw=1000.0, root=FeederNode("main", limit_a=32.0, evse_ids=("a", "x")))
FULL_HOUR_KWH = 32 * 230 / 1000  # 7.36 kWh: one hour at 32 A


def expected(hour: float, stay_h: float, kwh: float, weight: float = 0.5, sid: str = "e") -> ActiveSession:
    arrival = NOW + timedelta(hours=hour)
    return ActiveSession(sid, "x", arrival, arrival + timedelta(hours=stay_h), kwh, forecast_weight=weight)


def test_capacity_an_expected_session_needs_is_left_free_when_that_costs_the_cars_present_nothing() -> None:
    # Car A may charge for 3 h and needs 2 h at 32 A. Alone it charges as early as it can, so
    # in hour 1 too. A car expected from 1 h to 2 h needing 1 h at 32 A: A charges in hours 0
    # and 2 instead, and gets exactly as much.
    car = ActiveSession("A", "a", NOW, NOW + timedelta(hours=3), 2 * FULL_HOUR_KWH)
    alone = solve(StationSnapshot("st", NOW, SITE, EVSES, (car,), POLICY))
    assert alone.current_a[0, :6] == pytest.approx([32.0] * 6)
    ahead = solve(StationSnapshot("st", NOW, SITE, EVSES, (car, expected(1.0, 1.0, FULL_HOUR_KWH)), POLICY))
    assert ahead.session_ids == ("A", "e")
    assert ahead.current_a[0, 4:8] == pytest.approx([0.0] * 4)  # hour 1 left to the expected car
    assert ahead.current_a[1, 4:8] == pytest.approx([32.0] * 4)
    assert ahead.current_a[1, :4].sum() == 0.0  # never before it arrives
    served = ahead.current_a[0].sum() * 0.23 * 0.25
    assert served == pytest.approx(2 * FULL_HOUR_KWH)
    assert ahead.current_a[0, :4] == pytest.approx([32.0] * 4)  # what is applied now is unchanged


def test_an_expected_session_never_takes_energy_from_a_car_present() -> None:
    # Car A needs 2 h at 32 A and leaves at 2 h: it takes everything, even with a heavy forecast.
    car = ActiveSession("A", "a", NOW, NOW + timedelta(hours=2), 2 * FULL_HOUR_KWH)
    result = solve(StationSnapshot("st", NOW, SITE, EVSES, (car, expected(1.0, 1.0, 50.0, 0.99)), POLICY))
    assert result.current_a[0, :8] == pytest.approx([32.0] * 8)
    assert np.allclose(result.current_a[1], 0.0)


def test_expected_sessions_may_share_an_evse_but_cars_present_may_not() -> None:
    car = ActiveSession("A", "a", NOW, NOW + timedelta(hours=3), 1.0)
    two = (car, expected(1.0, 1.0, 1.0, sid="e1"), expected(2.0, 1.0, 1.0, sid="e2"))
    assert solve(StationSnapshot("st", NOW, SITE, EVSES, two, POLICY)).current_a.shape == (3, 16)
    other = ActiveSession("B", "a", NOW, NOW + timedelta(hours=3), 1.0)
    with pytest.raises(SnapshotError):
        solve(StationSnapshot("st", NOW, SITE, EVSES, (car, other), POLICY))


def test_group_evses_sit_where_their_members_do_and_change_no_limit() -> None:
    evses = (
        Evse("a1", Connection.L1, 230.0, 16.0, min_current_a=6.0),
        Evse("a2", Connection.L1, 230.0, 32.0),
        Evse("b1", Connection.L2, 230.0, 32.0),
        Evse("p1", Connection.L1, 230.0, 32.0),
    )
    pod = FeederNode("pod", limit_a=40.0, evse_ids=("p1",))
    site = Site(
        grid_limit_kw=50.0,
        root=FeederNode("main", limit_a=63.0, evse_ids=("a1", "a2", "b1"), children=(pod,)),
    )
    grouped, all_evses, group_of = with_group_evses(site, evses)
    assert group_of == {
        "a1": "expected:main:0",
        "a2": "expected:main:0",
        "b1": "expected:main:1",
        "p1": "expected:pod:0",
    }
    assert grouped.root.evse_ids == ("a1", "a2", "b1", "expected:main:0", "expected:main:1")
    assert grouped.root.children[0].evse_ids == ("p1", "expected:pod:0")
    extra = {e.evse_id: e for e in all_evses[len(evses) :]}
    assert all_evses[: len(evses)] == evses
    assert extra["expected:main:0"].max_current_a == 48.0
    assert extra["expected:main:0"].min_current_a == 0.0
    assert extra["expected:pod:0"].connection is Connection.L1
    # the real EVSEs' currents meet the same limits (virtual ones at 0)
    real, with_groups = Network.build(site, evses), Network.build(grouped, all_evses)
    current = np.array([[16.0], [30.0], [20.0], [32.0]])
    padded = np.zeros((len(with_groups.evse_ids), 1))
    for i, evse_id in enumerate(("a1", "a2", "b1", "p1")):
        padded[with_groups.evse_ids.index(evse_id)] = current[i]
    ordered = np.array([current[("a1", "a2", "b1", "p1").index(e)] for e in real.evse_ids])
    limit = np.array([50.0])
    assert np.allclose(
        np.sort(real.utilisation(ordered, limit).ravel()),
        np.sort(with_groups.utilisation(padded, limit).ravel()),
    )
    # a group EVSE's current counts where its members' does: 40 A on the pod's fills its 40 A limit
    padded[:] = 0.0
    padded[with_groups.evse_ids.index("expected:pod:0")] = 40.0
    assert with_groups.utilisation(padded, limit).max() == pytest.approx(1.0)
