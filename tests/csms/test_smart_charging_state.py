"""The smart-charging loop's pure parts: events -> station state -> snapshot, the changed-profiles rule,
drawing checks and the site left when EVSEs are planned around (hand-checked small cases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from csms.commands import ChargingProfile
from csms.domain.events import ChargingNeeds, ConnectorStatus, MeterSample
from csms.errors import SettingsError
from csms.protocol.versions import OcppVersion
from csms.smart_charging import EvseBinding, SmartChargingSettings, StationSetup, StationState
from csms.smart_charging.reserve import reserve
from optimizer.triggers import TriggerKind
from optimizer.types import (
    CapWindow,
    Connection,
    Evse,
    FeederNode,
    ObjectiveBreakdown,
    Policy,
    RateUnit,
    Schedule,
    Site,
    SolveStatus,
)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
A = Evse("A", Connection.THREE_PHASE, 230.0, 16.0, 6.0)
B = Evse("B", Connection.THREE_PHASE, 230.0, 16.0, 6.0, rate_unit=RateUnit.WATT, step=100.0)
C = Evse("C", Connection.L1, 230.0, 32.0)
SITE = Site(
    grid_limit_kw=22.0,
    root=FeederNode(
        "main",
        limit_a=32.0,
        evse_ids=("A",),
        children=(FeederNode("sub", limit_kw=9.0, evse_ids=("B", "C")),),
    ),
)
SETUP = StationSetup(
    "ST",
    SITE,
    (EvseBinding(A, "CP-A"), EvseBinding(B, "CP-B"), EvseBinding(C, "CP-C", 2)),
    Policy(period_s=300, horizon_periods=12),
)
SETTINGS = SmartChargingSettings(compare_periods=3, apply_grace_s=10.0)


def state() -> StationState:
    return StationState.of(SETUP, SETTINGS)


def schedule(rows: dict[str, list[float]], start: datetime = T0) -> Schedule:
    ids = tuple(rows)
    current = np.array([rows[e] for e in ids], dtype=np.float64)
    return Schedule(
        station_id="ST",
        start=start,
        period_s=300,
        evse_ids=ids,
        session_ids=tuple(f"tx-{e}" for e in ids),
        current_a=current,
        power_kw=current * 0.69,
        status=SolveStatus.OPTIMAL,
        objective=ObjectiveBreakdown(0.0, 0.0, 0.0, 0.0, 1.0),
        solve_time_s=0.0,
    )


def sample(evse_id: int, measurand: str, value: float, at: datetime, phase: str | None = None) -> MeterSample:
    return MeterSample("CP", evse_id, None, at, measurand, value, "A", phase, None, "Sample.Periodic")


def test_setup_refuses_a_connector_used_twice_or_a_tree_that_does_not_match() -> None:
    with pytest.raises(SettingsError):
        StationSetup("ST", SITE, (EvseBinding(A, "CP"), EvseBinding(B, "CP"), EvseBinding(C, "CP-C")))
    with pytest.raises(Exception, match="limit tree"):
        StationSetup("ST", SITE, (EvseBinding(A, "CP-A"),))


def test_reserve_takes_the_current_off_every_limit_above_the_evse() -> None:
    cap = CapWindow(T0, T0 + timedelta(hours=1), fraction=0.5)
    site = Site(grid_limit_kw=22.0, root=SITE.root, caps=(cap,))
    reduced, evses = reserve(site, [A, B, C], {"B": 10.0})
    assert [e.evse_id for e in evses] == ["A", "C"]
    assert reduced.grid_limit_kw == pytest.approx(22.0 - 6.9)  # 10 A x 3 x 230 V
    assert reduced.caps[0].limit_kw == pytest.approx(11.0 - 6.9)  # the fraction became absolute
    assert reduced.root.limit_a == pytest.approx(32.0 - 10.0)
    sub = reduced.root.children[0]
    assert sub.limit_kw == pytest.approx(9.0 - 6.9)
    assert sub.evse_ids == ("C",)
    assert reserve(site, [A, B, C], {}) == (site, (A, B, C))


def test_events_become_the_solver_snapshot() -> None:
    st = state()
    started = st.session_started("A", "tx-A", T0, 1000.0)
    assert started is not None
    assert started.kind is TriggerKind.SESSION_STARTED
    assert st.session_started("A", "tx-A", T0, 1000.0) is None  # a replay changes nothing
    st.session_started("C", "tx-C", T0 + timedelta(minutes=5), None)
    st.evses["A"].failsafe_a = 8.0
    assert st.meter_sample("A", sample(1, "Energy.Active.Import.Register", 3500.0, T0)) is None
    first = sample(2, "Energy.Active.Import.Register", 200.0, T0)
    st.meter_sample("C", first)  # no meter start: the first register reading is the start
    st.meter_sample("C", sample(2, "Energy.Active.Import.Register", 1200.0, T0 + timedelta(minutes=1)))
    needs = ChargingNeeds("CP-A", 1, "AC_three_phase", 30_000.0, T0 + timedelta(hours=3), 13.0, None, T0)
    trigger = st.charging_needs("A", needs)
    assert trigger is not None
    assert trigger.kind is TriggerKind.NEED_CHANGED

    snap = st.snapshot(T0 + timedelta(minutes=10))
    assert snap.station_id == "ST"
    assert snap.site is SITE
    by_evse = {s.evse_id: s for s in snap.sessions}
    a, c = by_evse["A"], by_evse["C"]
    assert (a.session_id, a.arrival, a.departure) == ("tx-A", T0, T0 + timedelta(hours=3))
    assert a.energy_delivered_kwh == pytest.approx(2.5)
    assert a.energy_needed_kwh == pytest.approx(32.5)  # delivered when asked + what it asked for
    assert a.vehicle_max_current_a == 13.0
    assert a.offered_current_a == 8.0  # no Tx profile yet: the failsafe is in force
    assert c.energy_delivered_kwh == pytest.approx(1.0)
    assert (c.energy_needed_kwh, c.departure, c.offered_current_a) == (None, None, 32.0)

    ended = st.session_ended("tx-A", T0 + timedelta(hours=1))
    assert ended is not None
    assert ended.kind is TriggerKind.SESSION_ENDED
    assert [s.evse_id for s in st.snapshot(T0).sessions] == ["C"]
    assert st.session_ended("tx-A", T0) is None


def test_only_changed_near_limits_need_a_new_profile() -> None:
    st = state()
    st.session_started("A", "tx-A", T0, 0.0)
    st.session_started("B", "tx-B", T0, 0.0)
    plan = schedule({"A": [10.0, 10.0, 8.0, 8.0, 6.0, 6.0], "B": [16.0] * 6})
    assert st.needs_profile("A", plan)  # holds nothing for its session yet
    st.hold("A", plan, "tx-A", T0)
    st.hold("B", plan, "tx-B", T0)
    assert not st.needs_profile("A", plan)
    assert st.evses["B"].limit_in_force_a(T0) == pytest.approx(11000.0 / 690.0)  # 100 W steps, read as A

    later = schedule({"A": [10.0, 10.0, 8.0, 16.0, 16.0, 16.0], "B": [16.0] * 6})
    assert not st.needs_profile("A", later)  # only beyond the first three periods
    sooner = schedule({"A": [10.0, 9.0, 8.0, 8.0, 6.0, 6.0], "B": [16.0] * 6})
    assert st.needs_profile("A", sooner)
    noise = schedule({"A": [10.04, 10.0, 8.0, 8.0, 6.0, 6.0], "B": [16.0] * 6})
    assert not st.needs_profile("A", noise)  # the same on the wire
    shifted = schedule({"A": [10.0, 8.0, 8.0, 6.0, 6.0, 6.0], "B": [16.0] * 6}, T0 + timedelta(minutes=5))
    assert not st.needs_profile("A", shifted)  # the same limits at the same instants
    running_out = schedule({"A": [10.0] * 3, "B": [16.0] * 3}, T0 + timedelta(minutes=20))
    assert st.needs_profile("A", running_out)  # what it holds ends inside the window

    st.session_ended("tx-A", T0)
    st.session_started("A", "tx-A2", T0, 0.0)
    assert st.needs_profile("A", plan)  # a new transaction needs its own profile


def test_a_refusing_evse_is_planned_at_its_maximum() -> None:
    st = state()
    st.session_started("A", "tx-A", T0, 0.0)
    st.session_started("C", "tx-C", T0, 0.0)
    assert st.give_up("A", "tx-A")
    assert not st.give_up("A", "tx-A")
    assert not st.give_up("C", "tx-other")
    assert st.reserved_a() == {"A": 16.0}
    snap = st.snapshot(T0)
    assert [s.evse_id for s in snap.sessions] == ["C"]
    assert [e.evse_id for e in snap.evses] == ["B", "C"]
    assert snap.site.root.limit_a == pytest.approx(16.0)
    assert not st.needs_profile("A", schedule({"A": [6.0] * 3}))


def test_over_drawing_is_planned_around_until_back_within_the_limit() -> None:
    st = state()
    st.session_started("A", "tx-A", T0, 0.0)
    st.hold("A", schedule({"A": [10.0] * 6}), "tx-A", T0)
    at = T0 + timedelta(seconds=30)  # past the grace
    assert st.meter_sample("A", sample(1, "Current.Import", 10.5, at, "L1")) is None
    over = st.meter_sample("A", sample(1, "Current.Import", 14.0, at, "L2"))  # the highest phase counts
    assert over is not None
    assert over.kind is TriggerKind.OVER_DRAWING
    assert st.meter_sample("A", sample(1, "Current.Import", 14.5, at, "L3")) is None  # same episode
    assert st.reserved_a() == {"A": 14.5}
    assert [e.evse_id for e in st.snapshot(at).evses] == ["B", "C"]
    back = st.meter_sample("A", sample(1, "Current.Import", 10.0, at + timedelta(minutes=1)))
    assert back is not None
    assert back.kind is TriggerKind.UNDER_DRAWING
    assert st.reserved_a() == {}


def test_a_lower_limit_is_given_time_to_apply_before_it_counts_as_over_drawing() -> None:
    st = state()
    st.session_started("A", "tx-A", T0, 0.0)
    st.hold("A", schedule({"A": [16.0] * 6}), "tx-A", T0)
    st.hold("A", schedule({"A": [8.0] * 6}), "tx-A", T0)
    assert st.meter_sample("A", sample(1, "Current.Import", 15.5, T0 + timedelta(seconds=5))) is None
    late = st.meter_sample("A", sample(1, "Current.Import", 15.5, T0 + timedelta(seconds=20)))
    assert late is not None
    assert late.kind is TriggerKind.OVER_DRAWING


def test_a_car_drawing_clearly_less_than_offered_teaches_its_limit() -> None:
    st = state()
    st.session_started("A", "tx-A", T0, 0.0)
    st.evses["A"].failsafe_a = 16.0
    under = st.meter_sample("A", sample(1, "Current.Import", 9.93, T0))
    assert under is not None
    assert under.kind is TriggerKind.UNDER_DRAWING
    assert st.snapshot(T0).sessions[0].vehicle_max_current_a == pytest.approx(10.0)
    assert st.meter_sample("A", sample(1, "Current.Import", 10.0, T0 + timedelta(minutes=1))) is None
    assert st.meter_sample("A", sample(1, "Current.Import", 2.0, T0 + timedelta(minutes=2))) is not None
    assert st.snapshot(T0).sessions[0].vehicle_max_current_a == pytest.approx(6.0)  # not below the minimum
    power = MeterSample("CP", 1, None, T0, "Power.Active.Import", 11040.0, "W", None, None, None)
    st.session_started("B", "tx-B", T0, 0.0)
    st.evses["B"].failsafe_a = 16.0
    assert st.meter_sample("B", power) is None  # 16 A from 11040 W: within its limit
    assert st.evses["B"].session is not None
    assert st.evses["B"].session.measured_a == pytest.approx(16.0)


def test_tx_profiles_have_the_forms_their_transaction_id_allows() -> None:
    plan = schedule({"A": [10.0] * 3})
    v16_id = ChargingProfile.tx(plan, A, transaction_id="42", profile_id=1001)
    assert v16_id.for_version(OcppVersion.V16) is not None
    v201 = v16_id.for_version(OcppVersion.V201)
    assert v201 is not None
    assert v201["transactionId"] == "42"
    uuid_id = ChargingProfile.tx(plan, A, transaction_id="7c9e-TX", profile_id=1001)
    assert uuid_id.for_version(OcppVersion.V16) is None
    assert uuid_id.for_version(OcppVersion.V201) is not None


def test_needs_told_before_the_transaction_started_are_kept_for_it() -> None:
    st = state()
    needs = ChargingNeeds("CP-A", 1, "AC_three_phase", 12_000.0, T0 + timedelta(hours=2), None, None, T0)
    assert st.charging_needs("A", needs) is None
    st.session_started("A", "tx-A", T0, 0.0)
    session = st.snapshot(T0).sessions[0]
    assert (session.energy_needed_kwh, session.departure) == (12.0, T0 + timedelta(hours=2))
    st.session_ended("tx-A", T0)
    st.session_started("A", "tx-A2", T0, 0.0)
    assert st.snapshot(T0).sessions[0].energy_needed_kwh is None  # not carried to the next car


def test_an_available_connector_ends_a_session_whose_end_was_missed() -> None:
    st = state()
    st.session_started("A", "tx-A", T0, 0.0)
    assert st.connector_status("A", ConnectorStatus.OCCUPIED, T0) is None
    ended = st.connector_status("A", ConnectorStatus.AVAILABLE, T0)
    assert ended is not None
    assert ended.kind is TriggerKind.SESSION_ENDED
    assert st.snapshot(T0).sessions == ()
    assert st.session_ended("tx-A", T0) is None  # the late TransactionEnded changes nothing


def test_a_late_reading_of_the_previous_transaction_is_ignored() -> None:
    st = state()
    st.session_started("A", "tx-new", T0, 0.0)
    late = MeterSample(
        "CP-A", 1, "tx-old", T0, "Energy.Active.Import.Register", 9000.0, "Wh", None, None, None
    )
    st.meter_sample("A", late)
    assert st.snapshot(T0).sessions[0].energy_delivered_kwh == 0.0


def test_the_month_peak_of_measured_import_reaches_the_solver() -> None:
    # A is three-phase at 230 V (0.69 kW per A), C single-phase (0.23 kW per A). A at 16 A and
    # C at 32 A sampled within one 5-minute period: 11.04 + 7.36 = 18.4 kW, March's peak.
    st = state()
    st.session_started("A", "tx-A", T0, 0.0)
    st.session_started("C", "tx-C", T0, 0.0)
    st.meter_sample("A", sample(1, "Current.Import", 16.0, T0))
    st.meter_sample("C", sample(2, "Current.Import", 32.0, T0 + timedelta(seconds=10)))
    assert st.snapshot(T0 + timedelta(minutes=1)).site.peak_so_far_kw == pytest.approx(18.4)
    # A falls to 6 A six minutes later; C's reading is older than a period, so it is not added:
    # 4.14 kW now, and the month keeps 18.4 kW
    st.meter_sample("A", sample(1, "Current.Import", 6.0, T0 + timedelta(minutes=6)))
    assert st.peak_so_far_kw == pytest.approx(18.4)
    # April starts a new billing period: no peak until a reading comes, then A's 10 A = 6.9 kW
    april = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    assert st.snapshot(april).site.peak_so_far_kw == 0.0
    st.meter_sample("A", sample(1, "Current.Import", 10.0, april))
    assert st.snapshot(april).site.peak_so_far_kw == pytest.approx(6.9)
    assert st.fresh().peak_so_far_kw == pytest.approx(6.9)  # a fresh start keeps the month's peak
