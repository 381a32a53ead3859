"""Transactions the smart-charging loop did not see start, resumed from the store (real PostgreSQL).

At a single node's start, the transactions still open on the stations' chargers become the loop's
sessions with the energy they got, and live state knows them and the chargers' registration
again (a stale or superseded one is left out and logged). At the protocol layer, a 2.0.1 station
whose transaction start the loop missed: its first meter sample resumes it, once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from csms.domain.events import (
    ChargerBooted,
    MeterSample,
    RegistrationStatus,
    TransactionEnded,
    TransactionStarted,
)
from csms.live_state import InProcessLiveState
from csms.smart_charging import EvseBinding, SmartChargingLoop, StationSetup
from csms.smart_charging.restart import resume_at_start
from csms.smart_charging.resuming import MissedStarts
from csms.smart_charging.state import CURRENT_IMPORT, ENERGY_REGISTER
from csms.storage.chargers import ChargerRepository
from csms.storage.database import Database
from csms.storage.transactions import TransactionRepository
from csms.tasks import TaskOwner
from optimizer.types import FeederNode, Policy, Site
from tests.csms.protocol_stations import NOW, ServiceCsms, answered, station
from tests.csms.test_smart_charging_loop import A, B, ScriptedSender

pytestmark = pytest.mark.asyncio

SITE = Site(grid_limit_kw=22.0, root=FeederNode("main", limit_a=20.0, evse_ids=("A", "B")))


def setup(charger_a: str, charger_b: str) -> StationSetup:
    bindings = (EvseBinding(A, charger_a), EvseBinding(B, charger_b))
    return StationSetup("ST", SITE, bindings, Policy(period_s=300, horizon_periods=12))


def loop_of(
    station_setup: StationSetup, live_state: InProcessLiveState, missed: MissedStarts
) -> SmartChargingLoop:
    return SmartChargingLoop(
        [station_setup],
        commands=ScriptedSender(),
        live_state=live_state,
        tasks=TaskOwner(),
        missed_starts=missed,
    )


@pytest_asyncio.fixture
async def database(database_dsn: str) -> AsyncIterator[Database]:
    db = Database(database_dsn)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


# -- a single node's start -------------------------------------------------------------------------


async def test_the_transactions_still_open_in_the_store_are_resumed_at_start(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    suffix = uuid.uuid4().hex[:8]
    cp_a, cp_b, other = f"RS-A-{suffix}", f"RS-B-{suffix}", f"RS-X-{suffix}"
    chargers = ChargerRepository(database)
    for charger_id in (cp_a, cp_b, other):
        await chargers.register_unknown(charger_id, RegistrationStatus.ACCEPTED)
    now = datetime.now(UTC).replace(microsecond=0)
    await chargers.record_boot(ChargerBooted(cp_a, "V", "M", None, None, "PowerUp", now - timedelta(hours=2)))
    transactions = TransactionRepository(database)

    async def start(charger_id: str, started_at: datetime, meter_start_wh: float) -> str:
        event = TransactionStarted(charger_id, 1, 1, None, None, meter_start_wh, started_at, uuid.uuid4().hex)
        return (await transactions.start_v16(event)).transaction_id

    def energy(charger_id: str, tx: str, at: datetime, wh: float, **where: Any) -> MeterSample:
        fields: dict[str, Any] = {"phase": None, "location": None, **where}
        return MeterSample(
            charger_id, 1, tx, at, ENERGY_REGISTER, wh, "Wh", context="Sample.Periodic", **fields
        )

    gone = await start(cp_a, now - timedelta(hours=5), 0.0)  # ended: not a car there now
    await transactions.end_v16(
        TransactionEnded(cp_a, gone, now - timedelta(hours=4), 9000.0, None, None, "m"), []
    )
    on_a = await start(cp_a, now - timedelta(hours=1), 1000.0)
    await transactions.add_samples(
        [
            energy(cp_a, on_a, now - timedelta(minutes=50), 2500.0),
            energy(cp_a, on_a, now - timedelta(minutes=10), 4000.0),
            energy(cp_a, on_a, now - timedelta(minutes=9), 1400.0, phase="L1"),  # one phase's register
            energy(cp_a, on_a, now - timedelta(minutes=8), 9000.0, location="Inlet"),  # not at the outlet
        ]
    )
    stale = await start(cp_b, now - timedelta(hours=80), 0.0)  # its end never came
    superseded = await start(cp_b, now - timedelta(hours=3), 0.0)  # nor this one's
    on_b = await start(cp_b, now - timedelta(hours=2), 500.0)
    await start(other, now - timedelta(hours=1), 0.0)  # not a charger of the station

    live_state = InProcessLiveState()
    missed = MissedStarts(transactions)
    loop = loop_of(setup(cp_a, cp_b), live_state, missed)
    resumed = await resume_at_start(
        loop,
        [setup(cp_a, cp_b)],
        transactions=transactions,
        chargers=chargers,
        live_state=live_state,
        missed_starts=missed,
        now=now,
    )

    assert resumed == 2
    state = loop.state("ST")
    a, b = state.evses["A"].session, state.evses["B"].session
    assert a is not None
    assert b is not None
    assert (a.transaction_id, a.arrival, a.meter_start_wh, a.delivered_wh) == (
        on_a,
        now - timedelta(hours=1),
        1000.0,
        3000.0,  # the latest reading of the whole EVSE at its outlet, less the meter start
    )
    assert (b.transaction_id, b.arrival, b.delivered_wh) == (on_b, now - timedelta(hours=2), 0.0)
    # live state knows the running transactions again, and the registration of the charger that booted
    state_a, state_b = await live_state.get(cp_a), await live_state.get(cp_b)
    assert state_a is not None
    assert state_b is not None
    assert (state_a.registration, state_a.active_transactions) == (RegistrationStatus.ACCEPTED, {1: on_a})
    assert (state_b.registration, state_b.active_transactions) == (None, {1: on_b})  # B never booted
    assert await live_state.get(other) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(stale in m and "open since" in m for m in warnings), warnings
    assert any(superseded in m and on_b in m for m in warnings), warnings
    assert not missed.note(cp_a, on_a)  # the safety net knows them: it leaves them alone


# -- the safety net ----------------------------------------------------------------------------------


def transaction_event(
    event_type: str, seq_no: int, tx: str, at: str, *samples: dict[str, Any]
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": at,
        "triggerReason": "CablePluggedIn" if event_type == "Started" else "MeterValuePeriodic",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1},
    }
    if samples:
        payload["meterValue"] = [{"timestamp": at, "sampledValue": list(samples)}]
    return payload


def reading(measurand: str, value: float, context: str = "Sample.Periodic") -> dict[str, Any]:
    unit = "Wh" if measurand == ENERGY_REGISTER else "A"
    return {"value": value, "measurand": measurand, "context": context, "unitOfMeasure": {"unit": unit}}


async def test_a_transaction_whose_start_the_loop_missed_is_resumed_on_its_first_meter_sample(
    service: ServiceCsms,
) -> None:
    charger_id = f"CS-MISSED-{uuid.uuid4().hex[:8]}"
    await service.service.chargers.register_unknown(charger_id, RegistrationStatus.ACCEPTED)
    tx = f"TX-{uuid.uuid4().hex[:8]}"
    missed = MissedStarts(service.service.transactions, clock=lambda: NOW)
    loop = loop_of(setup(charger_id, f"{charger_id}-other"), service.live_state, missed)
    async with station(service, charger_id) as cs:
        begin = reading(ENERGY_REGISTER, 1000.0, "Transaction.Begin")
        answered(
            await cs.send(
                "TransactionEvent", transaction_event("Started", 0, tx, "2026-05-04T07:30:00Z", begin)
            ),
            {},
        )
        service.service.subscribe(loop.on_event)  # the loop hears from here on: it missed the start
        assert loop.state("ST").evses["A"].session is None

        sample = transaction_event(
            "Updated",
            1,
            tx,
            "2026-05-04T07:59:00Z",
            reading(ENERGY_REGISTER, 2500.0),
            reading(CURRENT_IMPORT, 10.0),
        )
        answered(await cs.send("TransactionEvent", sample), {})
        session = loop.state("ST").evses["A"].session
        assert session is not None
        assert (session.transaction_id, session.arrival, session.meter_start_wh, session.delivered_wh) == (
            tx,
            datetime(2026, 5, 4, 7, 30, tzinfo=UTC),  # its stored start, not the time of the sample
            1000.0,
            1500.0,
        )
        assert session.measured_a == 10.0  # the sample that resumed it counts too

        # The car leaves (connector Available) and the transaction's end does not come: a late
        # reading of it finds the EVSE idle again, but it was looked up once already.
        status = {
            "timestamp": "2026-05-04T07:59:30Z",
            "connectorStatus": "Available",
            "evseId": 1,
            "connectorId": 1,
        }
        answered(await cs.send("StatusNotification", status), {})
        assert loop.state("ST").evses["A"].session is None
        late = transaction_event("Updated", 2, tx, "2026-05-04T07:59:45Z", reading(ENERGY_REGISTER, 2600.0))
        answered(await cs.send("TransactionEvent", late), {})
        assert loop.state("ST").evses["A"].session is None


async def test_the_safety_net_leaves_ended_unknown_and_stale_transactions_alone(database: Database) -> None:
    suffix = uuid.uuid4().hex[:8]
    cp_a, cp_b = f"SN-A-{suffix}", f"SN-B-{suffix}"
    chargers = ChargerRepository(database)
    for charger_id in (cp_a, cp_b):
        await chargers.register_unknown(charger_id, RegistrationStatus.ACCEPTED)
    transactions = TransactionRepository(database)
    now = datetime.now(UTC).replace(microsecond=0)
    ended = await transactions.start_v16(
        TransactionStarted(cp_a, 1, 1, None, None, 0.0, now - timedelta(hours=1), "m1")
    )
    await transactions.end_v16(
        TransactionEnded(cp_a, ended.transaction_id, now - timedelta(minutes=5), 100.0, None, None, "m2"), []
    )
    stale = await transactions.start_v16(
        TransactionStarted(cp_b, 1, 1, None, None, 0.0, now - timedelta(hours=73), "m3")
    )
    loop = loop_of(setup(cp_a, cp_b), InProcessLiveState(), MissedStarts(transactions, clock=lambda: now))

    for charger_id, tx in (
        (cp_a, ended.transaction_id),
        (cp_a, "no-such-transaction"),
        (cp_b, stale.transaction_id),
    ):
        sample = MeterSample(
            charger_id, 1, tx, now, ENERGY_REGISTER, 500.0, "Wh", None, None, "Sample.Periodic"
        )
        await loop.on_event(sample)
    state = loop.state("ST")
    assert (state.evses["A"].session, state.evses["B"].session) == (None, None)
