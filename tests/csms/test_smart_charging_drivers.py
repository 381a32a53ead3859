"""Drivers' needs in the plan, pure parts: a tier's priority weight, the default departure (a local
time of day, across daylight-saving changes), and what the snapshot gives the solver once the car
and the driver have spoken (hand-checked small cases)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from csms.domain.events import ChargingNeeds, DriverNeeds, TransactionStarted
from csms.errors import SettingsError
from csms.live_state import InProcessLiveState
from csms.smart_charging import (
    EvseBinding,
    SmartChargingLoop,
    SmartChargingSettings,
    StationSetup,
    StationState,
)
from csms.smart_charging.drivers import SessionPolicy, next_local_time
from csms.tasks import TaskOwner
from optimizer.types import Connection, Evse, FeederNode, Policy, Site
from tests.csms.test_smart_charging_loop import ScriptedSender

BERLIN = ZoneInfo("Europe/Berlin")
TIERS = SessionPolicy((("fleet", 2.0), ("gold", 3.0)), time(17, 30))
A = Evse("A", Connection.THREE_PHASE, 230.0, 16.0, 6.0)
B = Evse("B", Connection.THREE_PHASE, 230.0, 16.0, 6.0)
SETUP = StationSetup(
    "ST",
    Site(grid_limit_kw=22.0, root=FeederNode("main", limit_a=16.0, evse_ids=("A", "B"))),
    (EvseBinding(A, "CP-A"), EvseBinding(B, "CP-B")),
    Policy(period_s=300, horizon_periods=12),
    time_zone=BERLIN,
    session_policy=TIERS,
)


def berlin(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """A Berlin wall-clock time as the UTC instant it is."""
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


# -- tier -> priority ----------------------------------------------------------------------------


def test_a_tier_weighs_what_the_station_says_and_everyone_else_one() -> None:
    assert TIERS.priority("gold") == 3.0
    assert TIERS.priority("fleet") == 2.0
    assert TIERS.priority("bronze") == 1.0  # a tier the station does not name
    assert TIERS.priority(None) == 1.0  # a driver without a tier (or no driver: free vend)
    assert SessionPolicy().priority("gold") == 1.0  # a station without tiers


def test_a_tier_weight_must_be_positive_and_the_departure_local() -> None:
    with pytest.raises(SettingsError, match="gold"):
        SessionPolicy((("gold", 0.0),))
    with pytest.raises(SettingsError):
        SessionPolicy(default_departure=time(17, 30, tzinfo=UTC))


# -- the default departure -----------------------------------------------------------------------


def test_the_default_departure_is_the_next_time_the_local_clock_reads_it() -> None:
    at = time(17, 30)
    assert next_local_time(berlin(2026, 5, 4, 8, 0), at, BERLIN) == datetime(2026, 5, 4, 15, 30, tzinfo=UTC)
    # arriving after it (or exactly at it): the next day's
    assert next_local_time(berlin(2026, 5, 4, 18, 0), at, BERLIN) == datetime(2026, 5, 5, 15, 30, tzinfo=UTC)
    assert next_local_time(berlin(2026, 5, 4, 17, 30), at, BERLIN) == datetime(2026, 5, 5, 15, 30, tzinfo=UTC)
    # in winter Berlin is UTC+1
    assert next_local_time(berlin(2026, 1, 5, 8, 0), at, BERLIN) == datetime(2026, 1, 5, 16, 30, tzinfo=UTC)


def test_the_default_departure_counts_local_days_across_daylight_saving_changes() -> None:
    at = time(17, 30)
    # Saturday 20:00 CET before the spring change: Sunday 17:30 CEST, 21.5 hours on the wall clock
    # but 20.5 real ones (a fixed 21.5 h stay would plan it to leave at 18:30)
    spring = berlin(2026, 3, 28, 20, 0)
    leaves = next_local_time(spring, at, BERLIN)
    assert leaves == datetime(2026, 3, 29, 15, 30, tzinfo=UTC)
    assert leaves - spring == timedelta(hours=20, minutes=30)
    # Saturday 20:00 CEST before the autumn change: Sunday 17:30 CET, 22.5 real hours later
    autumn = berlin(2026, 10, 24, 20, 0)
    leaves = next_local_time(autumn, at, BERLIN)
    assert leaves == datetime(2026, 10, 25, 16, 30, tzinfo=UTC)
    assert leaves - autumn == timedelta(hours=22, minutes=30)


def test_a_default_departure_the_clock_skips_or_repeats_that_night() -> None:
    at = time(2, 30)
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST; "02:30" is 150 minutes after midnight (03:30 CEST)
    skipped = next_local_time(berlin(2026, 3, 28, 22, 0), at, BERLIN)
    assert skipped == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert skipped.astimezone(BERLIN).time() == time(3, 30)
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice, the first counts
    repeated = next_local_time(berlin(2026, 10, 24, 22, 0), at, BERLIN)
    assert repeated == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert repeated.astimezone(BERLIN).utcoffset() == timedelta(hours=2)


def test_without_a_default_departure_the_solver_keeps_its_default_stay() -> None:
    assert SessionPolicy().departure_after(berlin(2026, 5, 4, 8, 0), BERLIN) is None
    assert TIERS.departure_after(berlin(2026, 5, 4, 8, 0), BERLIN) == datetime(2026, 5, 4, 15, 30, tzinfo=UTC)


# -- the snapshot ----------------------------------------------------------------------------------


def test_the_snapshot_plans_with_the_drivers_word_over_the_cars_and_the_stations_defaults() -> None:
    state = StationState.of(SETUP, SmartChargingSettings())
    arrival = berlin(2026, 3, 28, 20, 0)
    state.session_started("A", "tx-a", arrival, 0.0)
    state.session_started("B", "tx-b", arrival, 0.0)

    def planned(evse_id: str) -> tuple[datetime | None, float | None, float]:
        session = next(s for s in state.snapshot(arrival).sessions if s.evse_id == evse_id)
        return session.departure, session.energy_needed_kwh, session.priority

    sunday_1730 = datetime(2026, 3, 29, 15, 30, tzinfo=UTC)
    assert planned("A") == (sunday_1730, None, 1.0)  # nobody said: the station's default departure

    car_leaves = arrival + timedelta(hours=3)
    needs = ChargingNeeds("CP-A", 1, "AC_three_phase", 20_000.0, car_leaves, None, None, arrival)
    assert state.charging_needs("A", needs) is not None
    assert planned("A") == (car_leaves, 20.0, 1.0)  # the car's word

    driver_leaves = arrival + timedelta(hours=10)
    trigger = state.driver_needs("tx-a", 35.0, driver_leaves, arrival, priority=3.0)
    assert trigger is not None
    assert trigger.station_id == "ST"
    assert planned("A") == (driver_leaves, 35.0, 3.0)  # the driver's word counts over the car's
    assert planned("B") == (sunday_1730, None, 1.0)  # the other session is untouched

    state.driver_needs("tx-a", None, None, arrival, priority=3.0)  # the driver cleared both
    assert planned("A") == (car_leaves, 20.0, 3.0)
    assert state.driver_needs("tx-unknown", 10.0, None, arrival) is None


@pytest.mark.asyncio
async def test_the_loop_weighs_a_drivers_tier_by_the_stations_policy() -> None:
    tasks = TaskOwner()
    loop = SmartChargingLoop([SETUP], commands=ScriptedSender(), live_state=InProcessLiveState(), tasks=tasks)
    at = berlin(2026, 5, 4, 8, 0)
    await loop.on_event(TransactionStarted("CP-B", 1, 1, "tx-b", None, 0.0, at, "m"))
    leaves = at + timedelta(hours=2)
    await loop.on_event(DriverNeeds("CP-B", 1, "tx-b", 30.0, leaves, "gold", at))
    session = loop.state("ST").evses["B"].session
    assert session is not None
    assert (session.driver_energy_kwh, session.driver_departure, session.priority) == (30.0, leaves, 3.0)
    await loop.on_event(DriverNeeds("CP-B", 1, "tx-b", 30.0, leaves, "bronze", at))  # not a station tier
    assert session.priority == 1.0
    await loop.on_event(DriverNeeds("CP-A", 1, "tx-a", 30.0, leaves, "gold", at))  # no such session: ignored
    assert loop.state("ST").evses["A"].session is None
    assert loop.set_driver_needs("CP-B", "tx-b", 12.0, None, priority=2.0)
    assert (session.driver_energy_kwh, session.driver_departure, session.priority) == (12.0, None, 2.0)
    await tasks.cancel_all()
