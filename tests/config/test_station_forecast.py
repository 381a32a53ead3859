"""A station's ``forecast.expected``: the arrivals an operator declares, read and checked at their line."""

from __future__ import annotations

import pytest

from fairwatt.config import ConfigError, parse_station
from optimizer.forecast import DeclaredCar

# line numbers matter below: the arrival entry's keys are on lines 13-18
DEPOT = """\
station:
  id: depot
  time_zone: Europe/Berlin
  grid_limit_kw: 40
  limits: {id: main, limit_kw: 40, evses: [v1, v2, v3, v4]}
  evses:
    - {id_range: {prefix: v, first: 1, last: 4}, connection: 3P, voltage_v: 230, max_current_a: 16}
  forecast:
    weight: 0.5
    expected:
      covers: weekdays
      arrivals:
        - evses: 2
          arrive: "17:00"
          until: "18:30"
          leave: "06:00"
          energy_kwh: 45
          days: weekdays
"""
ARRIVAL = "station.forecast.expected.arrivals[0]"


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_station(text, "depot.yaml")
    return caught.value


def test_declared_arrivals_are_read_into_the_solvers_schedule() -> None:
    config = parse_station(DEPOT, "depot.yaml")
    schedule = config.forecast_expected
    assert schedule is not None
    assert schedule.covers == frozenset(range(5))
    (vans,) = schedule.arrivals
    # two cars spread over the four EVSEs in file order: the first and the third
    assert vans.cars == (DeclaredCar("v1", 16.0), DeclaredCar("v3", 16.0))
    assert (vans.arrive_min, vans.arrive_until_min, vans.leave_min) == (17 * 60, 18 * 60 + 30, 6 * 60)
    assert vans.overnight
    assert (vans.energy_kwh, vans.weekdays) == (45.0, frozenset(range(5)))


def test_what_a_schedule_covers_defaults_to_the_days_its_arrivals_name() -> None:
    text = DEPOT.replace("      covers: weekdays\n", "").replace(
        "          days: weekdays\n",
        "          days: weekdays\n"
        '        - {evses: [v4, v2], arrive: "08:00", leave: "12:00", energy_kwh: 10, days: [sat]}\n',
    )
    schedule = parse_station(text, "depot.yaml").forecast_expected
    assert schedule is not None
    assert schedule.covers == frozenset(range(6))  # not Sunday: that stays unforecast
    saturday = schedule.arrivals[1]
    assert [car.evse_id for car in saturday.cars] == ["v4", "v2"]
    assert (saturday.arrive_min, saturday.arrive_until_min, saturday.overnight) == (480, 480, False)
    whole_week = parse_station(DEPOT.replace("covers: weekdays", "covers: all"), "d.yaml").forecast_expected
    assert whole_week is not None
    assert whole_week.covers == frozenset(range(7))
    assert parse_station(DEPOT.split("    expected:")[0], "d.yaml").forecast_expected is None


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "detail"),
    [
        ("evses: 2", "evses: 5", 13, f"{ARRIVAL}.evses", "5 cars on 4 EVSEs"),
        ("evses: 2", "evses: many", 13, f"{ARRIVAL}.evses", "a number of cars or a list of EVSE ids"),
        ("evses: 2", "evses: 0", 13, f"{ARRIVAL}.evses", "at least 1"),
        ("evses: 2", "evses: [v1, v7]", 13, f"{ARRIVAL}.evses[1]", "unknown EVSE 'v7'"),
        ("evses: 2", "evses: [v1, v1]", 13, f"{ARRIVAL}.evses[1]", "listed twice"),
        ('arrive: "17:00"', 'arrive: "17:75"', 14, f"{ARRIVAL}.arrive", "a time of day HH:MM"),
        ('arrive: "17:00"', 'arive: "17:00"', 14, f"{ARRIVAL}.arive", "did you mean 'arrive'?"),
        ('until: "18:30"', 'until: "16:30"', 15, f"{ARRIVAL}.until", "may not pass midnight"),
        ('leave: "06:00"', 'leave: "18:00"', 16, f"{ARRIVAL}.leave", "inside the arrival window 17:00-18:30"),
        ("energy_kwh: 45", "energy_kwh: 0", 17, f"{ARRIVAL}.energy_kwh", "greater than 0"),
        ("energy_kwh: 45", "energy_kwh: 45 kW", 17, f"{ARRIVAL}.energy_kwh", "wrong unit 'kW'"),
        ("          energy_kwh: 45\n", "", 13, ARRIVAL, "missing required key 'energy_kwh'"),
        ("days: weekdays", "days: weekday", 18, f"{ARRIVAL}.days", "did you mean 'weekdays'?"),
        (
            "days: weekdays",
            "days: [fri, sat]",
            18,
            f"{ARRIVAL}.days",
            "arrivals on sat, which 'covers' leaves out",
        ),
        ("covers: weekdays", "covers: workdays", 11, "station.forecast.expected.covers", "unknown value"),
    ],
)
def test_a_bad_declaration_is_reported_at_its_file_line_and_field(
    old: str, new: str, line: int, field: str, detail: str
) -> None:
    assert old in DEPOT
    error = error_of(DEPOT.replace(old, new, 1))
    assert (error.file, error.line, error.field) == ("depot.yaml", line, field)
    assert detail in error.detail
    assert str(error).startswith(f"depot.yaml:{line}:")


def test_a_schedule_declares_some_arrivals() -> None:
    text = DEPOT.split("        - evses: 2")[0].replace("      arrivals:\n", "      arrivals: []\n")
    error = error_of(text)
    assert (error.line, error.field) == (12, "station.forecast.expected.arrivals")
    assert "at least one" in error.detail
