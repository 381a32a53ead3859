"""End to end with an OCPP 2.0.1 charging station (the ``ocpp`` package) against the real server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from ocpp.exceptions import SecurityError
from ocpp.v201 import call

from csms.commands import ChargingProfile, CommandOutcome
from csms.domain.events import (
    ConnectorStatus,
    DomainEvent,
    IdToken,
    RegistrationStatus,
    SecurityEventReported,
)
from csms.storage.chargers import ChargerRecord
from optimizer.types import Connection, Evse, ObjectiveBreakdown, Schedule, SolveStatus
from tests.csms.chargers import Charger201, connected
from tests.csms.conftest import RunningCsms

pytestmark = pytest.mark.asyncio


def energy(timestamp: str, wh: float, context: str = "Sample.Periodic") -> dict[str, Any]:
    return {
        "timestamp": timestamp,
        "sampledValue": [
            {
                "value": wh / 1000,
                "measurand": "Energy.Active.Import.Register",
                "context": context,
                "unitOfMeasure": {"unit": "kWh"},
            },
        ],
    }


def event(event_type: str, seq_no: int, timestamp: str, *, offline: bool = False, **extra: Any) -> Any:
    return call.TransactionEvent(
        event_type=event_type,
        timestamp=timestamp,
        trigger_reason=extra.pop(
            "trigger_reason", "Authorized" if event_type == "Started" else "MeterValuePeriodic"
        ),
        seq_no=seq_no,
        transaction_info=extra.pop("transaction_info", {"transactionId": "TX-201"}),
        offline=offline or None,
        **extra,
    )


async def test_boot_status_and_heartbeat(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(ChargerRecord("CS201-A"))
    async with connected(Charger201, csms.url("CS201-A"), "CS201-A", "ocpp2.0.1") as station:
        boot = await station.call(
            call.BootNotification(
                charging_station={"model": "Pro", "vendor_name": "Acme", "firmware_version": "2.0"},
                reason="PowerUp",
            ),
            suppress=False,
        )
        assert boot.status == "Accepted"
        assert boot.interval == 300
        await station.call(
            call.StatusNotification(
                timestamp="2026-03-01T09:00:00Z", connector_status="Available", evse_id=1, connector_id=1
            ),
            suppress=False,
        )
        assert (await station.call(call.Heartbeat(), suppress=False)).current_time.endswith("Z")
        authorized = await station.call(
            call.Authorize(id_token={"idToken": "RFID-1", "type": "ISO14443"}), suppress=False
        )
        assert authorized.id_token_info["status"] == "Accepted"
    state = await csms.runtime.live_state.get("CS201-A")
    assert state is not None
    assert state.connectors[(1, 1)].status is ConnectorStatus.AVAILABLE
    record = await csms.runtime.chargers.get("CS201-A")
    assert record is not None
    assert (record.vendor, record.model, record.firmware_version) == ("Acme", "Pro", "2.0")


async def test_transaction_events_with_offline_queue_and_seqno_replay(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(ChargerRecord("CS201-TX"))
    token = {"idToken": "RFID-9", "type": "ISO14443"}
    started = event(
        "Started",
        0,
        "2026-03-01T10:00:00Z",
        evse={"id": 1, "connectorId": 1},
        id_token=token,
        meter_value=[energy("2026-03-01T10:00:00Z", 2000.0, "Transaction.Begin")],
    )
    async with connected(Charger201, csms.url("CS201-TX"), "CS201-TX", "ocpp2.0.1") as station:
        first = await station.call(started, suppress=False)
        assert first.id_token_info["status"] == "Accepted"
        # Charger lost the answer and sends the same event again: nothing changes.
        replay = await station.call(started, suppress=False)
        assert replay.id_token_info == first.id_token_info
        state = await csms.runtime.live_state.get("CS201-TX")
        assert state is not None
        assert state.active_transactions == {1: "TX-201"}
        # Events queued while offline arrive later, flagged offline.
        await station.call(
            event(
                "Updated",
                1,
                "2026-03-01T10:15:00Z",
                offline=True,
                transaction_info={"transactionId": "TX-201", "chargingState": "Charging"},
                meter_value=[energy("2026-03-01T10:15:00Z", 3500.0)],
            ),
            suppress=False,
        )
        await station.call(
            event(
                "Ended",
                2,
                "2026-03-01T10:30:00Z",
                offline=True,
                trigger_reason="EVDeparted",
                transaction_info={"transactionId": "TX-201", "stoppedReason": "EVDisconnected"},
                meter_value=[energy("2026-03-01T10:30:00Z", 5000.0, "Transaction.End")],
            ),
            suppress=False,
        )
        await station.call(
            call.MeterValues(evse_id=1, meter_value=[energy("2026-03-01T10:31:00Z", 5000.0)]), suppress=False
        )

    stored = await csms.runtime.transactions.get("CS201-TX", "TX-201")
    assert stored is not None
    assert stored.evse_id == 1
    assert stored.id_token == "RFID-9"
    assert stored.started_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert stored.ended_at == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert (stored.meter_start_wh, stored.meter_stop_wh) == (2000.0, 5000.0)
    assert stored.stop_reason == "EVDisconnected"
    samples = await csms.runtime.transactions.samples("CS201-TX", "TX-201")
    assert [s.value for s in samples] == [2000.0, 3500.0, 5000.0]
    async with csms.runtime.database.pool.acquire() as connection:
        events = await connection.fetch(
            "SELECT seq_no, offline FROM transaction_events WHERE charger_id = 'CS201-TX' ORDER BY seq_no"
        )
    assert [(e["seq_no"], e["offline"]) for e in events] == [(0, False), (1, True), (2, True)]
    state = await csms.runtime.live_state.get("CS201-TX")
    assert state is not None
    assert state.active_transactions == {}


async def test_ended_event_for_an_unknown_transaction_is_stored(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(ChargerRecord("CS201-LOST"))
    async with connected(Charger201, csms.url("CS201-LOST"), "CS201-LOST", "ocpp2.0.1") as station:
        await station.call(
            event(
                "Ended",
                5,
                "2026-03-01T11:00:00Z",
                transaction_info={"transactionId": "TX-LOST"},
                evse={"id": 2},
                meter_value=[energy("2026-03-01T11:00:00Z", 900.0)],
            ),
            suppress=False,
        )
    stored = await csms.runtime.transactions.get("CS201-LOST", "TX-LOST")
    assert stored is not None
    # never seen Started: it began no later than its only reading (E06/J02; see test_v201_audit)
    assert (stored.evse_id, stored.meter_stop_wh, stored.started_at) == (
        2,
        900.0,
        datetime(2026, 3, 1, 11, 0, tzinfo=UTC),
    )


async def test_charging_needs_and_notifications(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(ChargerRecord("CS201-NEEDS"))
    seen: list[DomainEvent] = []

    async def listen(domain_event: DomainEvent) -> None:
        seen.append(domain_event)

    csms.runtime.service.subscribe(listen)
    async with connected(Charger201, csms.url("CS201-NEEDS"), "CS201-NEEDS", "ocpp2.0.1") as station:
        needs = await station.call(
            call.NotifyEVChargingNeeds(
                evse_id=1,
                charging_needs={
                    "requestedEnergyTransfer": "AC_three_phase",
                    "departureTime": "2026-03-01T17:30:00Z",
                    "acChargingParameters": {
                        "energyAmount": 30000,
                        "evMinCurrent": 6,
                        "evMaxCurrent": 32,
                        "evMaxVoltage": 400,
                    },
                },
            ),
            suppress=False,
        )
        assert needs.status == "Processing"
        await station.call(
            call.FirmwareStatusNotification(status="Downloading", request_id=3), suppress=False
        )
        await station.call(call.LogStatusNotification(status="Uploading", request_id=4), suppress=False)
        await station.call(
            call.SecurityEventNotification(type="TamperDetectionActivated", timestamp="2026-03-01T12:00:00Z"),
            suppress=False,
        )
        transfer = await station.call(
            call.DataTransfer(vendor_id="com.example", data={"a": 1}), suppress=False
        )
        assert transfer.status == "UnknownVendorId"
    state = await csms.runtime.live_state.get("CS201-NEEDS")
    assert state is not None
    kept = state.charging_needs[1]
    assert kept.energy_amount_wh == 30000.0
    assert kept.ev_max_current_a == 32.0
    assert kept.departure_time == datetime(2026, 3, 1, 17, 30, tzinfo=UTC)
    assert (state.firmware_status, state.diagnostics_status) == ("Downloading", "Uploading")
    assert any(
        isinstance(e, SecurityEventReported) and e.event_type == "TamperDetectionActivated" for e in seen
    )


async def test_request_start_stop_and_charging_profile_through_the_command_bus(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(ChargerRecord("CS201-CMD"))
    bus = csms.runtime.commands
    async with connected(Charger201, csms.url("CS201-CMD"), "CS201-CMD", "ocpp2.0.1") as station:
        started = await bus.remote_start("CS201-CMD", 1, IdToken("APP-USER", "Central"), remote_start_id=11)
        assert started.outcome is CommandOutcome.ACCEPTED
        action, request = await station.received.get()
        assert action == "RequestStartTransaction"
        assert request["id_token"] == {"id_token": "APP-USER", "type": "Central"}
        assert (request["remote_start_id"], request["evse_id"]) == (11, 1)

        stopped = await bus.remote_stop("CS201-CMD", "TX-201")
        assert stopped.accepted
        assert await station.received.get() == ("RequestStopTransaction", {"transaction_id": "TX-201"})

        station_evse = Evse("CS201-CMD", Connection.THREE_PHASE, 230.0, 32.0)
        schedule = Schedule(
            station_id="ST",
            start=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
            period_s=900,
            evse_ids=("CS201-CMD",),
            session_ids=(),
            current_a=np.full((1, 4), 32.0),
            power_kw=np.full((1, 4), 22.08),
            status=SolveStatus.OPTIMAL,
            objective=ObjectiveBreakdown(0.0, 0.0, 0.0, 22.08, 1.0),
            solve_time_s=0.0,
        )
        profile = ChargingProfile.station_max(schedule, station_evse, profile_id=9)
        assert (await bus.set_charging_profile("CS201-CMD", 0, profile)).accepted
        action, request = await station.received.get()
        assert action == "SetChargingProfile"
        assert request["evse_id"] == 0
        sent = request["charging_profile"]
        assert sent["charging_profile_purpose"] == "ChargingStationMaxProfile"
        assert sent["charging_schedule"][0]["charging_schedule_period"] == [
            {"start_period": 0, "limit": 32.0, "number_phases": 3}
        ]
        assert sent["charging_schedule"][0]["duration"] == 3600

        unsupported = await bus.change_configuration("CS201-CMD", "HeartbeatInterval", "60")
        assert unsupported.outcome is CommandOutcome.NOT_SUPPORTED_BY_VERSION


async def test_a_pending_station_may_only_boot(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(
        ChargerRecord("CS201-PEND", registration_status=RegistrationStatus.PENDING)
    )
    boot = call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")
    async with connected(Charger201, csms.url("CS201-PEND"), "CS201-PEND", "ocpp2.0.1") as station:
        # Reconnected without booting: not blocked.
        assert (await station.call(call.Heartbeat(), suppress=False)).current_time
        answer = await station.call(boot, suppress=False)
        assert (answer.status, answer.interval) == ("Pending", 60)
        with pytest.raises(SecurityError):
            await station.call(call.Heartbeat(), suppress=False)
        await csms.runtime.chargers.save(ChargerRecord("CS201-PEND"))
        assert (await station.call(boot, suppress=False)).status == "Accepted"
        assert (await station.call(call.Heartbeat(), suppress=False)).current_time
