"""The depot example (examples/depot): with the forecast, the vans' energy waits for the night price.

Twelve vans plug in between 17:00 and 18:30 on weekdays and leave between 06:00 and 07:00; the
60 kW connection binds when all charge at once, and 16:00-21:00 costs 0.35 EUR/kWh against 0.10
at night. The forecast learns from earlier weekdays that no van comes overnight, and the example
trusts it (``policy.trust_forecast``), so from the second weekday on the energy moves to the night.
The first weekday has nothing to learn from, and no weekend is ever learned (no van comes then):
the vans' declared timetable (``forecast.expected``, covering the whole week) stands in for both,
so the first night and Friday night are bought at the night price too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from fairwatt.config import StationConfig, load_station
from fairwatt.simulation import parse_sessions
from fairwatt.simulation.engine import SimulationResult, simulate
from fairwatt.simulation.metrics import Metrics, day_metrics, overall_metrics
from fairwatt.simulation.sessions import SessionRecord

DEPOT = Path(__file__).resolve().parents[2] / "examples" / "depot"
MONDAY = date(2026, 3, 2)  # the first day of the sessions
WEEK = [MONDAY + timedelta(days=k) for k in range(5)]  # Monday to Friday
NIGHT_PER_KWH = 0.10


@pytest.fixture(scope="module")
def station() -> StationConfig:
    return load_station(DEPOT / "station.yaml")


@pytest.fixture(scope="module")
def records(station: StationConfig) -> Sequence[SessionRecord]:
    text = (DEPOT / "sessions.csv").read_text()
    return parse_sessions(text, "sessions.csv", station.time_zone, known_evse_ids=station.evse_ids)


@pytest.fixture(scope="module")
def week(station: StationConfig, records: Sequence[SessionRecord]) -> dict[str, SimulationResult]:
    """Monday to Friday (to Saturday morning): charged at once, with the forecast learned from
    earlier weekdays alone, and with the example's declared timetable too."""
    assert station.forecast_expected is not None
    weight = station.forecast_weight
    return {
        "blind": simulate(station, records, WEEK, forecast_weight=0.0),
        "learned": simulate(replace(station, forecast_expected=None), records, WEEK, forecast_weight=weight),
        "declared": simulate(station, records, WEEK, forecast_weight=weight),
    }


def per_kwh(rows: Sequence[Metrics]) -> float:
    return sum(m.energy_cost for m in rows) / sum(m.energy_kwh for m in rows)


def test_every_van_is_served_in_full_within_the_limits(week: dict[str, SimulationResult]) -> None:
    for result in week.values():
        overall = overall_metrics(result)
        assert overall.energy_delivered_pct == pytest.approx(100.0)
        assert overall.sessions_served_pct == pytest.approx(100.0)
        assert overall.worst_utilisation <= 1.0 + 1e-9


def test_the_forecast_moves_the_vans_energy_to_the_night(week: dict[str, SimulationResult]) -> None:
    # Tuesday to Thursday, an earlier weekday is known: charged at once, a kWh costs over 0.2 EUR;
    # with the forecast (trusted, as the example sets it) every one is bought at the night's 0.10
    assert per_kwh(day_metrics(week["blind"])[1:4]) > 0.20
    assert per_kwh(day_metrics(week["learned"])[1:4]) == pytest.approx(NIGHT_PER_KWH)


def test_the_declared_timetable_buys_the_first_night_and_friday_night_at_the_night_price(
    week: dict[str, SimulationResult],
) -> None:
    learned, declared = day_metrics(week["learned"]), day_metrics(week["declared"])
    # the first Monday, nothing learned: the vans charge through the evening peak, unless declared
    assert learned[0].cost_per_kwh is not None
    assert learned[0].cost_per_kwh > 0.20
    assert declared[0].cost_per_kwh == pytest.approx(NIGHT_PER_KWH)
    # Friday: Saturday is never learned; the timetable covers it and says nobody comes
    assert learned[4].cost_per_kwh is not None
    assert learned[4].cost_per_kwh > 0.15
    # every kWh of the week, Saturday morning's included, at the night price
    assert overall_metrics(week["declared"]).cost_per_kwh == pytest.approx(NIGHT_PER_KWH)
    assert overall_metrics(week["learned"]).energy_cost > overall_metrics(week["declared"]).energy_cost + 50


def test_a_weekday_timetable_says_nothing_of_the_weekend(
    station: StationConfig, records: Sequence[SessionRecord]
) -> None:
    # Friday alone (its first weekday): covering weekdays only, the timetable leaves Saturday
    # unforecast, so Friday's vans charge at once in case a car comes; covering the week, they wait
    assert station.forecast_expected is not None
    weekdays_only = replace(station.forecast_expected, covers=frozenset(range(5)))
    friday = [MONDAY + timedelta(days=4)]
    weight = station.forecast_weight
    shy = simulate(replace(station, forecast_expected=weekdays_only), records, friday, forecast_weight=weight)
    whole = simulate(station, records, friday, forecast_weight=weight)
    assert (overall_metrics(shy).cost_per_kwh or 0.0) > 0.15
    assert overall_metrics(whole).cost_per_kwh == pytest.approx(NIGHT_PER_KWH)
