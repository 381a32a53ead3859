"""OCPP 2.0.1 conformance audit: what an external charging station (or the OCA test tool) meets at our
CSMS, end to end against the real server, PostgreSQL and Redis-free live state. Each test names the
requirement of OCPP 2.0.1 Part 2 (use cases B, E, ...) it checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from ocpp.v201 import call

from csms.commands import CommandOutcome
from csms.domain.events import (
    DomainEvent,
    IdToken,
    RegistrationStatus,
    TransactionEnded,
    TransactionEventReceived,
)
from csms.protocol.convert import end_register_wh, samples_v201, start_register_wh
from csms.storage.chargers import ChargerRecord
from tests.csms.chargers import Charger201, connected
from tests.csms.conftest import RunningCsms

V201 = "ocpp2.0.1"
EVSE_1 = {"id": 1, "connectorId": 1}
BOOT = call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")


def energy(timestamp: str, wh: float, context: str, **unit_of_measure: Any) -> dict[str, Any]:
    """A meter value with the whole-EVSE energy register (Wh unless ``unit_of_measure`` says otherwise)."""
    sampled: dict[str, Any] = {
        "value": wh,
        "measurand": "Energy.Active.Import.Register",
        "context": context,
    }
    if unit_of_measure:
        sampled["unitOfMeasure"] = unit_of_measure
    return {"timestamp": timestamp, "sampledValue": [sampled]}


def tx_event(event_type: str, seq_no: int, timestamp: str, transaction_id: str, **extra: Any) -> Any:
    info = {"transactionId": transaction_id, **extra.pop("info", {})}
    return call.TransactionEvent(
        event_type=event_type,
        timestamp=timestamp,
        trigger_reason=extra.pop("trigger_reason", "MeterValuePeriodic"),
        seq_no=seq_no,
        transaction_info=info,
        **extra,
    )


async def booted(station: Charger201) -> None:
    answer = await station.call(BOOT, suppress=False)
    assert answer.status == "Accepted"


@asynccontextmanager
async def booted_station(csms: RunningCsms, station_id: str) -> AsyncIterator[Charger201]:
    """Station ``station_id``, known to the CSMS, connected and booted (Accepted)."""
    await csms.runtime.chargers.save(ChargerRecord(station_id))
    async with connected(Charger201, csms.url(station_id), station_id, V201) as station:
        await booted(station)
        yield station


async def send(station: Charger201, *event: Any, **extra: Any) -> Any:
    """The CSMS's answer to :func:`tx_event` ``(*event, **extra)`` (a CALLERROR raises)."""
    return await station.call(tx_event(*event, **extra), suppress=False)


# --- E06/E07 + J02: the Ended event's meter values (TxEndedMeasurands over the whole transaction) ---


@pytest.mark.asyncio
async def test_an_ended_event_with_the_tx_ended_series_stops_at_its_last_reading(csms: RunningCsms) -> None:
    """J02/E06: the Ended event carries the TxEndedMeasurands sampled every TxEndedInterval from the
    start (context Sample.Clock/Sample.Periodic) and the reading at the end (Transaction.End): the
    transaction's meter stop is the reading at its end, not the first of the series."""
    async with booted_station(csms, "CS-AUD-END") as station:
        await send(
            station,
            "Started",
            0,
            "2026-03-02T10:00:00Z",
            "TX-END",
            trigger_reason="CablePluggedIn",
            evse=EVSE_1,
            meter_value=[energy("2026-03-02T10:00:00Z", 1000.0, "Transaction.Begin")],
        )
        await send(
            station,
            "Ended",
            1,
            "2026-03-02T11:00:00Z",
            "TX-END",
            trigger_reason="EVCommunicationLost",
            info={"stoppedReason": "EVDisconnected"},
            meter_value=[
                energy("2026-03-02T10:00:00Z", 1000.0, "Transaction.Begin"),
                energy("2026-03-02T10:30:00Z", 6000.0, "Sample.Clock"),
                energy("2026-03-02T11:00:00Z", 11000.0, "Transaction.End"),
            ],
        )
    stored = await csms.runtime.transactions.get("CS-AUD-END", "TX-END")
    assert stored is not None
    assert (stored.meter_start_wh, stored.meter_stop_wh) == (1000.0, 11000.0)


