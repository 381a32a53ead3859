"""Declared arrivals: the operator's schedule stands in for a kind of day the forecast has not seen."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from optimizer.errors import DeclarationError
from optimizer.forecast import (
    DeclaredArrivals,
    DeclaredCar,
    DeclaredSchedule,
    Forecast,
    PastSession,
    forecast,
)

GROUPS = {"a": "group-x", "b": "group-x", "c": "group-y"}
WEEKDAYS = frozenset(range(5))
EVERY_DAY = frozenset(range(7))
MONDAY_16 = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # a Monday; the zone of most tests is UTC
DAY_AHEAD = MONDAY_16 + timedelta(hours=24)


def vans(
    *evse_ids: str, arrive: str = "17:00", until: str = "18:00", leave: str = "06:00", kwh: float = 30.0
) -> DeclaredArrivals:
    """Cars on ``evse_ids`` (32 A each) on weekdays."""

    def minutes(hhmm: str) -> int:
        hours, mins = hhmm.split(":")
        return int(hours) * 60 + int(mins)

    return DeclaredArrivals(
        cars=tuple(DeclaredCar(e, 32.0) for e in evse_ids),
        weekdays=WEEKDAYS,
        arrive_min=minutes(arrive),
        arrive_until_min=minutes(until),
        leave_min=minutes(leave),
        energy_kwh=kwh,
    )


# a and b (one group) come between 17:00 and 18:00 on weekdays and leave at 06:00 the next morning
FLEET = DeclaredSchedule((vans("a", "b"),), covers=WEEKDAYS)
WHOLE_WEEK = DeclaredSchedule((vans("a", "b"),), covers=EVERY_DAY)


def past(evse_id: str, arrival: datetime, stay_h: float, kwh: float) -> PastSession:
    return PastSession(evse_id, arrival, arrival + timedelta(hours=stay_h), kwh, 32.0)


def test_a_first_weekday_expects_the_declared_cars_and_the_forecast_reaches_past_their_stays() -> None:
    assert forecast([], MONDAY_16, UTC, GROUPS, weight=0.5, until=DAY_AHEAD) == Forecast((), None)
    ahead = forecast([], MONDAY_16, UTC, GROUPS, weight=0.5, until=DAY_AHEAD, declared=FLEET)
    assert ahead.until == DAY_AHEAD  # past Tuesday 06:00, when the cars present would leave
    (s,) = ahead.sessions  # Tuesday's cars come at 17:00, after the day ahead ends
    # a at 17:15 and b at 17:45 (the middles of two half hours), one bucket: both cars' energy
    # and rate on their group's EVSE, arriving at their mean time, leaving at 06:00 the next day
    assert s.session_id == "declared-group-x-17-6"
    assert s.evse_id == "group-x"
    assert s.arrival == datetime(2026, 3, 2, 17, 30, tzinfo=UTC)
    assert s.departure == datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    assert s.energy_needed_kwh == pytest.approx(60.0)
    assert s.vehicle_max_current_a == pytest.approx(64.0)
    assert (s.forecast_weight, s.scenario) == (0.5, None)  # one future, at the forecast's weight
    # at 17:30, a has come (it is a car present): b alone is still expected
    later = forecast([], MONDAY_16.replace(hour=17, minute=30), UTC, GROUPS, weight=0.5, declared=FLEET)
    (b,) = later.sessions
    assert (b.arrival, b.energy_needed_kwh) == (datetime(2026, 3, 2, 17, 45, tzinfo=UTC), 30.0)
    assert later.until == datetime(2026, 3, 3, tzinfo=UTC)  # the default: local midnight


def test_an_earlier_day_of_the_kind_replaces_the_declaration() -> None:
    friday = datetime(2026, 2, 27, 19, 0, tzinfo=UTC)
    history = [past("c", friday, 11.0, 20.0)]  # a weekday known: it is the whole story
    learned = forecast(history, MONDAY_16, UTC, GROUPS, weight=0.5, until=DAY_AHEAD)
    declared = forecast(history, MONDAY_16, UTC, GROUPS, weight=0.5, until=DAY_AHEAD, declared=FLEET)
    assert declared == learned
    assert [s.session_id for s in declared.sessions] == ["group-y-19-5"]


def test_a_kind_of_day_neither_declared_nor_seen_stays_unforecast() -> None:
    friday_20 = datetime(2026, 3, 6, 20, 0, tzinfo=UTC)
    saturday = datetime(2026, 3, 7, tzinfo=UTC)
    # a weekday timetable says nothing of Saturday: the forecast ends at its midnight
    ahead = forecast(
        [], friday_20, UTC, GROUPS, weight=0.5, until=friday_20 + timedelta(hours=24), declared=FLEET
    )
    assert (ahead.sessions, ahead.until) == ((), saturday)
    assert forecast([], saturday, UTC, GROUPS, weight=0.5, declared=FLEET) == Forecast((), None)
    # covering the whole week, it says nobody comes on Saturday: the forecast reaches the end
    whole = forecast(
        [], friday_20, UTC, GROUPS, weight=0.5, until=friday_20 + timedelta(hours=24), declared=WHOLE_WEEK
    )
    assert (whole.sessions, whole.until) == ((), friday_20 + timedelta(hours=24))
    assert forecast([], saturday, UTC, GROUPS, weight=0.5, declared=WHOLE_WEEK) == Forecast(
        (), saturday + timedelta(days=1)
    )


def test_a_declared_today_goes_on_with_the_learned_days_of_the_next_kind_as_scenarios() -> None:
    # Sunday 20:00: no weekend known, the whole-week schedule says nobody comes; Monday goes on with
    # the two weekdays known, one scenario each (the declared day is in both futures)
    sunday_20 = datetime(2026, 3, 8, 20, 0, tzinfo=UTC)
    history = [
        past("c", datetime(2026, 3, 5, 9, 0, tzinfo=UTC), 2.0, 4.0),  # Thursday
        past("c", datetime(2026, 3, 6, 9, 0, tzinfo=UTC), 2.0, 8.0),  # Friday
    ]
    ahead = forecast(
        history,
        sunday_20,
        UTC,
        GROUPS,
        weight=0.5,
        until=sunday_20 + timedelta(hours=24),
        scenarios=True,
        declared=WHOLE_WEEK,
    )
    assert ahead.until == sunday_20 + timedelta(hours=24)
    got = sorted((s.scenario, s.session_id, s.energy_needed_kwh, s.forecast_weight) for s in ahead.sessions)
    assert got == [(0, "s0-d1-group-y-9-1", 4.0, 0.25), (1, "s1-d1-group-y-9-1", 8.0, 0.25)]


def test_declared_times_are_local_clock_times_across_a_dst_change() -> None:
    # Berlin moves its clocks forward on Sunday 29 March 2026 (CET, UTC+1, to CEST, UTC+2): a car
    # declared every day from 17:00 to 06:00 arrives at 16:00 UTC on Saturday and leaves at 04:00
    # UTC on Sunday (a stay of 12 h, not 13), and on Sunday arrives at 15:00 UTC
    zone = ZoneInfo("Europe/Berlin")
    daily = DeclaredArrivals((DeclaredCar("c", 16.0),), EVERY_DAY, 17 * 60, 17 * 60, 6 * 60, 20.0)
    saturday_noon = datetime(2026, 3, 28, 12, 0, tzinfo=zone)
    ahead = forecast(
        [],
        saturday_noon,
        zone,
        GROUPS,
        weight=0.5,
        until=saturday_noon + timedelta(hours=36),
        declared=DeclaredSchedule((daily,), EVERY_DAY),
    )
    stays = [(s.arrival.astimezone(UTC), s.departure) for s in ahead.sessions]
    assert stays == [
        (datetime(2026, 3, 28, 16, 0, tzinfo=UTC), datetime(2026, 3, 29, 4, 0, tzinfo=UTC)),
        (datetime(2026, 3, 29, 15, 0, tzinfo=UTC), datetime(2026, 3, 30, 4, 0, tzinfo=UTC)),
    ]


def test_a_schedule_that_cannot_stand_for_a_day_is_refused() -> None:
    with pytest.raises(DeclarationError):
        vans("a", arrive="17:00", until="18:30", leave="18:00")  # leaves before the last arrives
    with pytest.raises(DeclarationError):
        vans("a", arrive="18:00", until="17:00")
    with pytest.raises(DeclarationError):
        DeclaredSchedule((vans("a"),), covers=frozenset({5, 6}))  # weekday arrivals, weekends covered
    # leaving after the last arrives: the same day
    (stay,) = vans("a", leave="19:00").stays(date(2026, 3, 2), UTC)
    assert stay[2] == datetime(2026, 3, 2, 19, 0, tzinfo=UTC)
