"""External charging limits (NotifyChargingLimit) in the plan: small hand-checked cases, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from csms.domain.events import ChargingLimitCleared, ChargingLimitSet, LimitPeriod, LimitSchedule
from csms.smart_charging import EvseBinding, SmartChargingSettings, StationSetup, StationState
from csms.smart_charging.external import SharedLimit, constrain
from optimizer import solve
from optimizer.triggers import TriggerKind
from optimizer.types import Connection, Evse, EvseCap, FeederNode, Policy, Site

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def evse(evse_id: str) -> Evse:
    return Evse(evse_id, Connection.THREE_PHASE, 230.0, 32.0, 6.0)  # 0.69 kW per A


X1, X2, Y1 = evse("X1"), evse("X2"), evse("Y1")
SETUP = StationSetup(
    "ST",
    Site(
        grid_limit_kw=200.0,
        root=FeederNode(
            "main", limit_a=96.0, evse_ids=("X1", "X2"), children=(FeederNode("sub", evse_ids=("Y1",)),)
        ),
    ),
    (EvseBinding(X1, "CP-X", 1), EvseBinding(X2, "CP-X", 2), EvseBinding(Y1, "CP-Y", 1)),
    Policy(period_s=300, horizon_periods=12, default_energy_kwh=200.0),  # cars that want all they can get
)


def amperes(*steps: tuple[timedelta, float], end: timedelta | None = None) -> LimitSchedule:
    return LimitSchedule(
        1, "A", tuple(LimitPeriod(T0 + at, limit) for at, limit in steps), None if end is None else T0 + end
    )


def limit(charger_id: str, evse_id: int, schedule: LimitSchedule, source: str = "EMS") -> ChargingLimitSet:
    return ChargingLimitSet(charger_id, evse_id, source, None, (schedule,), T0)


def station() -> StationState:
    state = StationState.of(SETUP, SmartChargingSettings())
    for evse_id in ("X1", "X2", "Y1"):
        state.session_started(evse_id, f"tx-{evse_id}", T0, 0.0)
    return state


def test_a_schedule_says_its_limit_at_a_moment_and_its_lowest_over_a_window() -> None:
    schedule = amperes((timedelta(0), 16.0), (HOUR, 8.0), end=2 * HOUR)
    assert [schedule.limit_at(T0 + at) for at in (-HOUR, timedelta(0), 1.5 * HOUR, 2 * HOUR)] == [
        None,
        16.0,
        8.0,
        None,
    ]
    assert schedule.lowest_between(T0, T0 + HOUR) == 16.0  # the 8 A period starts as the window ends
    assert schedule.lowest_between(T0 + 0.9 * HOUR, T0 + 1.1 * HOUR) == 8.0
    assert schedule.lowest_between(T0 + 2 * HOUR, T0 + 3 * HOUR) is None  # over
    assert schedule.lowest_between(T0 - HOUR, T0) is None  # not begun
    ends_early = amperes((timedelta(0), 16.0), (HOUR, 8.0), end=HOUR / 2)
    assert ends_early.lowest_between(T0, T0 + 3 * HOUR) == 16.0  # it ends before its 8 A period


def test_a_limit_on_one_evse_caps_it_while_each_of_its_periods_lasts() -> None:
    state = station()
    trigger = state.charging_limit(limit("CP-X", 1, amperes((timedelta(0), 20.0), (HOUR / 2, 12.0))))
    assert trigger is not None
    assert trigger.kind is TriggerKind.NEED_CHANGED
    snapshot = state.snapshot(T0)
    assert [e.max_current_a for e in snapshot.evses] == [32.0, 32.0, 32.0]  # the EVSEs stay as they are
    assert snapshot.site.evse_caps == (
        EvseCap("X1", T0, T0 + HOUR / 2, 20.0),
        EvseCap("X1", T0 + HOUR / 2, None, 12.0),
    )
    assert state.evses["X1"].limit_in_force_a(T0) == 20.0  # now; the charger's default would be 32 A
    assert state.evses["X1"].limit_in_force_a(T0 + HOUR) == 12.0
    schedule = solve(snapshot)
    x1 = schedule.row("X1")  # 5-minute periods: the first six under 20 A, the other six under 12 A
    assert x1[:6] == pytest.approx([20.0] * 6)  # held at 20 A only while the 20 A lasts
    assert x1[6:] == pytest.approx([12.0] * 6)
    assert float(np.max(schedule.row("X2"))) == pytest.approx(32.0)

    # an unrelated charger's limit, or clearing one never set, changes nothing
    assert state.charging_limit(limit("CP-Z", 0, amperes((timedelta(0), 1.0)))) is None
    assert state.charging_limit(ChargingLimitCleared("CP-X", 1, "SO", T0)) is None
    assert state.charging_limit(ChargingLimitCleared("CP-X", 1, "EMS", T0)) is not None
    assert state.snapshot(T0).site.evse_caps == ()
    assert state.evses["X1"].limit_in_force_a(T0) == 32.0


def test_a_schedule_that_ends_caps_only_until_its_end() -> None:
    state = station()
    state.charging_limit(limit("CP-X", 1, amperes((timedelta(0), 8.0), (HOUR, 4.0), end=HOUR / 4)))
    assert state.snapshot(T0).site.evse_caps == (EvseCap("X1", T0, T0 + HOUR / 4, 8.0),)  # 4 A never begins
    x1 = solve(state.snapshot(T0)).row("X1")
    assert x1[:3] == pytest.approx([8.0] * 3)
    assert x1[3:] == pytest.approx([32.0] * 9)


def test_a_limit_in_watts_on_a_charger_with_one_evse_caps_that_evse() -> None:
    state = station()
    watts = LimitSchedule(2, "W", (LimitPeriod(T0, 6900.0),))  # 6,900 W at 0.69 kW per A: 10 A
    state.charging_limit(ChargingLimitSet("CP-Y", 0, "SO", True, (watts,), T0))
    [cap] = state.snapshot(T0).site.evse_caps
    assert cap.evse_id == "Y1"
    assert cap.max_current_a == pytest.approx(10.0)
    assert state.evses["Y1"].limit_in_force_a(T0) == pytest.approx(10.0)
    # a second source on the same EVSE: both are caps, and the lower of the two counts
    state.charging_limit(limit("CP-Y", 1, amperes((timedelta(0), 8.0))))
    assert len(state.snapshot(T0).site.evse_caps) == 2
    assert float(np.max(solve(state.snapshot(T0)).row("Y1"))) == pytest.approx(8.0)


def test_a_limit_on_a_charger_with_several_evses_limits_their_total() -> None:
    state = station()
    state.charging_limit(limit("CP-X", 0, amperes((timedelta(0), 20.0))))  # K12.FR.01: the total
    snapshot = state.snapshot(T0)
    assert [e.max_current_a for e in snapshot.evses] == [32.0, 32.0, 32.0]
    root = snapshot.site.root
    assert root.evse_ids == ()
    group = root.children[-1]
    assert (group.node_id, group.evse_ids, group.limit_a) == ("external:CP-X", ("X1", "X2"), 20.0)
    schedule = solve(snapshot)
    total_a = schedule.row("X1") + schedule.row("X2")
    assert float(np.max(total_a)) <= 20.0 + 1e-6
    assert float(np.max(schedule.row("Y1"))) == pytest.approx(32.0)

    # an EVSE of that charger planned at its maximum (refusing profiles) leaves the other nothing
    assert state.give_up("X2", "tx-X2")
    group = state.snapshot(T0).site.root.children[-1]
    assert group.evse_ids == ("X1",)
    assert group.limit_a == pytest.approx(1e-6)


def test_a_shared_limit_over_evses_under_different_nodes_is_split_evenly() -> None:
    a1, a2 = evse("A1"), evse("A2")
    site = Site(100.0, FeederNode("main", evse_ids=("A1",), children=(FeederNode("sub", evse_ids=("A2",)),)))
    shared = [SharedLimit("CP-A", ("A1", "A2"), 20.0, None)]
    constrained, evses = constrain(site, (a1, a2), (), shared, {})
    assert constrained is site
    assert [e.max_current_a for e in evses] == [10.0, 10.0]
    in_kw = [SharedLimit("CP-A", ("A1", "A2"), None, 6.9)]  # 3.45 kW each: 5 A
    own = EvseCap("A1", T0, None, 4.0)
    constrained, evses = constrain(site, (a1, a2), (own,), in_kw, {})
    assert [e.max_current_a for e in evses] == pytest.approx([5.0, 5.0])
    assert constrained.evse_caps == (own,)  # A1's own limit stays a cap beside its share