@pytest.mark.asyncio
async def test_a_started_event_begins_at_its_earliest_reading_whatever_the_order(csms: RunningCsms) -> None:
    """The Transaction.Begin reading is the meter start even when it is not the first meter value."""
    async with booted_station(csms, "CS-AUD-BEGIN") as station:
        await send(
            station,
            "Started",
            0,
            "2026-03-02T10:00:00Z",
            "TX-BEGIN",
            trigger_reason="CablePluggedIn",
            evse=EVSE_1,
            meter_value=[
                energy("2026-03-02T10:00:05Z", 1005.0, "Sample.Periodic"),
                energy("2026-03-02T10:00:00Z", 1000.0, "Transaction.Begin"),
            ],
        )
    stored = await csms.runtime.transactions.get("CS-AUD-BEGIN", "TX-BEGIN")
    assert stored is not None
    assert stored.meter_start_wh == 1000.0


def test_meter_start_and_stop_are_read_in_their_context_or_at_the_ends_of_the_series() -> None:
    """Pure: Transaction.Begin/End readings win; without them the earliest/latest whole-EVSE register
    at the outlet; phase, inlet and other measurands never count."""
    values = [
        energy("2026-03-02T10:30:00Z", 5.0, "Sample.Clock", unit="kWh"),
        energy("2026-03-02T10:00:00Z", 1.0, "Sample.Clock", unit="kWh"),
        {
            "timestamp": "2026-03-02T12:00:00Z",
            "sampledValue": [
                {"value": 9000, "measurand": "Energy.Active.Import.Register", "phase": "L1"},
                {"value": 9000, "measurand": "Energy.Active.Import.Register", "location": "Inlet"},
                {"value": 11, "measurand": "Current.Import", "unitOfMeasure": {"unit": "A"}},
            ],
        },
        energy("2026-03-02T11:00:00Z", 7.0, "Sample.Periodic", unit="kWh"),
    ]
    samples = samples_v201("CS", 1, "TX", values)
    assert (start_register_wh(samples), end_register_wh(samples)) == (1000.0, 7000.0)
    with_ends = samples_v201(
        "CS",
        1,
        "TX",
        [*values, energy("2026-03-02T10:45:00Z", 6500.0, "Transaction.End")],
    )
    assert end_register_wh(with_ends) == 6500.0
    assert start_register_wh(samples[2:5]) is None  # phase, inlet, current


@pytest.mark.asyncio
async def test_an_ended_event_sent_again_after_a_reconnect_counts_once(csms: RunningCsms) -> None:
    """E (TransactionEvent seqNo) / Part 4 §4.1: a station that lost our answer sends the same event
    again on its next connection; it is answered again, and the transaction ends once."""
    await csms.runtime.chargers.save(ChargerRecord("CS-AUD-DUP"))
    ended: list[DomainEvent] = []

    async def listen(domain_event: DomainEvent) -> None:
        if isinstance(domain_event, TransactionEnded):
            ended.append(domain_event)

    csms.runtime.service.subscribe(listen)
    end = tx_event(
        "Ended",
        3,
        "2026-03-02T11:00:00Z",
        "TX-DUP",
        trigger_reason="EVDeparted",
        evse=EVSE_1,
        id_token={"idToken": "RFID-D", "type": "ISO14443"},
        meter_value=[energy("2026-03-02T11:00:00Z", 8000.0, "Transaction.End")],
    )
    for _ in range(2):
        async with connected(Charger201, csms.url("CS-AUD-DUP"), "CS-AUD-DUP", V201) as station:
            answer = await station.call(end, suppress=False)
            assert answer.id_token_info == {"status": "Accepted"}
    assert len(ended) == 1
    samples = await csms.runtime.transactions.samples("CS-AUD-DUP", "TX-DUP")
    assert [s.value for s in samples] == [8000.0]
    stored = await csms.runtime.transactions.get("CS-AUD-DUP", "TX-DUP")
    assert stored is not None
    assert (stored.meter_stop_wh, stored.evse_id) == (8000.0, 1)


# --- E02: the id token comes in an Updated event (EV plugged in first, authorized later) -------------


