"""Expected sessions: learned from earlier days only, and how the solver weighs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from optimizer import ActiveSession, Evse, FeederNode, Policy, Site, SnapshotError, StationSnapshot, solve
from optimizer.forecast import Forecast, PastSession, forecast, with_group_evses
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
    out = {s.session_id: s for s in forecast(history, NOW, UTC, GROUPS, weight=0.5).sessions}
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
    assert forecast([past("a", 1, 12.0, 2.0, 5.0)], NOW, UTC, GROUPS, weight=0.5).sessions == ()


# Friday 2026-03-06 20:00 UTC; a forecast over the next 24 h reaches Saturday 20:00
FRIDAY_20 = datetime(2026, 3, 6, 20, 0, tzinfo=UTC)
DAY_AHEAD = FRIDAY_20 + timedelta(hours=24)
WEEKEND_HISTORY = [
    past("a", 2, 21.0, 2.0, 8.0),  # Monday 21:00: today (a weekday) after 20:00
    past("c", 4, 18.0, 2.0, 8.0),  # Wednesday 18:00: before now in its day
    past("a", 1, 9.0, 3.0, 6.0),  # Sunday 09:00: Saturday 09:00, within the day ahead
    past("c", 0, 21.0, 1.0, 3.0),  # Saturday 28 February 21:00: after the day ahead ends
]


def test_a_forecast_past_midnight_learns_each_day_from_the_earlier_days_of_its_kind() -> None:
    ahead = forecast(WEEKEND_HISTORY, FRIDAY_20, UTC, GROUPS, weight=0.5, until=DAY_AHEAD)
    assert ahead.until == DAY_AHEAD
    out = {s.session_id: s for s in ahead.sessions}
    assert set(out) == {"group-x-21-1", "d1-group-x-9-1"}
    today, saturday = out["group-x-21-1"], out["d1-group-x-9-1"]
    # one weekday known with an arrival after 20:00 (and Wednesday, with none): 8 kWh over 2 days
    assert today.arrival == FRIDAY_20.replace(hour=21)
    assert today.energy_needed_kwh == pytest.approx(4.0)
    # two weekend days known (28 February and 1 March), one of them with a 09:00 car
    assert saturday.arrival == datetime(2026, 3, 7, 9, 0, tzinfo=UTC)
    assert saturday.departure == datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    assert saturday.energy_needed_kwh == pytest.approx(3.0)
    assert saturday.forecast_weight == 0.5
    # until midnight (the default): today's car alone
    assert forecast(WEEKEND_HISTORY, FRIDAY_20, UTC, GROUPS, weight=0.5).sessions == (today,)


def test_a_forecast_reaches_only_as_far_as_days_of_each_kind_are_known() -> None:
    weekdays = [s for s in WEEKEND_HISTORY if s.arrival.weekday() < 5]
    ahead = forecast(weekdays, FRIDAY_20, UTC, GROUPS, weight=0.5, until=DAY_AHEAD)
    assert ahead.until == datetime(2026, 3, 7, tzinfo=UTC)  # Saturday is not known: it is not forecast
    assert [s.session_id for s in ahead.sessions] == ["group-x-21-1"]
    weekends = [s for s in WEEKEND_HISTORY if s.arrival.weekday() >= 5]
    assert forecast(weekends, FRIDAY_20, UTC, GROUPS, weight=0.5, until=DAY_AHEAD) == Forecast((), None)


def test_scenarios_past_midnight_go_on_with_the_days_of_the_next_kind_in_turn() -> None:
    history = [*WEEKEND_HISTORY, past("b", -1, 22.0, 1.0, 2.0)]  # Friday 27 February 22:00
    ahead = forecast(history, FRIDAY_20, UTC, GROUPS, weight=0.5, until=DAY_AHEAD, scenarios=True)
    got = sorted(
        (s.scenario, s.session_id, round(s.energy_needed_kwh or 0.0, 9), s.forecast_weight)
        for s in ahead.sessions
    )
    # three weekdays known (27 Feb, 2 and 4 March): three scenarios of weight 0.5 / 3. Saturday has
    # two earlier days (28 Feb, its car after the day ahead; 1 March): scenario 0 goes on with
    # 28 February (nobody before 20:00), 1 with 1 March, 2 with 28 February again
    w = 0.5 / 3
    assert got == [
        (0, "s0-group-x-22-0", 2.0, w),
        (1, "s1-d1-group-x-9-1", 6.0, w),
        (1, "s1-group-x-21-1", 8.0, w),
    ]


def test_the_day_ahead_keeps_local_clock_times_across_a_dst_change() -> None:
    # Los Angeles moves its clocks forward on Sunday 8 March 2026; a car that came at 09:00 on
    # Sunday 1 March is expected at 09:00 local (16:00 UTC, not 17:00) on the 8th
    zone = ZoneInfo("America/Los_Angeles")
    sunday = datetime(2026, 3, 1, 9, 0, tzinfo=zone)
    history = [PastSession("a", sunday, sunday + timedelta(hours=2), 5.0, 32.0)]
    saturday_20 = datetime(2026, 3, 7, 20, 0, tzinfo=zone)
    ahead = forecast(history, saturday_20, zone, GROUPS, weight=0.5, until=saturday_20 + timedelta(hours=24))
    (s,) = ahead.sessions
    assert s.arrival.astimezone(UTC) == datetime(2026, 3, 8, 16, 0, tzinfo=UTC)


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
