"""Property tests: whatever the site and the sessions, no schedule ever breaks a limit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import (
    ActiveSession,
    Algorithm,
    CapWindow,
    Connection,
    Evse,
    EvseCap,
    FeederNode,
    Network,
    Policy,
    Site,
    StationSnapshot,
    solve,
)
from optimizer.failsafe import failsafe_currents_a
from optimizer.limits import evse_cap_a, power_limit_kw
from optimizer.offline import solve_offline
from optimizer.types import SolveStatus

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CONNECTIONS = list(Connection)


@st.composite
def stations(draw: st.DrawFn) -> StationSnapshot:
    n = draw(st.integers(1, 8))
    step = draw(st.sampled_from([0.1, 1.0]))
    min_a = draw(st.sampled_from([0.0, 6.0]))
    evses = tuple(
        Evse(
            f"e{i}",
            draw(st.sampled_from(CONNECTIONS)),
            draw(st.sampled_from([208.0, 230.0])),
            draw(st.sampled_from([16.0, 32.0])),
            min_current_a=min_a,
            step=step,
        )
        for i in range(n)
    )
    ids = [e.evse_id for e in evses]
    split = draw(st.integers(0, n))
    child = FeederNode(
        "feeder",
        limit_a=draw(st.floats(8.0, 80.0)),
        evse_ids=tuple(ids[:split]),
        limit_kw=draw(st.none() | st.floats(2.0, 40.0)),
    )
    transformer = draw(st.booleans())
    root = FeederNode(
        "main",
        limit_a=draw(st.none() | st.floats(10.0, 120.0)),
        evse_ids=tuple(ids[split:]),
        children=(child,),
        transformer_ratio=4.0 if transformer else None,
        primary_limit_a=draw(st.floats(5.0, 40.0)) if transformer else None,
    )
    caps: tuple[CapWindow, ...] = ()
    if draw(st.booleans()):
        start = NOW + timedelta(minutes=draw(st.integers(0, 120)))
        caps = (
            CapWindow(
                start,
                start + timedelta(minutes=draw(st.integers(5, 180))),
                fraction=draw(st.floats(0.0, 1.0)),
            ),
        )
    evse_caps = []
    for _ in range(draw(st.integers(0, 2))):
        start = NOW + timedelta(minutes=draw(st.integers(-30, 180)))
        minutes = draw(st.none() | st.integers(5, 240))
        end = None if minutes is None else start + timedelta(minutes=minutes)
        evse_caps.append(EvseCap(draw(st.sampled_from(ids)), start, end, draw(st.floats(0.0, 32.0))))
    site = Site(grid_limit_kw=draw(st.floats(1.0, 60.0)), root=root, caps=caps, evse_caps=tuple(evse_caps))
    k = draw(st.integers(0, n))
    sessions = tuple(
        ActiveSession(
            f"s{i}",
            ids[i],
            NOW - timedelta(minutes=draw(st.integers(0, 60))),
            NOW + timedelta(minutes=draw(st.integers(1, 600))),
            draw(st.floats(0.0, 60.0)),
            vehicle_max_current_a=draw(st.none() | st.floats(6.0, 32.0)),
            priority=draw(st.sampled_from([1.0, 2.0])),
        )
        for i in range(k)
    )
    policy = Policy(period_s=300, horizon_periods=draw(st.sampled_from([12, 48, 96])), exact_periods=6)
    return StationSnapshot("st", NOW, site, evses, sessions, policy)


def check_schedule(snap: StationSnapshot, current_a: np.ndarray) -> None:
    net = Network.build(snap.site, snap.evses)
    periods = current_a.shape[1]
    full = np.zeros((len(net.evse_ids), periods))
    cols = net.index([s.evse_id for s in snap.sessions]) if snap.sessions else np.zeros(0, dtype=np.int64)
    full[cols] = current_a
    limit = power_limit_kw(snap.site, snap.now, snap.policy.period_s, periods)
    use = net.utilisation(full, limit)
    assert use.max(initial=0.0) <= 1.0 + 1e-6, f"limit broken: {use.max():.6f}"
    by_id = {e.evse_id: e for e in snap.evses}
    capped = evse_cap_a(
        snap.site, [s.evse_id for s in snap.sessions], snap.now, snap.policy.period_s, periods
    )
    for i, s in enumerate(snap.sessions):
        e = by_id[s.evse_id]
        row = current_a[i]
        assert np.all(row >= 0.0)
        assert np.all(row <= e.max_current_a + 1e-9)
        assert np.all(row <= capped[i] + 1e-9), "an EVSE cap broken"
        assert np.all((row == 0.0) | (row >= e.min_current_a - 1e-9)), "minimum-current rule broken"
        steps = row / e.step_a
        assert np.allclose(steps, np.round(steps), atol=1e-6), "off the EVSE's step"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stations(), st.sampled_from([Algorithm.FAIRWATT, Algorithm.EDF, Algorithm.LLF, Algorithm.EQUAL_SHARE]))
def test_no_schedule_breaks_a_limit(snap: StationSnapshot, algorithm: Algorithm) -> None:
    result = solve(snap, algorithm)
    check_schedule(snap, result.current_a)
    # energy is never planned beyond a session's need (more than one step of one period)
    for i, s in enumerate(snap.sessions):
        e = snap.evse(s.evse_id)
        # what the car draws: the pilot may sit a step above the car's own maximum
        drawn = np.minimum(result.current_a[i], s.vehicle_max_current_a or e.max_current_a)
        planned = drawn.sum() * e.kw_per_a * snap.policy.period_s / 3600
        slack = max(e.step_a, e.min_current_a) * e.kw_per_a * snap.policy.period_s / 3600
        assert planned <= (s.energy_needed_kwh or 0.0) + slack + 1e-6


@st.composite
def stations_with_scenarios(draw: st.DrawFn) -> tuple[StationSnapshot, int]:
    """A station and, on any EVSEs, sessions expected later in up to 4 scenarios; and how many are real."""
    snap = draw(stations())
    ids = [e.evse_id for e in snap.evses]
    expected = tuple(
        ActiveSession(
            f"x{j}",
            draw(st.sampled_from(ids)),
            NOW + timedelta(minutes=draw(st.integers(1, 300))),
            NOW + timedelta(minutes=draw(st.integers(301, 700))),
            draw(st.floats(0.5, 40.0)),
            vehicle_max_current_a=draw(st.floats(6.0, 32.0)),
            forecast_weight=0.5,
            scenario=draw(st.integers(0, 3)),
        )
        for j in range(draw(st.integers(1, 8)))
    )
    return replace(snap, sessions=(*snap.sessions, *expected)), len(snap.sessions)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stations_with_scenarios())
def test_scenarios_never_make_the_cars_present_break_a_limit(case: tuple[StationSnapshot, int]) -> None:
    snap, real = case
    result = solve(snap)
    assert result.status is SolveStatus.OPTIMAL  # the cars present alone are held to every limit
    assert not result.current_a[real:].any()  # no current for a scenario's session
    check_schedule(replace(snap, sessions=snap.sessions[:real]), result.current_a[:real])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stations())
def test_fallback_and_round_robin_never_break_a_limit(snap: StationSnapshot) -> None:
    check_schedule(snap, solve(snap, force_fallback=True).current_a)
    check_schedule(snap, solve(snap, Algorithm.ROUND_ROBIN).current_a)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stations())
def test_offline_bound_never_breaks_a_limit_and_beats_online_energy(snap: StationSnapshot) -> None:
    periods = snap.policy.horizon_periods
    offline = solve_offline(snap.site, snap.evses, snap.sessions, snap.now, periods, snap.policy)
    check_schedule(snap, offline.current_a)


@settings(max_examples=40, deadline=None)
@given(stations())
def test_failsafe_currents_fit_with_everyone_drawing(snap: StationSnapshot) -> None:
    currents = failsafe_currents_a(snap.site, snap.evses)
    net = Network.build(snap.site, snap.evses)
    x = np.array([currents[e] for e in net.evse_ids])
    assert net.utilisation(x, snap.site.grid_limit_kw).max() <= 1.0 + 1e-6