@pytest.mark.asyncio
async def test_an_id_token_given_after_the_start_is_kept_with_the_transaction(csms: RunningCsms) -> None:
    """E02 (cable plugged in first): Started has no idToken (triggerReason CablePluggedIn);
    the driver's token comes in an Updated event with triggerReason Authorized. The CSMS answers it
    with idTokenInfo and keeps it as the transaction's token (sessions and billing read it there)."""
    token = {"idToken": "RFID-LATE", "type": "ISO14443"}
    async with booted_station(csms, "CS-AUD-LATE") as station:
        started = await send(
            station,
            "Started",
            0,
            "2026-03-02T10:00:00Z",
            "TX-LATE",
            trigger_reason="CablePluggedIn",
            evse=EVSE_1,
            info={"chargingState": "EVConnected"},
        )
        assert started.id_token_info is None
        updated = await send(
            station,
            "Updated",
            1,
            "2026-03-02T10:01:00Z",
            "TX-LATE",
            trigger_reason="Authorized",
            id_token=token,
            info={"chargingState": "Charging"},
        )
        assert updated.id_token_info == {"status": "Accepted"}
        # The stop token (here another card) does not replace the one that authorized the charge.
        await send(
            station,
            "Ended",
            2,
            "2026-03-02T11:00:00Z",
            "TX-LATE",
            trigger_reason="StopAuthorized",
            id_token={"idToken": "RFID-OTHER", "type": "ISO14443"},
            info={"stoppedReason": "Local"},
        )
    stored = await csms.runtime.transactions.get("CS-AUD-LATE", "TX-LATE")
    assert stored is not None
    assert stored.id_token == "RFID-LATE"
    async with csms.runtime.database.pool.acquire() as connection:
        token_type = await connection.fetchval(
            "SELECT id_token_type FROM transactions WHERE charger_id = $1 AND transaction_id = $2",
            "CS-AUD-LATE",
            "TX-LATE",
        )
    assert token_type == "ISO14443"


# --- B02: what the CSMS may send to a station it answered Pending -----------------------------------


@pytest.mark.asyncio
async def test_no_request_start_or_stop_is_sent_to_a_pending_station(csms: RunningCsms) -> None:
    """B02 (and 1.6 §4.2): while Pending, the CSMS does not send RequestStartTransaction or
    RequestStopTransaction (a Pending station answers them Rejected, B02.FR.05); configuration and
    reports may still be asked for (B02.FR.01). Once Accepted, the same command goes out."""
    await csms.runtime.chargers.save(
        ChargerRecord("CS-AUD-PEND", registration_status=RegistrationStatus.PENDING)
    )
    bus = csms.runtime.commands
    async with connected(Charger201, csms.url("CS-AUD-PEND"), "CS-AUD-PEND", V201) as station:
        assert (await station.call(BOOT, suppress=False)).status == "Pending"
        start = await bus.remote_start("CS-AUD-PEND", 1, IdToken("APP", "Central"), remote_start_id=3)
        assert start.outcome is CommandOutcome.NOT_REGISTERED
        assert start.action == "RequestStartTransaction"
        stop = await bus.remote_stop("CS-AUD-PEND", "TX-1")
        assert stop.outcome is CommandOutcome.NOT_REGISTERED
        assert station.received.empty()
        # Other requests still reach a Pending station (B02.FR.01; this one does not serve TriggerMessage).
        asked = await bus.trigger_message("CS-AUD-PEND", "Heartbeat")
        assert asked.outcome is CommandOutcome.CALL_ERROR

        await csms.runtime.chargers.save(ChargerRecord("CS-AUD-PEND"))
        assert (await station.call(BOOT, suppress=False)).status == "Accepted"
        start = await bus.remote_start("CS-AUD-PEND", 1, IdToken("APP", "Central"), remote_start_id=4)
        assert start.outcome is CommandOutcome.ACCEPTED
        action, _ = await asyncio.wait_for(station.received.get(), 5)
        assert action == "RequestStartTransaction"


