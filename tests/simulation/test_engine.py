"""The engine on a tiny station with hand-checkable answers.

Two 240 V single-phase EVSEs (0.24 kW/A, up to 32 A = 7.68 kW each) share a 7.2 kW grid
connection; prices are a flat 0.10/kWh; periods are 15 minutes.

* s1 at A and s2 at B, 08:00-10:00, want 6 kWh each: 12 kWh in 2 h fits under 7.2 kW.
* s3 at A, 10:00-11:00, wants 10 kWh: at most 7.2 kW x 1 h = 7.2 kWh can flow.

So 19.2 of 22 kWh (87.27 %), 2 of 3 sessions served, shares (1, 1, 0.72), cost 1.92.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from fairwatt.config import StationConfig, parse_station
from fairwatt.simulation import SimulationError, parse_sessions
from fairwatt.simulation import engine as engine_module
from fairwatt.simulation.engine import simulate
from fairwatt.simulation.metrics import day_metrics, overall_metrics
from optimizer.types import (
    Algorithm,
    FloatArray,
    ObjectiveBreakdown,
    Schedule,
    SolveStatus,
    StationSnapshot,
)

STATION = """\
station:
  id: tiny
  time_zone: UTC
  grid_limit_kw: 7.2
  limits: {id: main, evses: [A, B]}
  evses:
    - {ids: [A, B], connection: L1, voltage_v: 240, max_current_a: 32}
  prices: {default_per_kwh: 0.10}
  policy: {period_s: 900, horizon_periods: 16}
