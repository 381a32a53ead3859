"""The smart-charging loop against a scripted command sender: what it sends, in which order, and
what it does when a charger refuses (the end-to-end test runs it against real chargers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from csms.commands import ChargingProfile, CommandOutcome, CommandResult
from csms.domain.events import (
    ChargerBooted,
    ChargingLimitSet,
    LimitPeriod,
    LimitSchedule,
    MeterSample,
    RegistrationStatus,
    TransactionEnded,
    TransactionStarted,
)
from csms.live_state import InProcessLiveState
from csms.protocol.versions import OcppVersion
from csms.smart_charging import EvseBinding, SmartChargingLoop, SmartChargingSettings, StationSetup
from csms.tasks import TaskOwner
from optimizer.types import CapWindow, Connection, Evse, FeederNode, Policy, Schedule, Site, SolveStatus

pytestmark = pytest.mark.asyncio

A = Evse("A", Connection.THREE_PHASE, 230.0, 16.0, 6.0)
B = Evse("B", Connection.THREE_PHASE, 230.0, 16.0, 6.0)
SETUP = StationSetup(
    "ST",
    Site(grid_limit_kw=22.0, root=FeederNode("main", limit_a=16.0, evse_ids=("A", "B"))),
    (EvseBinding(A, "CP-A"), EvseBinding(B, "CP-B")),
    Policy(period_s=300, horizon_periods=12),
)

Answer = Callable[[str, str], CommandOutcome]


@dataclass
class Sent:
    charger_id: str
    evse_id: int
    purpose: str
    limit: float
    outcome: CommandOutcome


@dataclass
class ScriptedSender:
    """Answers SetChargingProfile as ``answer(charger_id, purpose)`` says; keeps what was sent."""

    answer: Answer = lambda _charger, _purpose: CommandOutcome.ACCEPTED
    sent: list[Sent] = field(default_factory=list)
    arrived: asyncio.Queue[Sent] = field(default_factory=asyncio.Queue)
    hold: dict[str, asyncio.Event] = field(default_factory=dict)  # chargers that answer once released
    # GetChargingProfiles' answer ("Accepted", "NoProfiles"); None: a 1.6 charger, no such request
    limits_answer: str | None = None
    asked: list[str] = field(default_factory=list)  # chargers asked for their external limits

    async def set_charging_profile(
        self, charger_id: str, evse_id: int, profile: ChargingProfile, *, timeout_s: float | None = None
    ) -> CommandResult:
        form = profile.for_version(OcppVersion.V201)
        assert form is not None
        purpose = form["chargingProfilePurpose"]
        limit = float(form["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"])
        if charger_id in self.hold:
            await self.hold[charger_id].wait()
        outcome = self.answer(charger_id, purpose)
        self.sent.append(Sent(charger_id, evse_id, purpose, limit, outcome))
        self.arrived.put_nowait(self.sent[-1])
        await asyncio.sleep(0)  # an answer comes back later, never inline
        status = {CommandOutcome.ACCEPTED: "Accepted", CommandOutcome.REJECTED: "Rejected"}.get(outcome)
        error = "InternalError" if outcome is CommandOutcome.CALL_ERROR else None
        return CommandResult(charger_id, "SetChargingProfile", outcome, status, error_code=error)

    async def get_charging_profiles(self, charger_id: str) -> CommandResult:
        if self.limits_answer is None:
            return CommandResult(charger_id, None, CommandOutcome.NOT_SUPPORTED_BY_VERSION)
        self.asked.append(charger_id)
        await asyncio.sleep(0)
        outcome = CommandOutcome.ACCEPTED if self.limits_answer == "Accepted" else CommandOutcome.REJECTED
        return CommandResult(charger_id, "GetChargingProfiles", outcome, self.limits_answer)

    def tx(self) -> list[Sent]:
        return [s for s in self.sent if s.purpose == "TxProfile"]


@dataclass
class Running:
    loop: SmartChargingLoop
    sender: ScriptedSender
    live_state: InProcessLiveState

    async def settle(self) -> None:
        async with asyncio.timeout(60):  # guards against a hang only
            await self.loop.wait_idle()

    async def start(self, charger_id: str, transaction_id: str) -> None:
        event = TransactionStarted(charger_id, 1, 1, transaction_id, None, 0.0, datetime.now(UTC), "m")
        await self.loop.on_event(event)
        await self.settle()


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Running]:
    sender = ScriptedSender()
    live_state = InProcessLiveState()
    tasks = TaskOwner()
    settings = SmartChargingSettings(quiet_s=0.0, max_delay_s=0.0, retry_backoff_s=0.0)
    loop = SmartChargingLoop([SETUP], commands=sender, live_state=live_state, tasks=tasks, settings=settings)
    tasks.start(loop.run(), "smart-charging")
    try:
        yield Running(loop, sender, live_state)
    finally:
        await tasks.cancel_all()


async def test_lower_limits_go_out_before_higher_ones_and_unchanged_ones_are_not_resent(
    running: Running,
) -> None:
    await running.start("CP-A", "tx-a")
    assert [(s.charger_id, s.limit) for s in running.sender.tx()] == [("CP-A", 16.0)]
    await running.start("CP-B", "tx-b")
    tx = running.sender.tx()
    assert [(s.charger_id, s.limit) for s in tx[1:]] == [("CP-A", 8.0), ("CP-B", 8.0)]

    await running.loop.on_event(
        TransactionStarted("CP-A", 1, 1, "tx-a", None, 0.0, datetime.now(UTC), "m")  # a replay
    )
    assert running.loop.set_driver_needs("CP-B", "tx-b", 30.0, datetime.now(UTC) + timedelta(hours=8))
    assert not running.loop.set_driver_needs("CP-B", "tx-unknown", 30.0, None)
    await running.settle()
    assert len(running.sender.tx()) == 3  # the plan is the same at the chargers: nothing sent

    await running.loop.on_event(TransactionEnded("CP-A", "tx-a", datetime.now(UTC), None, None, None, "m"))
    await running.settle()
    assert [(s.charger_id, s.limit) for s in running.sender.tx()[3:]] == [("CP-B", 16.0)]


@pytest.mark.parametrize(
    "refusal", [CommandOutcome.REJECTED, CommandOutcome.CALL_ERROR, CommandOutcome.TIMEOUT]
)
async def test_a_charger_refusing_twice_is_planned_at_its_maximum(
    running: Running, refusal: CommandOutcome, caplog: pytest.LogCaptureFixture
) -> None:
    running.sender.answer = lambda charger, _purpose: (
        refusal if charger == "CP-B" else CommandOutcome.ACCEPTED
    )
    await running.start("CP-A", "tx-a")
    await running.start("CP-B", "tx-b")
    refused = [s for s in running.sender.tx() if s.charger_id == "CP-B"]
    assert len(refused) == 2  # sent, re-sent once
    assert running.loop.state("ST").reserved_a() == {"B": 16.0}
    # B may draw all 16 A the feeder has: A gets nothing.
    assert running.sender.tx()[-1].charger_id == "CP-A"
    assert running.sender.tx()[-1].limit == 0.0
    assert any("charger CP-B" in r.getMessage() and "maximum" in r.getMessage() for r in caplog.records)


async def test_a_profile_accepted_on_re_send_keeps_the_evse_under_control(running: Running) -> None:
    answers = iter([CommandOutcome.TIMEOUT])
    running.sender.answer = lambda charger, _p: next(answers, CommandOutcome.ACCEPTED)
    await running.start("CP-B", "tx-b")
    assert [s.outcome for s in running.sender.tx()] == [CommandOutcome.TIMEOUT, CommandOutcome.ACCEPTED]
    assert running.loop.state("ST").reserved_a() == {}
    held = running.loop.state("ST").evses["B"].held
    assert held is not None
    assert held.transaction_id == "tx-b"


async def test_a_booted_charger_gets_its_failsafe_and_a_cap_re_solves_at_once(running: Running) -> None:
    await running.live_state.set_registration("CP-A", RegistrationStatus.ACCEPTED)
    await running.loop.on_event(ChargerBooted("CP-A", "Acme", "X", None, None, "PowerUp", datetime.now(UTC)))
    await running.loop.on_event(ChargerBooted("CP-B", "Acme", "X", None, None, "PowerUp", datetime.now(UTC)))
    await running.settle()
    # Only the accepted charger: 16 A shared by both EVSEs at once is 8 A each.
    assert [(s.charger_id, s.purpose, s.limit) for s in running.sender.sent] == [
        ("CP-A", "TxDefaultProfile", 8.0)
    ]
    assert running.loop.state("ST").evses["A"].failsafe_a == 8.0

    await running.start("CP-A", "tx-a")
    now = datetime.now(UTC)
    running.loop.set_caps(
        "ST", (CapWindow(now - timedelta(minutes=1), now + timedelta(hours=1), limit_kw=6.9),)
    )
    await running.settle()
    assert [s.limit for s in running.sender.tx()] == [16.0, 10.0]  # 6.9 kW is 10 A on three phases


@pytest.mark.parametrize("answer", ["Accepted", "NoProfiles", "Rejected"])
async def test_a_rebooted_charger_is_asked_for_its_external_limits_and_old_ones_go(
    running: Running, answer: str
) -> None:
    running.sender.limits_answer = answer
    await running.live_state.set_registration("CP-A", RegistrationStatus.ACCEPTED)
    before = datetime.now(UTC) - timedelta(minutes=5)
    ems = LimitSchedule(1, "A", (LimitPeriod(before, 6.0),))
    await running.loop.on_event(ChargingLimitSet("CP-A", 1, "EMS", None, (ems,), before))
    await running.start("CP-A", "tx-a")
    assert [s.limit for s in running.sender.tx()] == [6.0]  # under the EMS's 6 A

    await running.loop.on_event(ChargerBooted("CP-A", "Acme", "X", None, None, "PowerUp", datetime.now(UTC)))
    await running.settle()
    assert running.sender.asked == ["CP-A"]
    kept = list(running.loop.state("ST").external.limits)
    if answer == "Rejected":  # no answer to go by: the limit known stays
        assert kept == [("CP-A", 1, "EMS")]
        assert running.sender.tx()[-1].limit == 6.0
    else:  # it did not report the EMS limit again (or said it holds none): it is gone
        assert kept == []
        assert running.sender.tx()[-1].limit == 16.0


async def test_plans_are_renewed_every_period_before_they_run_out() -> None:
    sender = ScriptedSender()
    tasks = TaskOwner()
    short = StationSetup("ST", SETUP.site, SETUP.evses, Policy(period_s=1, horizon_periods=2))
    settings = SmartChargingSettings(quiet_s=0.0, max_delay_s=0.0)
    loop = SmartChargingLoop(
        [short], commands=sender, live_state=InProcessLiveState(), tasks=tasks, settings=settings
    )
    tasks.start(loop.run(), "smart-charging")
    try:
        await loop.on_event(TransactionStarted("CP-A", 1, 1, "tx-a", None, 0.0, datetime.now(UTC), "m"))
        async with asyncio.timeout(60):  # guards against a hang only
            first = await sender.arrived.get()
            renewed = await sender.arrived.get()  # no trigger but the policy's period
        assert (first.purpose, renewed.purpose) == ("TxProfile", "TxProfile")
        held = loop.state("ST").evses["A"].held
        assert held is not None
        assert held.duration_s == 2
    finally:
        await tasks.cancel_all()


async def test_a_charger_clock_hours_ahead_does_not_delay_the_solve(running: Running) -> None:
    ahead = datetime.now(UTC) + timedelta(hours=3)
    await running.loop.on_event(TransactionStarted("CP-A", 1, 1, "tx-a", None, 0.0, ahead, "m"))
    await running.settle()
    assert [(s.charger_id, s.limit) for s in running.sender.tx()] == [("CP-A", 16.0)]


async def test_a_station_does_not_wait_for_another_stations_silent_charger() -> None:
    sender = ScriptedSender(hold={"CP-X": asyncio.Event()})
    tasks = TaskOwner()
    stations = [
        StationSetup("SX", SETUP.site, (EvseBinding(A, "CP-X"), EvseBinding(B, "CP-X2"))),
        StationSetup("SY", SETUP.site, (EvseBinding(A, "CP-Y"), EvseBinding(B, "CP-Y2"))),
    ]
    settings = SmartChargingSettings(quiet_s=0.0, max_delay_s=0.0)
    state = InProcessLiveState()
    loop = SmartChargingLoop(stations, commands=sender, live_state=state, tasks=tasks, settings=settings)
    tasks.start(loop.run(), "smart-charging")
    try:
        await loop.on_event(TransactionStarted("CP-X", 1, 1, "tx-x", None, 0.0, datetime.now(UTC), "m"))
        await loop.on_event(TransactionStarted("CP-Y", 1, 1, "tx-y", None, 0.0, datetime.now(UTC), "m"))
        async with asyncio.timeout(60):  # guards against a hang only
            first = await sender.arrived.get()
            assert first.charger_id == "CP-Y"  # CP-X has not answered yet
            sender.hold["CP-X"].set()
            await loop.wait_idle()
        assert sorted(s.charger_id for s in sender.tx()) == ["CP-X", "CP-Y"]
    finally:
        await tasks.cancel_all()


async def test_over_drawing_is_logged_with_the_charger_and_planned_around(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    await running.start("CP-A", "tx-a")
    await running.start("CP-B", "tx-b")
    later = datetime.now(UTC) + timedelta(minutes=1)  # past the time a charger gets to apply a limit
    sample = MeterSample("CP-A", 1, "tx-a", later, "Current.Import", 15.0, "A", "L1", None, "Sample.Periodic")
    await running.loop.on_event(sample)
    await running.settle()
    assert any(
        r.levelname == "WARNING" and "charger CP-A" in r.getMessage() and "over its limit" in r.getMessage()
        for r in caplog.records
    )
    assert running.loop.state("ST").reserved_a() == {"A": 15.0}
    assert (running.sender.tx()[-1].charger_id, running.sender.tx()[-1].limit) == (
        "CP-B",
        0.0,
    )  # 1 A is below 6 A


async def test_an_idle_evse_keeps_only_the_room_the_plan_leaves(running: Running) -> None:
    """A car arriving at an idle EVSE draws its default until its Tx profile comes: that default is the
    room the others leave, lowered before anyone is raised, and raised again when the room returns."""
    for charger_id in ("CP-A", "CP-B"):
        await running.live_state.set_connected(charger_id, True, datetime.now(UTC))
        await running.live_state.set_registration(charger_id, RegistrationStatus.ACCEPTED)
        await running.loop.on_event(
            ChargerBooted(charger_id, "Acme", "X", None, None, "PowerUp", datetime.now(UTC))
        )
    await running.settle()
    assert running.loop.state("ST").evses["B"].failsafe_a == 8.0

    await running.start("CP-A", "tx-a")
    after_start = [(s.charger_id, s.purpose, s.limit) for s in running.sender.sent[2:]]
    # B's default goes to 0 A (the feeder's 16 A are A's) before A is allowed more than its 8 A default
    assert after_start == [("CP-B", "TxDefaultProfile", 0.0), ("CP-A", "TxProfile", 16.0)]
    state = running.loop.state("ST")
    now = datetime.now(UTC)
    assert state.evses["A"].limit_in_force_a(now) + state.evses["B"].failsafe_a <= 16.0  # type: ignore[operator]

    await running.loop.on_event(TransactionEnded("CP-A", "tx-a", datetime.now(UTC), None, None, None, "m"))
    await running.settle()
    assert running.sender.sent[-1].charger_id == "CP-B"
    assert (running.sender.sent[-1].purpose, running.sender.sent[-1].limit) == ("TxDefaultProfile", 8.0)


async def test_a_cap_gets_a_quick_safe_answer_then_the_lp_refines_it(running: Running) -> None:
    solved: list[tuple[SolveStatus, str, int]] = []  # (status, message, Tx profiles sent before it)
    running.loop.on_solved(
        lambda _station, schedule: solved.append(
            (schedule.status, schedule.message, len(running.sender.tx()))
        )
    )
    await running.start("CP-A", "tx-a")
    await running.start("CP-B", "tx-b")
    assert [status for status, _, _ in solved] == [SolveStatus.OPTIMAL, SolveStatus.OPTIMAL]
    before = len(running.sender.tx())
    now = datetime.now(UTC)
    cap = CapWindow(now - timedelta(minutes=1), now + timedelta(hours=1), limit_kw=6.9)  # 10 A in all
    running.loop.set_caps("ST", (cap,))
    await running.settle()  # idle only once the refinement is done too
    assert [(status, message) for status, message, _ in solved[2:]] == [
        (SolveStatus.FALLBACK, "fallback forced"),
        (SolveStatus.OPTIMAL, solved[3][1]),
    ]
    quick = running.sender.tx()[before : solved[3][2]]  # what went out before the LP ran
    assert quick
    held = {"CP-A": 8.0, "CP-B": 8.0} | {s.charger_id: s.limit for s in quick}
    assert sum(held.values()) <= 10.0  # the cap holds from the quick answer on
    schedule = running.loop.schedule("ST")
    assert schedule is not None
    assert schedule.status is SolveStatus.OPTIMAL
    assert float(schedule.current_a[:, 0].sum()) <= 10.0


async def test_refinements_wait_until_every_quick_answer_is_out() -> None:
    """The LP takes the GIL: no station refines while another's quick answer is still on its way."""
    release = asyncio.Event()
    sender = ScriptedSender(hold={})
    tasks = TaskOwner()
    stations = [
        StationSetup("SX", SETUP.site, (EvseBinding(A, "CP-X"), EvseBinding(B, "CP-X2"))),
        StationSetup("SY", SETUP.site, (EvseBinding(A, "CP-Y"), EvseBinding(B, "CP-Y2"))),
    ]
    settings = SmartChargingSettings(quiet_s=0.0, max_delay_s=0.0)
    loop = SmartChargingLoop(
        stations, commands=sender, live_state=InProcessLiveState(), tasks=tasks, settings=settings
    )
    refined: list[tuple[str, bool]] = []  # (station, whether CP-X had answered its quick profile)

    def solved(station_id: str, schedule: Schedule) -> None:
        if schedule.status is SolveStatus.OPTIMAL and len(sender.tx()) > 2:
            refined.append((station_id, release.is_set()))

    loop.on_solved(solved)
    tasks.start(loop.run(), "smart-charging")
    try:
        for charger_id in ("CP-X", "CP-Y"):
            started = TransactionStarted(
                charger_id, 1, 1, f"tx-{charger_id}", None, 0.0, datetime.now(UTC), "m"
            )
            await loop.on_event(started)
        async with asyncio.timeout(60):  # guards against a hang only
            await loop.wait_idle()
            assert len(sender.tx()) == 2
            sender.hold["CP-X"] = release
            now = datetime.now(UTC)
            # 4.6 kW is 6.6 A on three phases: below the 8.5 A each car holds, so each quick answer
            # is a decrease that must go out (CP-X holds SX's until released)
            cap = (CapWindow(now - timedelta(minutes=1), now + timedelta(hours=1), limit_kw=4.6),)
            loop.set_caps("SX", cap)
            loop.set_caps("SY", cap)
            while not any(s.charger_id == "CP-Y" for s in sender.tx()[2:]):
                await sender.arrived.get()  # SY's quick answer is out; SX's waits for CP-X
            for _ in range(20):  # time in which SY would refine, were it not held back
                await asyncio.sleep(0.01)
            assert refined == []
            release.set()
            await loop.wait_idle()
        assert sorted(refined) == [("SX", True), ("SY", True)]
    finally:
        await tasks.cancel_all()