@pytest.mark.asyncio
async def test_a_rejected_station_is_sent_nothing_but_a_trigger_for_its_boot(csms: RunningCsms) -> None:
    """B03.FR.08: while Rejected, the CSMS sends no message but a TriggerMessage for a BootNotification
    (the station would not answer anything else)."""
    await csms.runtime.chargers.save(
        ChargerRecord("CS-AUD-REJ", registration_status=RegistrationStatus.REJECTED)
    )
    bus = csms.runtime.commands
    async with connected(Charger201, csms.url("CS-AUD-REJ"), "CS-AUD-REJ", V201) as station:
        assert (await station.call(BOOT, suppress=False)).status == "Rejected"
        refused = [
            await bus.remote_start("CS-AUD-REJ", 1, IdToken("APP", "Central"), remote_start_id=5),
            await bus.reset("CS-AUD-REJ", hard=False),
            await bus.trigger_message("CS-AUD-REJ", "StatusNotification", evse_id=1),
        ]
        assert [(r.action, r.outcome) for r in refused] == [
            ("RequestStartTransaction", CommandOutcome.NOT_REGISTERED),
            ("Reset", CommandOutcome.NOT_REGISTERED),
            ("TriggerMessage", CommandOutcome.NOT_REGISTERED),
        ]
        assert station.received.empty()
        # The one message allowed goes out (this station does not serve TriggerMessage: an error).
        boot_again = await bus.trigger_message("CS-AUD-REJ", "BootNotification")
        assert boot_again.outcome is CommandOutcome.CALL_ERROR


# --- J01/J02: sampled values with a unit multiplier -------------------------------------------------


@pytest.mark.asyncio
async def test_a_unit_multiplier_scales_the_energy_register(csms: RunningCsms) -> None:
    """2.0.1 UnitOfMeasureType: value x 10^multiplier in ``unit``; kWh and Wh with multiplier 3 are both
    kilowatt-hours, and meter start/stop are in Wh."""
    async with booted_station(csms, "CS-AUD-UNIT") as station:
        await send(
            station,
            "Started",
            0,
            "2026-03-02T10:00:00Z",
            "TX-UNIT",
            trigger_reason="Authorized",
            evse=EVSE_1,
            id_token={"idToken": "RFID-U", "type": "ISO14443"},
            meter_value=[energy("2026-03-02T10:00:00Z", 1.5, "Transaction.Begin", unit="Wh", multiplier=3)],
        )
        await send(
            station,
            "Ended",
            1,
            "2026-03-02T11:00:00Z",
            "TX-UNIT",
            trigger_reason="StopAuthorized",
            meter_value=[energy("2026-03-02T11:00:00Z", 4.25, "Transaction.End", unit="kWh")],
        )
    stored = await csms.runtime.transactions.get("CS-AUD-UNIT", "TX-UNIT")
    assert stored is not None
    assert (stored.meter_start_wh, stored.meter_stop_wh) == (1500.0, 4250.0)
    assert stored.started_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


# --- E01/E02: the EVSE named after the start ----------------------------------------------------------


@pytest.mark.asyncio
async def test_a_transaction_started_without_an_evse_takes_the_one_a_later_event_names(
    csms: RunningCsms,
) -> None:
    """E01/E02: the ``evse`` field is required in the first TransactionEvent for an EVSE, but stations
    leave it out. The transaction is kept on no EVSE (its samples on EVSE 0) until an event names it;
    then the transaction, its samples, live state and the event the sessions hear all say that EVSE."""
    heard: list[TransactionEventReceived] = []

    async def listen(domain_event: DomainEvent) -> None:
        if isinstance(domain_event, TransactionEventReceived):
            heard.append(domain_event)

    csms.runtime.service.subscribe(listen)
    async with booted_station(csms, "CS-AUD-EVSE") as station:
        await send(
            station,
            "Started",
            0,
            "2026-03-02T10:00:00Z",
            "TX-EVSE",
            trigger_reason="CablePluggedIn",
            meter_value=[energy("2026-03-02T10:00:00Z", 1000.0, "Transaction.Begin")],
        )
        stored = await csms.runtime.transactions.get("CS-AUD-EVSE", "TX-EVSE")
        assert stored is not None
        assert stored.evse_id is None
        await send(
            station,
            "Updated",
            1,
            "2026-03-02T10:15:00Z",
            "TX-EVSE",
            evse={"id": 2, "connectorId": 1},
            meter_value=[energy("2026-03-02T10:15:00Z", 2500.0, "Sample.Periodic")],
        )
        # a later event without evse stays on it
        await send(
            station,
            "Updated",
            2,
            "2026-03-02T10:30:00Z",
            "TX-EVSE",
            meter_value=[energy("2026-03-02T10:30:00Z", 4000.0, "Sample.Periodic")],
        )
    stored = await csms.runtime.transactions.get("CS-AUD-EVSE", "TX-EVSE")
    assert stored is not None
    assert (stored.evse_id, stored.meter_start_wh) == (2, 1000.0)
    samples = await csms.runtime.transactions.samples("CS-AUD-EVSE", "TX-EVSE")
    assert [(s.evse_id, s.value) for s in samples] == [(2, 1000.0), (2, 2500.0), (2, 4000.0)]
    state = await csms.runtime.live_state.get("CS-AUD-EVSE")
    assert state is not None
    assert state.active_transactions == {2: "TX-EVSE"}
    assert [(e.seq_no, e.evse_id) for e in heard] == [(0, None), (1, 2), (2, 2)]
    open_now = await csms.runtime.transactions.open_on(["CS-AUD-EVSE"])
    assert [(t.transaction_id, t.evse_id) for t in open_now] == [("TX-EVSE", 2)]


