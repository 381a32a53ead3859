"""Expected sessions as scenarios: each earlier day one possible future, held to the limits on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from optimizer import ActiveSession, Evse, FeederNode, Policy, Site, StationSnapshot, solve
from optimizer import lp as lp_model
from optimizer.forecast import PastSession, forecast
from optimizer.problem import prepare
from optimizer.types import CapWindow, Connection, SolveStatus

# Tuesday 2026-03-03 10:00 UTC (the zone of these tests is UTC)
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
GROUPS = {"a": "xa", "b": "xb"}


def past(evse_id: str, day: int, hour: float, stay_h: float, kwh: float) -> PastSession:
    """``day`` counts from 1 March 2026 (0 is 28 February, -1 is Friday 27 February)."""
    arrival = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=day - 1, hours=hour)
    return PastSession(evse_id, arrival, arrival + timedelta(hours=stay_h), kwh, 16.0)


def test_each_earlier_day_is_its_own_scenario_at_its_own_size() -> None:
    history = [
        past("b", -1, 11.0, 2.0, 6.0),  # Friday 27 February
        past("a", 2, 12.0, 2.0, 10.0),  # Monday 2 March
        past("b", 2, 13.0, 2.0, 4.0),
        past("a", 2, 9.0, 2.0, 99.0),  # arrived before 10:00 of its day: its car would be present
        past("a", 1, 12.0, 1.0, 50.0),  # Sunday: another kind of day
        past("a", 3, 12.0, 1.0, 50.0),  # today: never used
    ]
    out = forecast(history, NOW, UTC, GROUPS, weight=0.5, scenarios=True).sessions
    by_scenario: dict[int | None, dict[str, ActiveSession]] = {}
    for s in out:
        by_scenario.setdefault(s.scenario, {})[s.evse_id] = s
    # 27 February is scenario 0, 2 March scenario 1; each day keeps its own energy
    assert set(by_scenario) == {0, 1}
    assert set(by_scenario[0]) == {"xb"}
    assert by_scenario[0]["xb"].energy_needed_kwh == pytest.approx(6.0)
    assert by_scenario[1]["xa"].energy_needed_kwh == pytest.approx(10.0)
    assert by_scenario[1]["xb"].energy_needed_kwh == pytest.approx(4.0)
    assert by_scenario[1]["xa"].arrival == NOW.replace(hour=12)
    assert by_scenario[1]["xa"].departure == NOW.replace(hour=14)
    # two days known: each day's sessions weigh half of what the mean's do
    assert {s.forecast_weight for s in out} == {0.25}
    # the mean of the same days halves every day's load instead
    mean = {s.evse_id: s.energy_needed_kwh for s in forecast(history, NOW, UTC, GROUPS, weight=0.5).sessions}
    assert mean["xa"] == pytest.approx(5.0)


def test_no_earlier_day_no_scenarios() -> None:
    assert (
        forecast([past("a", 3, 12.0, 1.0, 5.0)], NOW, UTC, GROUPS, weight=0.5, scenarios=True).sessions == ()
    )


# Two 16 A feeders (230 V, L1) under a grid connection capped at 16 A' worth (3.68 kW) for the
# first 1.5 h; 15-minute periods, 3 hours; energy alone (no cost or peak stage).
POLICY = Policy(period_s=900, horizon_periods=12, exact_periods=4, objective=("energy",))
EVSES = tuple(Evse(e, Connection.L1, 230.0, 16.0) for e in ("a", "xa", "b", "xb"))
SITE = Site(
    grid_limit_kw=1000.0,
    root=FeederNode(
        "main",
        children=(
            FeederNode("A", limit_a=16.0, evse_ids=("a", "xa")),
            FeederNode("B", limit_a=16.0, evse_ids=("b", "xb")),
        ),
    ),
    caps=(CapWindow(NOW, NOW + timedelta(hours=1.5), limit_kw=3.68),),
)
SIX_PERIODS_KWH = 16 * 0.23 * 1.5  # 5.52 kWh: 1.5 h at 16 A


def car(session_id: str, evse_id: str) -> ActiveSession:
    return ActiveSession(session_id, evse_id, NOW, NOW + timedelta(hours=3), SIX_PERIODS_KWH)


def later(session_id: str, evse_id: str, kwh: float, weight: float, scenario: int | None) -> ActiveSession:
    arrival = NOW + timedelta(hours=1.5)
    return ActiveSession(
        session_id,
        evse_id,
        arrival,
        arrival + timedelta(hours=1.5),
        kwh,
        vehicle_max_current_a=16.0,
        forecast_weight=weight,
        scenario=scenario,
    )


def test_a_lumpy_future_is_planned_for_where_its_mean_is_not() -> None:
    # Cars P (feeder A) and Q (feeder B) each need 1.5 h at 16 A and stay 3 h; for the first
    # 1.5 h the cap lets only one of them charge. On one earlier day a car arrived on feeder A
    # at 1.5 h needing 1.5 h at 16 A; on the other day nobody came. If that car comes, feeder
    # A has room for it only if P is full by then: P should take the whole cap now and Q
    # charge afterwards on B, which costs P and Q nothing either way.
    present = (car("P", "a"), car("Q", "b"))
    scenario = solve(
        StationSnapshot(
            "st", NOW, SITE, EVSES, (*present, later("e", "xa", SIX_PERIODS_KWH, 0.25, 0)), POLICY
        )
    )
    assert scenario.status is SolveStatus.OPTIMAL
    assert scenario.current_a[0, :6] == pytest.approx([16.0] * 6)  # P takes the cap now
    assert scenario.current_a[1, :6] == pytest.approx([0.0] * 6)
    # Q afterwards, on B (the far blocks of the plan are rounded down to the 0.1 A step)
    assert scenario.current_a[1, 6:] == pytest.approx([16.0] * 6, abs=0.1)
    assert scenario.current_a[2] == pytest.approx([0.0] * 12)  # a scenario's session gets no current
    # as a mean (half a car a day), the expected car fits beside half of P: the plan shares now
    mean = solve(
        StationSnapshot(
            "st", NOW, SITE, EVSES, (*present, later("e", "xa", SIX_PERIODS_KWH / 2, 0.5, None)), POLICY
        )
    )
    assert mean.status is SolveStatus.OPTIMAL
    assert mean.current_a[0, 0] < 16.0 - 1e-6
    assert mean.current_a[1, 0] > 1e-6
    for schedule in (scenario, mean):  # the cars present are served in full either way
        served = schedule.current_a[:2].sum(axis=1) * 0.23 * 0.25
        assert served == pytest.approx([SIX_PERIODS_KWH] * 2, rel=0.005)


def test_scenarios_are_held_to_the_limits_one_at_a_time_and_the_cars_present_alone() -> None:
    # Two scenarios, each a car on feeder A at its full 16 A after 1.5 h: together they would
    # be 32 A on a 16 A feeder; as alternatives each may plan the whole feeder.
    sessions = (
        car("P", "a"),
        later("e0", "xa", SIX_PERIODS_KWH, 0.25, 0),
        later("e1", "xa", SIX_PERIODS_KWH, 0.25, 1),
    )
    problem = prepare(StationSnapshot("st", NOW, SITE, EVSES, sessions, POLICY))
    assert problem.scenarios == 2
    model = lp_model.build(problem)
    result = lp_model.solve(model, problem, deadline_s=5.0)
    assert result is not None
    plan = result.current_a
    assert plan[1, 6:] == pytest.approx([16.0] * 6)
    assert plan[2, 6:] == pytest.approx([16.0] * 6)
    assert plan[0, :6] == pytest.approx([16.0] * 6)  # P full before either arrives
    # with P and each scenario's car on it, feeder A never carries more than 16 A
    for k in (1, 2):
        assert float(np.max(plan[0] + plan[k])) <= 16.0 + 1e-6
    schedule = solve(StationSnapshot("st", NOW, SITE, EVSES, sessions, POLICY))
    assert schedule.status is SolveStatus.OPTIMAL
    assert schedule.current_a[1:].sum() == 0.0


def test_a_scenario_cannot_relieve_a_limit_for_the_cars_present() -> None:
    # The only scenario's car is on feeder B; the cars present on A must keep within A's 16 A
    # whatever it does, and within the cap in the first 1.5 h.
    sessions = (
        car("P", "a"),
        ActiveSession("P2", "xa", NOW, NOW + timedelta(hours=3), SIX_PERIODS_KWH),
        later("e0", "xb", SIX_PERIODS_KWH, 0.25, 0),
    )
    schedule = solve(StationSnapshot("st", NOW, SITE, EVSES, sessions, POLICY))
    assert schedule.status is SolveStatus.OPTIMAL
    on_a = schedule.current_a[0] + schedule.current_a[1]
    assert float(on_a.max()) <= 16.0 + 1e-6
    assert float(on_a[:6].max()) * 0.23 <= 3.68 + 1e-6
