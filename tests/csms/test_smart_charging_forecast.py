"""The live loop plans around sessions its station's earlier days saw arrive later in the day.

Pure parts (the station's history and what it expects), the loop against a scripted sender (the
plan leaves room where yesterday's car came, and never sends the expected session's row), and
the seeding of the history from the transactions store on a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from csms.domain.events import RegistrationStatus, TransactionEnded, TransactionStarted
from csms.errors import SettingsError
from csms.live_state import InProcessLiveState
from csms.smart_charging import EvseBinding, SmartChargingLoop, SmartChargingSettings, StationSetup
from csms.smart_charging.forecasting import FinishedSession, StationHistory
from csms.smart_charging.seeding import seed_forecasts
from csms.smart_charging.setup import ForecastSettings
from csms.storage.chargers import ChargerRepository
from csms.storage.database import Database
from csms.storage.transactions import TransactionRepository
from csms.tasks import TaskOwner
from optimizer.forecast import DeclaredArrivals, DeclaredCar, DeclaredSchedule
from optimizer.types import Connection, Evse, FeederNode, Policy, Site
from tests.csms.test_smart_charging_loop import ScriptedSender

A = Evse("A", Connection.THREE_PHASE, 230.0, 16.0)
B = Evse("B", Connection.THREE_PHASE, 230.0, 16.0)
SITE = Site(grid_limit_kw=22.0, root=FeederNode("main", limit_a=16.0, evse_ids=("A", "B")))
TUESDAY_8 = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
MONDAY_8 = TUESDAY_8 - timedelta(days=1)
POLICY = Policy(period_s=300, horizon_periods=48)
# yesterday a car came to B at 09:00, took the whole line (11 kWh) and left at 10:00
YESTERDAY_ON_B = FinishedSession("B", MONDAY_8 + timedelta(hours=1), MONDAY_8 + timedelta(hours=2), 11.0)


def setup(
    forecast: ForecastSettings | None, charger_a: str = "CP-A", charger_b: str = "CP-B"
) -> StationSetup:
    bindings = (EvseBinding(A, charger_a), EvseBinding(B, charger_b))
    return StationSetup("ST", SITE, bindings, POLICY, time_zone=UTC, forecast=forecast)


def history(zone: ZoneInfo | None = None) -> StationHistory:
    return StationHistory(SITE, (A, B), zone or UTC, weight=0.5, days=14)


# -- the history -------------------------------------------------------------------------------


def test_a_finished_session_is_expected_on_the_next_day_of_its_kind_only() -> None:
    h = history()
    h.finished(YESTERDAY_ON_B)
    expected = h.forecast(TUESDAY_8).sessions
    assert len(expected) == 1
    (s,) = expected
    assert s.evse_id == h.group_of["B"] == h.group_of["A"]  # A and B are wired alike: one group
    assert (s.arrival, s.departure) == (TUESDAY_8 + timedelta(hours=1), TUESDAY_8 + timedelta(hours=2))
    assert s.energy_needed_kwh == pytest.approx(11.0)
    assert s.vehicle_max_current_a == pytest.approx(16.0)  # the car's limit unknown: the EVSE's
    assert s.forecast_weight == pytest.approx(0.5)
    assert h.forecast(TUESDAY_8 + timedelta(hours=1, minutes=5)).sessions == ()  # it came before now
    assert (
        h.forecast(datetime(2026, 3, 7, 8, 0, tzinfo=UTC)).sessions == ()
    )  # a Saturday learns from weekends
    assert h.forecast(MONDAY_8).sessions == ()  # never from the same day


def test_the_history_forgets_old_weeks_and_unknown_or_empty_sessions() -> None:
    h = history()
    h.finished(FinishedSession("Z", MONDAY_8, MONDAY_8 + timedelta(hours=1), 5.0))  # not an EVSE here
    h.finished(FinishedSession("A", MONDAY_8, MONDAY_8, 5.0))  # no stay
    h.finished(FinishedSession("A", MONDAY_8, MONDAY_8 + timedelta(hours=1), 0.0))  # took nothing
    assert len(h) == 0
    h.finished(YESTERDAY_ON_B)
    later = MONDAY_8 + h.keep + timedelta(days=2)
    h.finished(FinishedSession("A", later, later + timedelta(hours=1), 5.0))
    assert len(h) == 1  # the first fell out of the window


def test_local_days_decide_what_is_later_today() -> None:
    # 23:30 UTC on Monday is Tuesday 08:30 in Tokyo: a session then is a Tuesday morning's
    tokyo = ZoneInfo("Asia/Tokyo")
    h = history(tokyo)
    h.finished(
        FinishedSession("A", MONDAY_8 + timedelta(hours=15, minutes=30), MONDAY_8 + timedelta(hours=17), 4.0)
    )
    wednesday_7_tokyo = datetime(2026, 3, 4, 7, 0, tzinfo=tokyo)
    (s,) = h.forecast(wednesday_7_tokyo).sessions
    assert s.arrival.astimezone(tokyo).hour == 8


def test_forecast_settings_refuse_weights_that_would_outweigh_real_cars() -> None:
    for weight in (0.0, 1.0, 2.0):
        with pytest.raises(SettingsError):
            ForecastSettings(weight=weight)
    with pytest.raises(SettingsError):
        ForecastSettings(days=0)


# every weekday a car is declared on B from 09:00 to 12:00, asking 5 kWh (yesterday's real car
# on B came at 09:00 and took 11 kWh)
ON_B_AT_9 = DeclaredSchedule(
    (DeclaredArrivals((DeclaredCar("B", 16.0),), frozenset(range(5)), 9 * 60, 9 * 60, 12 * 60, 5.0),),
    frozenset(range(5)),
)


def test_declared_arrivals_stand_in_until_the_station_has_seen_a_day_of_the_kind() -> None:
    loop = SmartChargingLoop(
        [setup(ForecastSettings(expected=ON_B_AT_9))],
        commands=ScriptedSender(),
        live_state=InProcessLiveState(),
        tasks=TaskOwner(),
    )
    state = loop.state("ST")
    history = state.history
    assert history is not None
    # nothing learned yet: the declaration speaks for Tuesday, up to the horizon's end
    assert state.snapshot(TUESDAY_8).forecast_until == TUESDAY_8 + timedelta(hours=4)
    (declared,) = history.forecast(TUESDAY_8, TUESDAY_8 + timedelta(hours=4)).sessions
    assert (declared.arrival, declared.departure) == (
        TUESDAY_8 + timedelta(hours=1),
        TUESDAY_8 + timedelta(hours=4),
    )
    assert (declared.energy_needed_kwh, declared.evse_id) == (5.0, history.group_of["B"])
    # a Saturday is neither declared nor seen: no forecast
    assert state.snapshot(datetime(2026, 3, 7, 8, 0, tzinfo=UTC)).forecast_until is None
    history.finished(YESTERDAY_ON_B)  # a weekday seen: it replaces the declaration
    (learned,) = history.forecast(TUESDAY_8, TUESDAY_8 + timedelta(hours=4)).sessions
    assert (learned.energy_needed_kwh, learned.departure) == (11.0, TUESDAY_8 + timedelta(hours=2))
    history.clear()  # seeding again from the store forgets the sessions, not the declaration
    assert history.forecast(TUESDAY_8).sessions[0].energy_needed_kwh == 5.0


# -- the loop ----------------------------------------------------------------------------------


async def plan_for_a(forecast: ForecastSettings | None) -> tuple[list[float], list[float], tuple[str, ...]]:
    """A car on A at 08:00 Tuesday needing 16.5 kWh by 12:00; Monday's history seen when forecasting.

    Returns the first Tx limit sent to A, A's planned row and the schedule's EVSEs.
    """
    sender = ScriptedSender()
    tasks = TaskOwner()
    settings = SmartChargingSettings(quiet_s=0.0, max_delay_s=0.0, retry_backoff_s=0.0)
    loop = SmartChargingLoop(
        [setup(forecast)],
        commands=sender,
        live_state=InProcessLiveState(),
        tasks=tasks,
        settings=settings,
        clock=lambda: TUESDAY_8,
    )
    # Monday's car on B, finished through the loop as a live session would
    await loop.on_event(TransactionStarted("CP-B", 1, 1, "tx-mon", None, 0.0, YESTERDAY_ON_B.arrival, "m"))
    loop.set_driver_needs("CP-B", "tx-mon", 11.0, YESTERDAY_ON_B.ended)
    await loop.on_event(TransactionEnded("CP-B", "tx-mon", YESTERDAY_ON_B.ended, None, None, None, "m"))
    tasks.start(loop.run(), "smart-charging")
    try:
        await loop.on_event(TransactionStarted("CP-A", 1, 1, "tx-a", None, 0.0, TUESDAY_8, "m"))
        assert loop.set_driver_needs("CP-A", "tx-a", 16.5, TUESDAY_8 + timedelta(hours=4))
        async with asyncio.timeout(60):  # guards against a hang only
            await loop.wait_idle()
        schedule = loop.schedule("ST")
        assert schedule is not None
        sent = [s.limit for s in sender.tx() if s.charger_id == "CP-A"]
        return sent, [float(x) for x in schedule.row("A")], schedule.evse_ids
    finally:
        await tasks.cancel_all()


def test_the_snapshot_says_how_far_the_forecast_reaches() -> None:
    loop = SmartChargingLoop(
        [setup(ForecastSettings())],
        commands=ScriptedSender(),
        live_state=InProcessLiveState(),
        tasks=TaskOwner(),
    )
    state = loop.state("ST")
    assert state.history is not None
    assert state.snapshot(TUESDAY_8).forecast_until is None  # nothing learned: no forecast at all
    state.history.finished(YESTERDAY_ON_B)
    # a weekday known: the forecast reaches the horizon's end (48 periods of 5 minutes)
    assert state.snapshot(TUESDAY_8).forecast_until == TUESDAY_8 + timedelta(hours=4)
    # Friday 22:00: the horizon reaches into Saturday, and no weekend day is known yet
    friday_22 = datetime(2026, 3, 6, 22, 0, tzinfo=UTC)
    assert state.snapshot(friday_22).forecast_until == datetime(2026, 3, 7, tzinfo=UTC)
    assert state.snapshot(TUESDAY_8, forecast=False).forecast_until is None


@pytest.mark.asyncio
async def test_the_loop_leaves_room_where_earlier_days_saw_a_car_and_sends_only_real_rows() -> None:
    sent_blind, row_blind, evses_blind = await plan_for_a(None)
    sent, row, evses = await plan_for_a(ForecastSettings())
    assert evses == evses_blind == ("A",)  # the expected session's row is never in the schedule
    # blind, the plan spreads A's need evenly over its stay; with Monday's 09:00-10:00 car in
    # view it charges A at full current first and keeps 09:00-09:30 free for that car
    assert sent_blind[-1] < 16.0
    assert sent[-1] == pytest.approx(16.0)
    assert max(row[12:18]) == pytest.approx(0.0)
    assert min(row_blind[12:18]) > 5.0
    assert sum(row) == pytest.approx(sum(row_blind), rel=0.02)  # the same energy for A


# -- seeding from the transactions store --------------------------------------------------------


@pytest_asyncio.fixture
async def database(database_dsn: str) -> AsyncIterator[Database]:
    db = Database(database_dsn)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_the_history_is_seeded_from_finished_transactions_in_the_store(database: Database) -> None:
    suffix = uuid.uuid4().hex[:8]
    charger_a, charger_b, other = f"CP-A-{suffix}", f"CP-B-{suffix}", f"CP-X-{suffix}"
    chargers = ChargerRepository(database)
    for charger_id in (charger_a, charger_b, other):
        await chargers.register_unknown(charger_id, RegistrationStatus.ACCEPTED)
    transactions = TransactionRepository(database)

    async def session(charger_id: str, arrival: datetime, ended: datetime | None, wh: float) -> None:
        started = TransactionStarted(charger_id, 1, 1, None, None, 1000.0, arrival, uuid.uuid4().hex)
        outcome = await transactions.start_v16(started)
        if ended is not None:
            stop = TransactionEnded(charger_id, outcome.transaction_id, ended, 1000.0 + wh, None, None, "m")
            await transactions.end_v16(stop, [])

    await session(charger_b, YESTERDAY_ON_B.arrival, YESTERDAY_ON_B.ended, 11_000.0)
    await session(
        charger_a, TUESDAY_8 - timedelta(days=90), TUESDAY_8 - timedelta(days=90, hours=-1), 5_000.0
    )
    await session(charger_a, TUESDAY_8 - timedelta(hours=1), None, 0.0)  # still charging
    await session(other, MONDAY_8, MONDAY_8 + timedelta(hours=2), 7_000.0)  # not this station's

    loop = SmartChargingLoop(
        [setup(ForecastSettings(), charger_a, charger_b)],
        commands=ScriptedSender(),
        live_state=InProcessLiveState(),
        tasks=TaskOwner(),
    )
    assert await seed_forecasts(loop, transactions, TUESDAY_8) == 1
    state = loop.state("ST")
    assert state.history is not None
    (s,) = state.history.forecast(TUESDAY_8).sessions
    assert s.energy_needed_kwh == pytest.approx(11.0)
    assert s.arrival == TUESDAY_8 + timedelta(hours=1)
    # seeding again (a node taking the station over) replaces the history: nothing counted twice
    assert await seed_forecasts(loop, transactions, TUESDAY_8, ("ST",)) == 1
    assert len(state.history) == 1


@pytest.mark.asyncio
async def test_a_station_without_forecast_reads_nothing(database: Database) -> None:
    loop = SmartChargingLoop(
        [setup(None)], commands=ScriptedSender(), live_state=InProcessLiveState(), tasks=TaskOwner()
    )
    assert loop.forecast_window() == (timedelta(0), ())
    assert await seed_forecasts(loop, TransactionRepository(database), TUESDAY_8) == 0