# --- E06/E07: an Ended event for a transaction whose Started never came --------------------------------


@pytest.mark.asyncio
async def test_a_transaction_seen_only_ended_begins_where_its_ended_event_says(csms: RunningCsms) -> None:
    """E06/E07 with J02 (TxEndedMeasurands): a transaction reported only by its Ended event (its
    Started lost) takes its start from the Ended event's ``Transaction.Begin`` reading (time and
    register), else its earliest reading, else the event's own timestamp; so ``finished_since`` (the
    forecast history) and billing see it, with its energy."""

    def ended(seq_no: int, transaction_id: str, at: str, *meter_value: dict[str, Any]) -> Any:
        extra: dict[str, Any] = {"meter_value": list(meter_value)} if meter_value else {}
        return tx_event(
            "Ended",
            seq_no,
            at,
            transaction_id,
            trigger_reason="EVCommunicationLost",
            evse=EVSE_1,
            info={"stoppedReason": "EVDisconnected"},
            **extra,
        )

    async with booted_station(csms, "CS-AUD-ONLYEND") as station:
        await station.call(
            ended(
                4,
                "TX-BEGIN-READ",
                "2026-03-03T11:00:00Z",
                energy("2026-03-03T10:20:00Z", 3000.0, "Sample.Clock"),
                energy("2026-03-03T10:00:00Z", 1000.0, "Transaction.Begin"),
                energy("2026-03-03T11:00:00Z", 9000.0, "Transaction.End"),
            ),
            suppress=False,
        )
        await station.call(
            ended(
                5,
                "TX-SAMPLES",
                "2026-03-03T12:00:00Z",
                energy("2026-03-03T11:40:00Z", 2000.0, "Sample.Periodic"),
                energy("2026-03-03T12:00:00Z", 2600.0, "Transaction.End"),
            ),
            suppress=False,
        )
        await station.call(ended(6, "TX-BARE", "2026-03-03T13:00:00Z"), suppress=False)
        # Ended first, its Started (with the earlier start) afterwards: the start seen last wins
        await station.call(ended(3, "TX-LATE-START", "2026-03-03T15:00:00Z"), suppress=False)
        await send(
            station,
            "Started",
            0,
            "2026-03-03T14:00:00Z",
            "TX-LATE-START",
            trigger_reason="CablePluggedIn",
            evse=EVSE_1,
        )

    async def start_of(transaction_id: str) -> tuple[datetime | None, float | None, float | None]:
        stored = await csms.runtime.transactions.get("CS-AUD-ONLYEND", transaction_id)
        assert stored is not None
        return stored.started_at, stored.meter_start_wh, stored.meter_stop_wh

    def at(hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 3, 3, hour, minute, tzinfo=UTC)

    assert await start_of("TX-BEGIN-READ") == (at(10), 1000.0, 9000.0)
    # no Transaction.Begin reading: the earliest reading, and no meter start (the spread of the
    # samples gives the energy)
    assert await start_of("TX-SAMPLES") == (at(11, 40), None, 2600.0)
    assert await start_of("TX-BARE") == (at(13), None, None)
    assert (await start_of("TX-LATE-START"))[0] == at(14)
    finished = await csms.runtime.transactions.finished_since(at(0), ["CS-AUD-ONLYEND"])
    assert [(f.started_at, f.ended_at, f.energy_wh) for f in finished] == [
        (at(10), at(11), 8000.0),
        (at(11, 40), at(12), 600.0),
        (at(13), at(13), None),
        (at(14), at(15), None),
    ]