async def test_the_collector_waits_while_a_cap_is_being_answered() -> None:
    import gc

    release = asyncio.Event()
    sender = ScriptedSender(hold={})
    tasks = TaskOwner()
    settings = SmartChargingSettings(quiet_s=0.0, max_delay_s=0.0)
    loop = SmartChargingLoop(
        [SETUP], commands=sender, live_state=InProcessLiveState(), tasks=tasks, settings=settings
    )
    tasks.start(loop.run(), "smart-charging")
    assert gc.isenabled()
    try:
        await loop.on_event(TransactionStarted("CP-A", 1, 1, "tx-a", None, 0.0, datetime.now(UTC), "m"))
        async with asyncio.timeout(60):  # guards against a hang only
            await loop.wait_idle()
            sender.hold["CP-A"] = release
            now = datetime.now(UTC)
            loop.set_caps(
                "ST", (CapWindow(now - timedelta(minutes=1), now + timedelta(hours=1), limit_kw=4.6),)
            )
            for _ in range(500):  # until the quick answer starts
                if not gc.isenabled():
                    break
                await asyncio.sleep(0.01)
            assert not gc.isenabled()  # its profile is on its way to CP-A
            release.set()
            await loop.wait_idle()
        assert gc.isenabled()
    finally:
        await tasks.cancel_all()
        gc.enable()