"""
SESSIONS = """\
session_id,evse_id,arrival,departure,estimated_departure,requested_energy_kwh
s1,A,2019-03-04T08:00,2019-03-04T10:00,2019-03-04T10:00,6
s2,B,2019-03-04T08:00,2019-03-04T10:00,2019-03-04T10:00,6
s3,A,2019-03-04T10:00,2019-03-04T11:00,2019-03-04T11:00,10
"""
DAY = date(2019, 3, 4)


@pytest.fixture
def station() -> StationConfig:
    return parse_station(STATION, "tiny.yaml")


def run(station: StationConfig, algorithm: str, sessions: str = SESSIONS) -> engine_module.SimulationResult:
    records = parse_sessions(sessions, "s.csv", station.time_zone, known_evse_ids=station.evse_ids)
    return simulate(station, records, [DAY], algorithm)


@pytest.mark.parametrize("algorithm", ["fairwatt", "edf", "llf", "round-robin", "offline"])
def test_shared_limit_hand_checked(station: StationConfig, algorithm: str) -> None:
    result = run(station, algorithm)
    delivered = {o.record.session_id: o.delivered_kwh for o in result.outcomes}
    assert delivered["s1"] == pytest.approx(6.0, abs=0.01)
    assert delivered["s2"] == pytest.approx(6.0, abs=0.01)
    assert delivered["s3"] == pytest.approx(7.2, abs=0.05)
    assert float(result.station_power_kw.max()) <= 7.2 + 1e-6
    (day,) = day_metrics(result)
    assert day.sessions == 3
    assert day.energy_delivered_pct == pytest.approx(100 * 19.2 / 22, abs=0.3)
    assert day.sessions_served_pct == pytest.approx(200 / 3)
    assert day.jain_index == pytest.approx(2.72**2 / (3 * 2.5184), abs=0.002)
    assert day.energy_cost == pytest.approx(1.92, abs=0.01)
    assert day.cost_per_kwh == pytest.approx(0.10)
    assert day.worst_utilisation <= 1.0 + 1e-6
    assert dict(day.max_utilisation)["site kW"] == pytest.approx(1.0, abs=0.01)  # s3 uses it all
    overall = overall_metrics(result)
    assert overall.delivered_kwh == pytest.approx(day.delivered_kwh)


def test_online_solver_sees_only_arrived_sessions_and_their_estimates(
    station: StationConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[StationSnapshot] = []
    from optimizer.solver import solve as real_solve

    def recording_solve(snapshot: StationSnapshot, algorithm: Algorithm, network: object) -> Schedule:
        seen.append(snapshot)
        return real_solve(snapshot, algorithm, network)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_module, "solve", recording_solve)
    estimated = SESSIONS.replace(
        "s3,A,2019-03-04T10:00,2019-03-04T11:00,2019-03-04T11:00", "s3,A,2019-03-04T10:00,2019-03-04T11:00,"
    )
    run(station, "fairwatt", estimated)
    assert seen
    for snapshot in seen:
        for session in snapshot.sessions:
            assert session.arrival <= snapshot.now
            if session.session_id == "s3":
                assert session.departure is None  # the driver gave none: the solver is not told
    # one solve per period while anyone is plugged in (resolve_every_periods: 1): 08:00-11:00
    assert len(seen) == 12
    assert [s.session_id for s in seen[0].sessions] == ["s1", "s2"]


def test_cars_draw_at_most_their_own_rate_and_pilot_changes_are_counted(
    station: StationConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = [0]

    def alternating_solve(snapshot: StationSnapshot, algorithm: Algorithm, network: object) -> Schedule:
        pilot_a = 15.0 if calls[0] % 2 == 0 else 5.0
        calls[0] += 1
        n = len(snapshot.sessions)
        return Schedule(
            station_id=snapshot.station_id,
            start=snapshot.now,
            period_s=900,
            evse_ids=tuple(s.evse_id for s in snapshot.sessions),
            session_ids=tuple(s.session_id for s in snapshot.sessions),
            current_a=np.full((n, 4), pilot_a),
            power_kw=np.zeros(4),
            status=SolveStatus.OPTIMAL,
            objective=ObjectiveBreakdown(0.0, 0.0, 0.0, 0.0, 0.0),
            solve_time_s=0.0,
        )

    monkeypatch.setattr(engine_module, "solve", alternating_solve)
    # one car, 08:00-09:00 (4 periods), at most 2.4 kW = 10 A, wants plenty
    sessions = (
        "session_id,evse_id,arrival,departure,requested_energy_kwh,max_power_kw\n"
        "s1,A,2019-03-04T08:00,2019-03-04T09:00,50,2.4\n"
    )
    result = run(station, "fairwatt", sessions)
    (outcome,) = result.outcomes
    row = result.evse_ids.index("A")
    # pilots 15, 5, 15, 5 A: the car takes min(pilot, 10 A)
    assert list(result.current_a[row, 32:36]) == pytest.approx([10.0, 5.0, 10.0, 5.0])
    assert outcome.delivered_kwh == pytest.approx((10 + 5 + 10 + 5) * 0.24 * 0.25)
    assert outcome.profile_changes == 3


def test_a_car_stops_when_its_request_is_met(station: StationConfig) -> None:
    sessions = (
        "session_id,evse_id,arrival,departure,requested_energy_kwh\n"
        "s1,A,2019-03-04T08:00,2019-03-04T12:00,1.0\n"
    )
    result = run(station, "uncontrolled", sessions)  # offers 32 A all along
    assert result.outcomes[0].delivered_kwh == pytest.approx(1.0)
    row = result.evse_ids.index("A")
    assert float(result.current_a[row].sum()) * 0.24 * 0.25 == pytest.approx(1.0)


def test_two_cars_at_once_on_one_evse_is_an_error(station: StationConfig) -> None:
    sessions = SESSIONS.replace("s3,A,2019-03-04T10:00", "s3,A,2019-03-04T09:00")
    with pytest.raises(
        SimulationError, match=r"session 's3' \(line 4\) arrives at EVSE 'A' while session 's1'"
    ):
        run(station, "edf", sessions)


def test_a_session_naming_no_evse_must_be_placed_first(station: StationConfig) -> None:
    sessions = SESSIONS.replace("s3,A,", "s3,,")
    with pytest.raises(SimulationError, match=r"session 's3' \(line 4\) names no EVSE: give it one"):
        run(station, "edf", sessions)


def test_days_are_cut_at_local_midnight() -> None:
    station = parse_station(STATION.replace("time_zone: UTC", "time_zone: Europe/Amsterdam"), "tiny.yaml")
    result = run(station, "edf")
    # the run starts at local midnight (23:00 UTC the day before) and covers the whole day
    assert result.start == datetime(2019, 3, 3, 23, tzinfo=UTC)
    assert result.periods == 96
    assert result.outcomes[0].record.arrival == datetime(2019, 3, 4, 7, tzinfo=UTC)  # 08:00 local


def test_a_spring_forward_day_has_23_hours() -> None:
    station = parse_station(STATION.replace("time_zone: UTC", "time_zone: America/Los_Angeles"), "tiny.yaml")
    sessions = SESSIONS.replace("2019-03-04", "2019-03-10")
    records = parse_sessions(sessions, "s.csv", station.time_zone)
    result = simulate(station, records, [date(2019, 3, 10)], "edf")
    assert result.start == datetime(2019, 3, 10, 8, tzinfo=UTC)  # midnight PST
    assert result.periods == 23 * 4
    (day,) = day_metrics(result)
    assert day.delivered_kwh == pytest.approx(19.2, abs=0.05)


# -- sessions expected from earlier days ----------------------------------------------------------

TWO_DAYS = """\
session_id,evse_id,arrival,departure,estimated_departure,requested_energy_kwh
d1-early,A,2019-03-04T08:00,2019-03-04T12:00,2019-03-04T12:00,6
d1-late,B,2019-03-04T11:00,2019-03-04T12:00,2019-03-04T12:00,7
d2-early,A,2019-03-05T08:00,2019-03-05T12:00,2019-03-05T12:00,6
d2-late,B,2019-03-05T11:00,2019-03-05T12:00,2019-03-05T12:00,7
"""


PEAK_MORNING = STATION.replace(
    "prices: {default_per_kwh: 0.10}",
    "prices:\n    default_per_kwh: 0.10\n    windows:\n"
    '      - {name: peak, start: "08:00", end: "11:00", price_per_kwh: 0.30}',
)


def test_the_forecast_learns_from_earlier_days_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # 7.2 kW shared; each day a car at A 08:00-12:00 wants 6 kWh and one at B 11:00-12:00 wants
    # 7 kWh. Cost-aware and blind to the 11:00 car, the plan leaves part of A's energy for the cheap
    # hour 11-12, where the two then compete for 7.2 kWh (97 % served on 5 March, as on 4 March).
    # Knowing from 4 March that a car comes at 11:00, 5 March charges A in the morning: all served.
    station = parse_station(PEAK_MORNING, "peak.yaml")
    seen: list[StationSnapshot] = []
    from optimizer.solver import solve as real_solve

    def recording_solve(snapshot: StationSnapshot, algorithm: Algorithm, network: object) -> Schedule:
        seen.append(snapshot)
        return real_solve(snapshot, algorithm, network)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_module, "solve", recording_solve)
    records = parse_sessions(TWO_DAYS, "s.csv", station.time_zone, known_evse_ids=station.evse_ids)
    days = [DAY, date(2019, 3, 5)]
    blind = day_metrics(simulate(station, records, days, "fairwatt"))
    seen.clear()
    result = simulate(station, records, days, "fairwatt", forecast_weight=0.5)
    informed = day_metrics(result)
    expected = [
        (snapshot.now, s) for snapshot in seen for s in snapshot.sessions if s.forecast_weight is not None
    ]
    # 4 March has no earlier day: nothing expected; on 5 March, 4 March's late car is expected
    # (on the group EVSE of A and B) until it would have arrived, never a car of 5 March itself
    assert expected
    for now, session in expected:
        assert now.date() == date(2019, 3, 5)
        assert now < datetime(2019, 3, 5, 11, tzinfo=UTC)
        assert session.evse_id == "expected:main:0"
        assert session.energy_needed_kwh == pytest.approx(7.0)
        assert session.arrival == datetime(2019, 3, 5, 11, tzinfo=UTC)
    assert informed[0].energy_delivered_pct == pytest.approx(blind[0].energy_delivered_pct)
    blind_pct = blind[1].energy_delivered_pct
    assert blind_pct is not None
    assert blind_pct < 99.0
    assert informed[1].energy_delivered_pct == pytest.approx(100.0, abs=1e-6)
    assert overall_metrics(result).worst_utilisation <= 1.0 + 1e-9


def test_a_negative_forecast_weight_is_refused(station: StationConfig) -> None:
    records = parse_sessions(SESSIONS, "s.csv", station.time_zone, known_evse_ids=station.evse_ids)
    with pytest.raises(SimulationError, match="forecast weight"):
        simulate(station, records, [DAY], "fairwatt", forecast_weight=-0.1)


def test_a_demand_charge_counts_the_peak_of_the_month_so_far() -> None:
    # The tiny station on a 10 kW grid (one car alone never binds it), demand charge 10/kW, flat
    # price. p1 (29 March 08:00-09:00, 7.2 kWh) has to draw the whole
    # 7.2 kW for its hour: March's peak. p2 (12:00-16:00, 3.6 kWh) may then draw up to 7.2 kW at
    # no extra charge, so it charges at once: 30 A x 240 V = 7.2 kW for two 15-minute periods.
    # p3 is the same visit on 1 April: a new billing period, no peak yet, so the cheapest plan
    # spreads 3.6 kWh over the 4 hours: 0.9 kW = 3.75 A, which the 0.1 A step rounds to 3.7 or
    # 3.8 A with the remainder carried from period to period (rounded down alike, the first
    # period used to get back what rounding took from the others: 4.5 A, April's peak). The car
    # stays far below March's 30 A and charges in every one of its 16 periods.
    charged = STATION.replace("grid_limit_kw: 7.2", "grid_limit_kw: 10\n  demand_charge_per_kw: 10")
    station = parse_station(charged)
    sessions = (
        "session_id,evse_id,arrival,departure,estimated_departure,requested_energy_kwh\n"
        "p1,A,2019-03-29T08:00,2019-03-29T09:00,2019-03-29T09:00,7.2\n"
        "p2,A,2019-03-29T12:00,2019-03-29T16:00,2019-03-29T16:00,3.6\n"
        "p3,A,2019-04-01T12:00,2019-04-01T16:00,2019-04-01T16:00,3.6\n"
    )
    records = parse_sessions(sessions, "s.csv", station.time_zone, known_evse_ids=station.evse_ids)
    days = [date(2019, 3, 29), date(2019, 3, 30), date(2019, 3, 31), date(2019, 4, 1)]
    result = simulate(station, records, days)
    assert {o.record.session_id: round(o.delivered_kwh, 3) for o in result.outcomes} == {
        "p1": 7.2,
        "p2": 3.6,
        "p3": 3.6,
    }
    a = result.current_a[result.evse_ids.index("A")]

    def afternoon(day: datetime) -> FloatArray:  # 12:00-16:00 of ``day``: 16 periods
        t = int((day.replace(hour=12) - result.start).total_seconds() // 900)
        return np.asarray(a[t : t + 16], dtype=np.float64)

    march, april = afternoon(datetime(2019, 3, 29, tzinfo=UTC)), afternoon(datetime(2019, 4, 1, tzinfo=UTC))
    assert march[:2] == pytest.approx([30.0, 30.0], abs=0.01)
    assert march[2:].sum() == pytest.approx(0.0, abs=0.01)
    assert april[:15] == pytest.approx(np.clip(april[:15], 3.7, 3.8), abs=1e-9)
    assert np.count_nonzero(april > 0.05) == 16
    assert april.sum() * 0.24 * 0.25 == pytest.approx(3.6, abs=0.01)
