"""The depot example (examples/depot): with the forecast, the vans' energy waits for the night price.

Twelve vans plug in between 17:00 and 18:30 on weekdays and leave between 06:00 and 07:00; the
60 kW connection binds when all charge at once, and 16:00-21:00 costs 0.35 EUR/kWh against 0.10
at night. The first weekday has nothing to learn from, so both runs charge at once; from the second
on, the forecast knows the vans that come and that nobody comes overnight, and the example trusts
it (``policy.trust_forecast``), so the energy moves to the night.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from fairwatt.config import load_station
from fairwatt.simulation import parse_sessions
from fairwatt.simulation.engine import simulate
from fairwatt.simulation.metrics import day_metrics, overall_metrics

DEPOT = Path(__file__).resolve().parents[2] / "examples" / "depot"
DAYS = [date(2026, 3, 2) + timedelta(days=k) for k in range(4)]  # Monday to Thursday


@pytest.fixture(scope="module")
def runs() -> dict[float, tuple[float, float, float, float]]:
    station = load_station(DEPOT / "station.yaml")
    text = (DEPOT / "sessions.csv").read_text()
    records = parse_sessions(text, "sessions.csv", station.time_zone, known_evse_ids=station.evse_ids)
    out = {}
    for weight in (0.0, station.forecast_weight):
        result = simulate(station, records, DAYS, forecast_weight=weight)
        overall = overall_metrics(result)
        # EUR/kWh from Tuesday on, when an earlier weekday is known to learn from
        later = day_metrics(result)[1:]
        per_kwh = sum(m.energy_cost for m in later) / sum(m.energy_kwh for m in later)
        out[weight] = (
            overall.energy_delivered_pct or 0.0,
            overall.sessions_served_pct or 0.0,
            per_kwh,
            overall.worst_utilisation,
        )
    return out


def test_the_forecast_moves_the_vans_energy_to_the_night(
    runs: dict[float, tuple[float, float, float, float]],
) -> None:
    blind, informed = runs[0.0], runs[0.5]
    for energy_pct, served_pct, _, worst in (blind, informed):
        assert energy_pct == pytest.approx(100.0)
        assert served_pct == pytest.approx(100.0)
        assert worst <= 1.0 + 1e-9
    # charged at once, a night costs over 0.2 EUR/kWh; with the forecast (trusted, as the example
    # sets it), every kWh from Tuesday on is bought at the night's 0.10
    assert blind[2] > 0.20
    assert informed[2] == pytest.approx(0.10)
