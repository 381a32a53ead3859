"""Hand-checked solver cases: each answer is worked out in the comment beside it."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from optimizer import (
    ActiveSession,
    Algorithm,
    CapWindow,
    Connection,
    Evse,
    FeederNode,
    Network,
    NetworkError,
    Policy,
    PricePeriod,
    Site,
    SnapshotError,
    SolveStatus,
    StationSnapshot,
    solve,
)
from optimizer.failsafe import failsafe_currents_a
from optimizer.offline import solve_offline

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
POLICY = Policy(period_s=900, horizon_periods=16, exact_periods=4)


def evse(evse_id: str, conn: Connection = Connection.L1, **kw: float) -> Evse:
    return Evse(evse_id, conn, kw.pop("voltage_v", 230.0), kw.pop("max_current_a", 32.0), **kw)  # type: ignore[arg-type]


def session(sid: str, evse_id: str, hours: float, need_kwh: float | None, **kw: float) -> ActiveSession:
    return ActiveSession(sid, evse_id, NOW, NOW + timedelta(hours=hours), need_kwh, **kw)  # type: ignore[arg-type]


def snapshot(
    site: Site, evses: tuple[Evse, ...], sessions: tuple[ActiveSession, ...], **policy: object
) -> StationSnapshot:
    return StationSnapshot("st", NOW, site, evses, sessions, replace(POLICY, **policy))  # type: ignore[arg-type]


def site_of(
    evse_ids: tuple[str, ...], limit_a: float | None = None, grid_kw: float = 1000.0, **kw: object
) -> Site:
    return Site(grid_limit_kw=grid_kw, root=FeederNode("main", limit_a=limit_a, evse_ids=evse_ids), **kw)  # type: ignore[arg-type]


def used_kwh(schedule_current: np.ndarray, kw_per_a: float, period_s: int) -> float:
    return float(schedule_current.sum() * kw_per_a * period_s / 3600)


def test_single_car_gets_what_it_needs_and_no_more() -> None:
    # 230 V x 16 A = 3.68 kW; 3.68 kWh need in 1 h: 16 A for all four 15-minute periods.
    e = evse("e1", max_current_a=16.0)
    result = solve(snapshot(site_of(("e1",)), (e,), (session("s1", "e1", 1.0, 3.68),)))
    assert result.status is SolveStatus.OPTIMAL
    assert result.current_a[0, :4] == pytest.approx([16.0] * 4)
    assert result.current_a[0, 4:].sum() == 0.0
    assert result.objective.energy_kwh == pytest.approx(3.68)


def test_two_equal_cars_share_a_feeder_equally() -> None:
    # 32 A shared, both need far more than they can get before leaving: the current applied
    # now is 16 A each (not in turns), and over the hour each gets half: 16 A x 1 h x 230 V.
    es = (evse("a"), evse("b"))
    sessions = (session("s1", "a", 1.0, 50.0), session("s2", "b", 1.0, 50.0))
    result = solve(snapshot(site_of(("a", "b"), limit_a=32.0), es, sessions))
    assert result.current_a[:, 0] == pytest.approx([16.0, 16.0])
    assert result.current_a[:, :4].sum(axis=1) == pytest.approx([64.0, 64.0])
    assert np.all(result.current_a[:, :4].sum(axis=0) <= 32.0 + 1e-9)


def test_priority_weights_the_share_of_need() -> None:
    # 30 A for 1 h at 230 V = 6.9 kWh to share; needs 10 kWh each; priority 2 vs 1:
    # max-min of weighted share: s1 share = 2 s2 share, 10 (2x) + 10 x = 6.9 -> x = 0.23.
    es = (evse("a"), evse("b"))
    sessions = (session("s1", "a", 1.0, 10.0, priority=2.0), session("s2", "b", 1.0, 10.0))
    result = solve(snapshot(site_of(("a", "b"), limit_a=30.0), es, sessions))
    kw = 0.23
    energy = result.current_a[:, :4].sum(axis=1) * kw * 0.25
    assert energy.sum() == pytest.approx(6.9, abs=0.05)
    assert energy[0] / 10 == pytest.approx(2 * energy[1] / 10, rel=0.03)


def test_line_to_line_currents_add_as_phasors() -> None:
    # L1-L2 and L3-L1 EVSEs both load line L1, 60 degrees apart: |x e^{j30} + x e^{-j30}| = x sqrt(3).
    # A 32 A limit on L1 allows x = 32 / sqrt(3) = 18.47 A each: 18.4 A after the 0.1 A step, and
    # the step that rounding freed fits on one of them: |18.5 e^{j30} + 18.4 e^{-j30}| = 31.96 A.
    es = (evse("a", Connection.L1_L2, voltage_v=208.0), evse("b", Connection.L3_L1, voltage_v=208.0))
    sessions = (session("s1", "a", 1.0, 50.0), session("s2", "b", 1.0, 50.0))
    site = site_of(("a", "b"), limit_a=32.0)
    result = solve(snapshot(site, es, sessions))
    assert sorted(result.current_a[:, 0]) == pytest.approx([18.4, 18.5], abs=1e-9)
    net = Network.build(site, es)
    use = net.utilisation(result.current_a[:, 0], site.grid_limit_kw)
    assert use.max() <= 1.0
    assert use.max() == pytest.approx(math.sqrt(18.5**2 + 18.4**2 + 18.5 * 18.4) / 32, rel=1e-9)


def test_minimum_current_means_zero_or_at_least_the_minimum() -> None:
    # 16 A for three cars with a 6 A minimum: all three cannot charge (3 x 6 > 16), two can.
    es = tuple(evse(name, min_current_a=6.0, step=1.0) for name in "abc")
    sessions = tuple(session(f"s{k}", name, 2.0, 40.0) for k, name in enumerate("abc"))
    result = solve(snapshot(site_of(("a", "b", "c"), limit_a=16.0), es, sessions))
    first = result.current_a[:, 0]
    assert all(c == 0.0 or c >= 6.0 for c in first)
    assert first.sum() <= 16.0
    assert first.sum() >= 12.0  # the capacity is not left idle
    assert np.allclose(first, np.round(first))  # whole-amp steps


def test_cap_window_lowers_the_site_power() -> None:
    # Grid 11 kW, a 50 % cap for the second half hour: 5.5 kW there, 11 kW otherwise (one 3-phase EVSE).
    e = Evse("e", Connection.THREE_PHASE, 230.0, 16.0)
    cap = CapWindow(NOW + timedelta(minutes=30), NOW + timedelta(minutes=60), fraction=0.5)
    site = site_of(("e",), grid_kw=11.0, caps=(cap,))
    result = solve(snapshot(site, (e,), (session("s", "e", 4.0, 100.0),)))
    power = result.power_kw[0]
    assert power[:2] == pytest.approx([11.0, 11.0], abs=0.07)
    assert np.all(power[2:4] <= 5.5 + 1e-9)
    assert power[2:4] == pytest.approx([5.5, 5.5], abs=0.07)


def test_cost_moves_energy_to_cheap_periods_without_losing_energy() -> None:
    # 7.36 kWh needed in 4 h at up to 3.68 kW: two full hours suffice; the last two hours are cheap.
    e = evse("e", max_current_a=16.0)
    prices = (PricePeriod(NOW, 0.40), PricePeriod(NOW + timedelta(hours=2), 0.10))
    site = site_of(("e",), prices=prices)
    snap = snapshot(site, (e,), (session("s", "e", 4.0, 7.36),))
    with_cost = solve(snap)
    blind = solve(replace(snap, policy=replace(snap.policy, objective=("energy",))))
    assert with_cost.objective.energy_kwh == pytest.approx(7.36)
    assert blind.objective.energy_kwh == pytest.approx(7.36)
    assert with_cost.objective.cost == pytest.approx(0.736)
    assert with_cost.objective.cost < blind.objective.cost
    assert with_cost.current_a[0, 8:].sum() == pytest.approx(16.0 * 8)


DEPOT_PRICES = (PricePeriod(NOW, 0.40), PricePeriod(NOW + timedelta(hours=2), 0.10))


def depot(forecast_until: datetime | None, *extra: ActiveSession, departure: bool = True) -> StationSnapshot:
    """16 A EVSEs at 230 V on a 32 A feeder, four cars staying 4 h (the horizon) needing 1.84 kWh
    each (8 A for 1 h), 0.40/kWh for 2 h then 0.10: 7.36 kWh, one hour of the whole feeder."""
    es = tuple(evse(f"e{i}", max_current_a=16.0) for i in range(5))
    site = site_of(tuple(e.evse_id for e in es), limit_a=32.0, prices=DEPOT_PRICES)
    present = tuple(session(f"s{i}", f"e{i}", 4.0, 1.84) for i in range(4))
    if not departure:
        present = (replace(present[0], departure=None), *present[1:])
    snap = snapshot(site, es, (*present, *extra), default_stay=timedelta(hours=4))
    return replace(snap, forecast_until=forecast_until)


@pytest.mark.parametrize("forecast_until", [None, NOW + timedelta(hours=4)])
def test_when_an_expected_car_would_be_short_the_depot_charges_now(forecast_until: datetime | None) -> None:
    # The depot with one more car expected in 2 h (during the stays), wanting 10 kWh where its
    # 16 A EVSE gives at most 7.36 in its 2 h: capacity is short for it. Energy first fills the
    # feeder now (32 A); that early energy is held and the four cars present take the whole
    # feeder in the dear first hour: 32 A in each of periods 0-3, cost 7.36 x 0.40.
    later = NOW + timedelta(hours=2)
    expected = ActiveSession("x", "e4", later, later + timedelta(hours=2), 10.0, forecast_weight=0.5)
    result = solve(depot(forecast_until, expected))
    assert result.current_a[:4, :4].sum(axis=0) == pytest.approx([32.0] * 4, abs=1e-6)
    assert result.current_a[:4, 4:].sum() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("trust_forecast", [False, True])
def test_an_expected_car_the_plan_serves_in_full_holds_the_energy_unless_the_forecast_is_trusted(
    trust_forecast: bool,
) -> None:
    # The same car expected in 2 h wants 3.68 kWh (16 A for 1 h). The cheap 2 h hold 32 A: the
    # four cars present (7.36 kWh, 16 A for 2 h) and the expected car fit in them together, and
    # the plan keeps the expected car's energy. By default a car expected may bring more than
    # forecast, so the early energy is held (32 A in the first hour); trusting the forecast, the
    # cars present wait: nothing in the dear hours.
    later = NOW + timedelta(hours=2)
    expected = ActiveSession("x", "e4", later, later + timedelta(hours=2), 3.68, forecast_weight=0.5)
    snap = depot(NOW + timedelta(hours=4), expected)
    result = solve(replace(snap, policy=replace(snap.policy, trust_forecast=trust_forecast)))
    if not trust_forecast:
        assert result.current_a[:4, :4].sum(axis=0) == pytest.approx([32.0] * 4, abs=1e-6)
        return
    assert result.current_a[:4, :8].sum() == pytest.approx(0.0, abs=1e-6)
    assert result.current_a[:4].sum() * 0.23 * 0.25 == pytest.approx(7.36)  # the cars present, in full
    assert result.objective.energy_kwh == pytest.approx(7.36 + 3.68)  # and the expected car's


def test_a_depot_whose_forecast_expects_nobody_charges_in_the_cheap_hours() -> None:
    # The forecast covers the whole stays and expects nobody: nobody can come for the capacity
    # left idle now, so the 7.36 kWh wait for the cheap hours: cost 7.36 x 0.10 = 0.736 (held
    # early it would be 2.944). A car planned at 5.33 A for 6 periods is sent 5.3 or 5.4 A, the
    # remainder carried from period to period, so none of it comes back now.
    result = solve(depot(NOW + timedelta(hours=4)))
    assert result.objective.energy_kwh == pytest.approx(7.36)
    assert result.current_a[:4, :8].sum() == 0.0
    assert result.objective.cost == pytest.approx(0.736)


@pytest.mark.parametrize(
    ("forecast_until", "departure"),
    [
        (None, True),  # no forecast: anyone may come
        (NOW + timedelta(hours=2), True),  # the forecast ends before the cars leave
        (NOW + timedelta(hours=4), False),  # a car's departure is the policy's guess
    ],
)
def test_without_a_forecast_over_the_stays_the_depot_charges_now(
    forecast_until: datetime | None, departure: bool
) -> None:
    # The shipped hold: energy first fills the feeder in the first hour; held, it costs 7.36 x 0.40.
    result = solve(depot(forecast_until, departure=departure))
    assert result.objective.energy_kwh == pytest.approx(7.36)
    assert result.current_a[:4, :4].sum(axis=0) == pytest.approx([32.0] * 4, abs=1e-6)
    assert result.objective.cost == pytest.approx(2.944)


def test_a_whole_amp_plan_for_the_cheap_hours_comes_back_whole_and_cheap() -> None:
    # Three vans on three-phase 16 A EVSEs (0.69 kW per A), 6 A minimum, whole-amp steps, a 20 kW
    # connection, 10 kWh each, 4 h; 0.40/kWh for 2 h, then 0.10. A forecast covers the stays and
    # expects nobody, so the 30 kWh wait for the cheap hours, where the peak stage spreads them
    # at 15 kW (21.7 A for the three, 7.25 A each). Rounded down period by period, the vans lost
    # ~0.25 A in each of 8 periods, and making that up in the periods applied now sent it at the
    # dear price; carried from period to period, the plan keeps it where it was.
    es = tuple(
        evse(f"v{i}", Connection.THREE_PHASE, max_current_a=16.0, min_current_a=6.0, step=1.0)
        for i in range(3)
    )
    site = site_of(tuple(e.evse_id for e in es), grid_kw=20.0, prices=DEPOT_PRICES)
    vans = tuple(session(f"s{i}", f"v{i}", 4.0, 10.0) for i in range(3))
    result = solve(replace(snapshot(site, es, vans), forecast_until=NOW + timedelta(hours=4)))
    assert result.objective.energy_kwh == pytest.approx(30.0)
    assert result.current_a[:, :8].sum() == 0.0
    # every kWh sent at 0.10 (a car's last pulse may round up past its need: it stops when full)
    assert result.objective.cost == pytest.approx(0.10 * result.power_kw.sum() * 0.25)
    later = result.current_a[:, 8:]
    assert np.all((later == 0.0) | ((later >= 6.0) & (later == np.round(later))))
    assert float((later.sum(axis=0) * 0.69).max()) <= 20.0 + 1e-9


def test_a_car_leaving_now_gets_its_last_watt_hours_at_the_minimum() -> None:
    # 6 A minimum, whole-amp steps, 230 V; the car leaves in two 15-minute periods and still
    # needs 0.1 kWh, 1.74 A-periods: the LP plans 0.87 A twice, which rounds to 0, and no later
    # period can make it up, so the period applied now gets the minimum (the car stops when full)
    e = evse("a", min_current_a=6.0, step=1.0)
    car = ActiveSession("s", "a", NOW, NOW + timedelta(minutes=30), 0.1)
    result = solve(snapshot(site_of(("a",)), (e,), (car,)))
    assert result.current_a[0, 0] == 6.0
    assert result.objective.energy_kwh == pytest.approx(0.1)


def test_a_naive_forecast_end_is_refused() -> None:
    with pytest.raises(SnapshotError, match="forecast_until"):
        solve(depot(datetime(2026, 3, 2, 12, 0)))


def test_a_car_expected_after_the_cars_present_leave_does_not_hold_their_energy() -> None:
    # The four cars leave after 3 h; a car is expected at 3 h (it finds the feeder free). 0.40 for
    # 2 h then 0.10: the cars present charge in their last hour, 32 A in periods 8-11.
    later = NOW + timedelta(hours=3)
    expected = ActiveSession("x", "e4", later, later + timedelta(hours=1), 1.84, forecast_weight=0.5)
    snap = depot(NOW + timedelta(hours=4), expected)
    snap = replace(
        snap,
        sessions=(*(replace(s, departure=NOW + timedelta(hours=3)) for s in snap.sessions[:4]), expected),
    )
    result = solve(snap)
    assert result.current_a[:4, :8].sum() == pytest.approx(0.0, abs=1e-6)
    assert result.current_a[:4, 8:12].sum(axis=0) == pytest.approx([32.0] * 4, abs=1e-6)


@pytest.mark.parametrize("forecast_until", [None, NOW + timedelta(hours=4)])
def test_when_a_car_is_left_short_the_current_applied_now_is_not_deferred(
    forecast_until: datetime | None,
) -> None:
    # 24 A feeder, 16 A EVSEs. Car a leaves in 1 h needing 5 kWh: at most 16 A x 1 h = 3.68 kWh,
    # so it is left short. Car b stays 4 h and needs 1.84 kWh. Energy first fills the feeder
    # now (a 16 A, b the other 8 A); a car present is short, so that early energy is held and
    # b keeps its 8 A now (1.84 kWh in the hour) although the last two hours are 4x cheaper:
    # later arrivals would compete for those hours, and capacity left idle now is lost.
    es = (evse("a", max_current_a=16.0), evse("b", max_current_a=16.0))
    prices = (PricePeriod(NOW, 0.40), PricePeriod(NOW + timedelta(hours=2), 0.10))
    site = site_of(("a", "b"), limit_a=24.0, prices=prices)
    sessions = (session("sa", "a", 1.0, 5.0), session("sb", "b", 4.0, 1.84))
    result = solve(replace(snapshot(site, es, sessions), forecast_until=forecast_until))
    assert result.objective.energy_kwh == pytest.approx(3.68 + 1.84)
    assert result.current_a[:, :4] == pytest.approx(np.array([[16.0] * 4, [8.0] * 4]), abs=1e-6)


def test_vehicle_maximum_frees_capacity_for_others() -> None:
    # 32 A shared; car 1 draws at most 10 A, so car 2 gets 22 A.
    es = (evse("a"), evse("b"))
    sessions = (session("s1", "a", 1.0, 50.0, vehicle_max_current_a=10.0), session("s2", "b", 1.0, 50.0))
    result = solve(snapshot(site_of(("a", "b"), limit_a=32.0), es, sessions))
    assert result.current_a[:, 0] == pytest.approx([10.0, 22.0])


def test_unknown_need_and_departure_take_the_policy_defaults() -> None:
    e = evse("e", max_current_a=16.0)
    s = ActiveSession("s", "e", NOW, None, None)
    snap = snapshot(site_of(("e",)), (e,), (s,), default_stay=timedelta(hours=1), default_energy_kwh=1.84)
    result = solve(snap)
    assert result.objective.energy_needed_kwh == pytest.approx(1.84)
    assert result.current_a[0, 4:].sum() == 0.0  # nothing planned after the default departure


def test_forced_fallback_is_safe_and_says_so() -> None:
    es = tuple(evse(name, min_current_a=6.0) for name in "abcd")
    sessions = tuple(session(f"s{k}", name, 2.0, 20.0) for k, name in enumerate("abcd"))
    site = site_of(tuple("abcd"), limit_a=40.0)
    result = solve(snapshot(site, es, sessions), force_fallback=True)
    assert result.status is SolveStatus.FALLBACK
    net = Network.build(site, es)
    assert net.utilisation(result.current_a, site.grid_limit_kw).max() <= 1.0 + 1e-9
    # equal share: 40 A over four cars = 10 A each
    assert result.current_a[:, 0] == pytest.approx([10.0] * 4)


def test_deadline_overrun_falls_back() -> None:
    es = (evse("a"), evse("b"))
    sessions = (session("s1", "a", 1.0, 5.0), session("s2", "b", 1.0, 5.0))
    result = solve(snapshot(site_of(("a", "b"), limit_a=20.0), es, sessions, deadline_s=0.0))
    assert result.status is SolveStatus.FALLBACK
    assert "in time" in result.message
    assert result.current_a[:, 0] == pytest.approx([10.0, 10.0])


def test_no_sessions_is_an_empty_schedule() -> None:
    result = solve(snapshot(site_of(("e",)), (evse("e"),), ()))
    assert result.status is SolveStatus.EMPTY
    assert result.current_a.shape == (0, 16)


@pytest.mark.parametrize("algorithm", [Algorithm.EDF, Algorithm.LLF, Algorithm.ROUND_ROBIN])
def test_baselines_fill_the_limit_in_their_order(algorithm: Algorithm) -> None:
    # 32 A, the earlier-leaving (and least lax) car first for EDF/LLF; round robin shares.
    es = (evse("a"), evse("b"))
    sessions = (session("late", "a", 3.0, 50.0), session("early", "b", 1.0, 50.0))
    result = solve(snapshot(site_of(("a", "b"), limit_a=32.0), es, sessions), algorithm)
    first = result.current_a[:, 0]
    assert first.sum() == pytest.approx(32.0)
    if algorithm is Algorithm.ROUND_ROBIN:
        assert first == pytest.approx([16.0, 16.0], abs=0.1)
    else:
        assert first == pytest.approx([0.0, 32.0])


def test_uncontrolled_ignores_limits() -> None:
    es = (evse("a"), evse("b"))
    sessions = (session("s1", "a", 1.0, 50.0), session("s2", "b", 1.0, 50.0))
    result = solve(snapshot(site_of(("a", "b"), limit_a=32.0), es, sessions), Algorithm.UNCONTROLLED)
    assert result.current_a[:, 0] == pytest.approx([32.0, 32.0])


def test_offline_bound_sees_future_arrivals() -> None:
    # One 16 A feeder; car 1 all morning (need 3.68 kWh), car 2 arrives at 09:00 for one hour
    # needing 3.68 kWh: the bound serves car 1 before 09:00 and car 2 at 09:00, both fully.
    es = (evse("a", max_current_a=16.0), evse("b", max_current_a=16.0))
    s1 = ActiveSession("s1", "a", NOW, NOW + timedelta(hours=2), 3.68)
    s2 = ActiveSession("s2", "b", NOW + timedelta(hours=1), NOW + timedelta(hours=2), 3.68)
    site = site_of(("a", "b"), limit_a=16.0)
    result = solve_offline(site, es, (s1, s2), NOW, 8, POLICY)
    assert result.objective.energy_kwh == pytest.approx(7.36)
    assert result.current_a[1, :4].sum() == 0.0  # car 2 cannot charge before it arrives


def test_failsafe_currents_keep_the_site_within_its_limits() -> None:
    es = tuple(evse(name, Connection.THREE_PHASE, min_current_a=6.0) for name in "abcd")
    site = site_of(tuple("abcd"), limit_a=63.0, grid_kw=30.0)
    currents = failsafe_currents_a(site, es)
    net = Network.build(site, es)
    x = np.array([currents[e] for e in net.evse_ids])
    assert net.utilisation(x, site.grid_limit_kw).max() <= 1.0 + 1e-9
    # 30 kW / (4 x 3 x 230 V) = 10.87 A each, below the 63 A per-line limit; stepped to 0.1 A,
    # and what the rounding freed handed out a step at a time
    assert np.all(x >= 10.8 - 1e-9)
    assert float((x * 3 * 0.23).sum()) <= 30.0


def test_stability_keeps_the_current_the_charger_holds_when_it_costs_nothing() -> None:
    # 1.84 kWh in 4 h under a 32 A feeder, no prices, no peak objective: any first-period
    # current serves it. With nothing in force the solver charges early (32 A); with 10 A in
    # force it keeps 10 A rather than send a new profile.
    e = evse("e", max_current_a=32.0)
    s = ActiveSession("s", "e", NOW, NOW + timedelta(hours=4), 1.84)
    site = site_of(("e",), limit_a=32.0)
    plain = snapshot(site, (e,), (s,), objective=("energy", "cost"))
    assert solve(plain).current_a[0, 0] == pytest.approx(32.0)
    held = solve(replace(plain, sessions=(replace(s, offered_current_a=10.0),)))
    assert held.current_a[0, 0] == pytest.approx(10.0)
    assert held.objective.energy_kwh == pytest.approx(1.84)


def test_peak_objective_spreads_a_lone_car_over_its_stay() -> None:
    # 1.84 kWh over 4 h: the lowest peak is 0.46 kW, i.e. 2 A at 230 V in every period.
    e = evse("e", max_current_a=32.0)
    s = ActiveSession("s", "e", NOW, NOW + timedelta(hours=4), 1.84)
    result = solve(snapshot(site_of(("e",), limit_a=32.0), (e,), (s,)))
    assert result.objective.energy_kwh == pytest.approx(1.84)
    # flat to within one 0.1 A step after the first period, where what rounding the later
    # periods down to steps lost is handed back (energy first): at most a few steps
    rest = result.current_a[0, 1:]
    assert rest.max() - rest.min() <= 0.1 + 1e-9
    assert rest.min() >= 1.9 - 1e-9
    assert rest.max() <= 2.1 + 1e-9
    assert result.current_a[0, 0] <= 3.0


def test_a_peak_already_paid_for_does_not_hold_a_car_back() -> None:
    # Demand charge 10/kW, flat price. 3.68 kWh over 4 h: without a peak so far the lowest
    # peak is 0.92 kW (4 A at 230 V all 16 periods). With 2.3 kW already reached this billing
    # period, any plan up to 2.3 kW costs the same, and the tie-break delivers earlier:
    # 10 A (2.3 kW) for 1.6 h = 6.4 periods. The LP plans periods 6-9 as one block, so the
    # last 0.4 x 0.575 = 0.23 kWh spreads over it: 10 A in periods 0-5, 1 A in 6-9, then 0.
    e = evse("e", max_current_a=32.0)
    s = ActiveSession("s", "e", NOW, NOW + timedelta(hours=4), 3.68)
    flat = solve(snapshot(site_of(("e",), demand_charge_per_kw=10.0), (e,), (s,)))
    assert flat.current_a[0, 1:] == pytest.approx([4.0] * 15, abs=0.1 + 1e-9)
    paid = solve(snapshot(site_of(("e",), demand_charge_per_kw=10.0, peak_so_far_kw=2.3), (e,), (s,)))
    assert paid.objective.energy_kwh == pytest.approx(3.68)
    assert paid.current_a[0, :6] == pytest.approx([10.0] * 6, abs=1e-6)
    assert paid.current_a[0, 6:10] == pytest.approx([1.0] * 4, abs=0.1 + 1e-9)
    assert paid.current_a[0, 10:].sum() == pytest.approx(0.0, abs=0.1 + 1e-9)
    # a peak so far above anything the car can draw: full rate from the start (32 A = 7.36 kW,
    # 3.68 kWh in half an hour: periods 0 and 1)
    high = solve(snapshot(site_of(("e",), demand_charge_per_kw=10.0, peak_so_far_kw=50.0), (e,), (s,)))
    assert high.current_a[0, :2] == pytest.approx([32.0, 32.0], abs=1e-6)
    assert high.current_a[0, 2:].sum() == pytest.approx(0.0, abs=0.1 + 1e-9)


@pytest.mark.parametrize("peak_kw", [-1.0, math.nan, math.inf])
def test_a_peak_so_far_must_be_a_finite_number_not_below_zero(peak_kw: float) -> None:
    e = evse("e")
    site = site_of(("e",), peak_so_far_kw=peak_kw)
    with pytest.raises(SnapshotError, match="peak_so_far_kw"):
        solve(snapshot(site, (e,), (session("s", "e", 1.0, 1.0),)))


def test_a_car_limit_between_steps_is_offered_the_step_above() -> None:
    # The car takes at most 31.73 A (6.6 kW at 208 V); steps of 0.1 A: the pilot is 31.8 A, never 31.7 A.
    e = Evse("e", Connection.L1_L2, 208.0, 32.0, step=0.1)
    s = ActiveSession("s", "e", NOW, NOW + timedelta(hours=1), 50.0, vehicle_max_current_a=6.6 / 0.208)
    result = solve(snapshot(site_of(("e",)), (e,), (s,)))
    assert result.current_a[0, 0] == pytest.approx(31.8)


def test_offline_bound_serves_visits_one_after_another_on_one_evse() -> None:
    # EVSE a: car 1 from 08:00 to 09:00, car 2 from 09:00 to 10:00, 3.68 kWh each at 16 A.
    e = evse("a", max_current_a=16.0)
    s1 = ActiveSession("s1", "a", NOW, NOW + timedelta(hours=1), 3.68)
    s2 = ActiveSession("s2", "a", NOW + timedelta(hours=1), NOW + timedelta(hours=2), 3.68)
    result = solve_offline(site_of(("a",), limit_a=16.0), (e,), (s1, s2), NOW, 8, POLICY)
    assert result.objective.energy_kwh == pytest.approx(7.36)
    assert result.current_a[0, 4:].sum() == 0.0
    assert result.current_a[1, :4].sum() == 0.0
    clash = ActiveSession("s3", "a", NOW + timedelta(minutes=30), NOW + timedelta(hours=2), 1.0)
    with pytest.raises(SnapshotError, match="overlap on EVSE a"):
        solve_offline(site_of(("a",)), (e,), (s1, clash), NOW, 8, POLICY)


def test_stability_keeps_the_profile_the_charger_holds_period_by_period() -> None:
    # The charger holds 10 A, 20 A, 10 A (2.3 kWh in three 15-minute periods at 230 V); any plan
    # serving 3.45 kWh in 4 h is as good, so the first periods follow what it holds.
    e = evse("e", max_current_a=32.0)
    s = ActiveSession("s", "e", NOW, NOW + timedelta(hours=4), 3.45, held_current_a=(10.0, 20.0, 10.0))
    result = solve(snapshot(site_of(("e",), limit_a=32.0), (e,), (s,), objective=("energy", "cost")))
    assert result.current_a[0, :3] == pytest.approx([10.0, 20.0, 10.0])
    assert result.objective.energy_kwh == pytest.approx(3.45)


def test_minimum_currents_switch_cars_on_rather_than_round_them_off() -> None:
    # 20 A for four cars with a 6 A minimum, all needing far more than they can get: an even
    # LP split (5 A each) would round every car off; three can run at >= 6 A (3 x 6 <= 20).
    es = tuple(evse(name, min_current_a=6.0, step=1.0) for name in "abcd")
    sessions = tuple(session(f"s{k}", name, 2.0, 40.0) for k, name in enumerate("abcd"))
    result = solve(snapshot(site_of(tuple("abcd"), limit_a=20.0), es, sessions))
    first = result.current_a[:, 0]
    on = first[first > 0]
    assert on.size == 3
    assert np.all(on >= 6.0)
    assert first.sum() == pytest.approx(20.0)


def test_a_car_planned_below_its_minimum_later_gets_pulses_not_nothing() -> None:
    # One car, three-phase 16 A (0.69 kW per A), 6 A minimum, 4 h, 14 kWh: 81.16 A-periods of
    # 15 minutes. The LP spreads it evenly at 5.07 A, which rounds to 0 in every period. The first
    # hour (the exact periods) makes up its own loss, 4 x 5.07 = 20.29 A-periods: 16 A now, the
    # 4.29 left at the minimum, 6 A, next. The 59.16 A-periods still short go out later as ten
    # 15-minute pulses at 6 A, so the plan (and a profile a charger holds when it loses us)
    # does not stop the car.
    es = (evse("a", Connection.THREE_PHASE, max_current_a=16.0, min_current_a=6.0, step=1.0),)
    result = solve(snapshot(site_of(("a",)), es, (session("s1", "a", 4.0, 14.0),)))
    row = result.current_a[0]
    assert list(row[:4]) == [16.0, 6.0, 0.0, 0.0]
    later = row[4:]
    assert sorted(set(later.tolist())) == [0.0, 6.0]
    assert int((later == 6.0).sum()) == 10
    assert result.objective.energy_kwh == pytest.approx(14.0)


def test_pulses_never_break_a_limit_the_rounding_kept() -> None:
    from optimizer import minimum
    from optimizer.problem import prepare

    # two cars on a 10 A line, each planned at 5 A (in between: 6 A minimum) in periods 4..: both
    # pulsed at 6 A in one period would need 12 A, so where both would be on, only one is (the
    # first of equal laxity)
    es = tuple(evse(name, min_current_a=6.0, step=1.0) for name in "ab")
    sessions = (session("s1", "a", 4.0, 40.0), session("s2", "b", 4.0, 40.0))
    problem = prepare(snapshot(site_of(("a", "b"), limit_a=10.0), es, sessions))
    planned = np.full((2, problem.periods), 5.0)
    out = np.zeros_like(planned)
    later_kwh = 12 * 5.0 * problem.kw_per_a * problem.period_h  # what the plan holds for periods 4..15
    pulsed = minimum.pulse_later(problem, planned, out, later_kwh, first=4)
    assert np.all(pulsed[:, :4] == 0.0)  # the exact periods are the top-up's
    assert np.all((pulsed == 0.0) | (pulsed == 6.0))
    assert np.all(pulsed.sum(axis=0) <= 10.0)
    # 5 A of a 6 A minimum: on in 5 of every 6 later periods (10 of 12); both cars pulse in the same
    # periods, where a (the first of equal laxity) keeps its pulse and b gives way
    assert int((pulsed[0, 4:] == 6.0).sum()) == 10
    assert np.all(pulsed[1] == 0.0)
    # short of more than the plan's pulses give (40 kWh: what the exact periods could not take),
    # a car pulses in more of the periods, at most all 12: here a takes every one of them
    more = minimum.pulse_later(problem, planned, out, np.array([40.0, 40.0]), first=4)
    assert np.all(more[0, 4:] == 6.0)
    assert np.all(more.sum(axis=0) <= 10.0)


def test_the_minimum_current_program_only_runs_where_a_car_sits_below_its_minimum() -> None:
    from optimizer import minimum
    from optimizer.problem import prepare

    es = tuple(evse(name, min_current_a=6.0) for name in "ab")
    sessions = (session("s1", "a", 2.0, 40.0), session("s2", "b", 2.0, 40.0))
    problem = prepare(snapshot(site_of(("a", "b"), limit_a=20.0), es, sessions))
    plain = np.array([[10.0], [10.0]])
    assert minimum.switch_on(problem, plain, 0) is None  # nobody in between: no MIP
    between = np.array([[17.0], [3.0]])
    switched = minimum.switch_on(problem, between, 0)
    assert switched is not None
    assert switched[1] >= 6.0  # switched on at its minimum ...
    assert switched.sum() <= 20.0 + 1e-6  # ... with the other giving way
    assert switched[0] >= 6.0


def test_the_pilot_that_finishes_a_need_rounds_up_to_the_step() -> None:
    # 15 minutes left, 0.5 kWh to go at 230 V: 8.696 A. Rounded down to the 1 A step (8 A) the car
    # would leave 40 Wh short; the last pilot goes up to 9 A instead (the car stops when full).
    e = evse("e1", max_current_a=16.0, step=1.0)
    result = solve(snapshot(site_of(("e1",)), (e,), (session("s1", "e1", 0.25, 0.5),)))
    assert result.current_a[0, 0] == pytest.approx(9.0)
    assert used_kwh(result.current_a, 0.23, 900) >= 0.5


def test_rounding_up_to_finish_a_need_stays_within_the_limit() -> None:
    # the same two cars under a 17 A feeder: 9 A each would break it, so one gets 8 A
    evses = (evse("e1", max_current_a=16.0, step=1.0), evse("e2", max_current_a=16.0, step=1.0))
    sessions = (session("s1", "e1", 0.25, 0.5), session("s2", "e2", 0.25, 0.5))
    result = solve(snapshot(site_of(("e1", "e2"), limit_a=17.0), evses, sessions))
    assert sorted(result.current_a[:, 0]) == pytest.approx([8.0, 9.0])


def test_the_last_stage_prefers_earlier_energy_by_more_than_highs_can_ignore() -> None:
    # The tie-break for earlier energy must weigh more than HiGHS's dual feasibility tolerance even
    # for the smallest energy per A and period we plan (1-minute periods, 110 V, one phase); at
    # 1e-6 per kWh it sat below it and broke ties only by chance.
    import highspy

    from optimizer.lp import _EARLY_TIE_BREAK

    smallest_kwh_per_a = 110.0 / 1000.0 * 60.0 / 3600.0
    _, tolerance = highspy.Highs().getOptionValue("dual_feasibility_tolerance")  # type: ignore[no-untyped-call]
    assert isinstance(tolerance, float)
    assert _EARLY_TIE_BREAK * smallest_kwh_per_a > tolerance


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"energy_needed_kwh": math.nan}, "energy_needed_kwh must be a finite number >= 0, got nan"),
        ({"energy_needed_kwh": -3.0}, "energy_needed_kwh must be a finite number >= 0, got -3.0"),
        ({"energy_delivered_kwh": math.inf}, "energy_delivered_kwh must be a finite number >= 0"),
        ({"vehicle_max_current_a": math.nan}, "vehicle_max_current_a must be a finite number >= 0"),
        ({"priority": math.nan}, "priority must be a finite number >= 0"),
        ({"arrival": NOW.replace(tzinfo=None)}, "arrival .* is naive"),
        ({"departure": (NOW + timedelta(hours=2)).replace(tzinfo=None)}, "departure .* is naive"),
    ],
)
def test_a_session_with_a_number_or_time_that_makes_no_sense_is_a_clear_error(
    change: dict[str, object], message: str
) -> None:
    # Before, a NaN need gave a schedule of nothing and a negative one an infeasible LP (fallback).
    bad = replace(session("s1", "e1", 2.0, 5.0), **change)  # type: ignore[arg-type]
    with pytest.raises(SnapshotError, match=message):
        solve(snapshot(site_of(("e1",)), (evse("e1"),), (bad,)))


def test_a_site_limit_or_clock_that_makes_no_sense_is_a_clear_error() -> None:
    sessions = (session("s1", "e1", 2.0, 5.0),)
    with pytest.raises(SnapshotError, match=r"grid_limit_kw must be a finite number >= 0, got -5\.0"):
        solve(snapshot(site_of(("e1",), grid_kw=-5.0), (evse("e1"),), sessions))
    naive = StationSnapshot("st", NOW.replace(tzinfo=None), site_of(("e1",)), (evse("e1"),), sessions, POLICY)
    with pytest.raises(SnapshotError, match=r"now .* is naive"):
        solve(naive)


def test_an_evse_under_two_nodes_is_named() -> None:
    tree = FeederNode("main", evse_ids=("e1",), children=(FeederNode("sub", limit_a=10.0, evse_ids=("e1",)),))
    with pytest.raises(NetworkError, match=r"under two nodes \['e1'\]"):
        Network.build(Site(grid_limit_kw=100.0, root=tree), (evse("e1"),))
