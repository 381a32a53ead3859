"""End to end with an OCPP 1.6 charger (the ``ocpp`` package) against the real server and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ocpp.v16 import call

from csms.commands import ChargingProfile, CommandOutcome
from csms.domain.events import ConnectorStatus, IdToken, RegistrationStatus
from csms.storage.chargers import ChargerRecord, ConnectorSpec
from optimizer.types import Connection, Evse, RateUnit
from tests.csms.chargers import Charger16, connected
from tests.csms.conftest import RunningCsms

pytestmark = pytest.mark.asyncio


async def register(csms: RunningCsms, charger_id: str, **fields: object) -> None:
    record = ChargerRecord(
        charger_id=charger_id,
        station_id="ST-1",
        cpo_id="CPO-1",
        latitude_deg=52.37,
        longitude_deg=4.89,
        connectors=(ConnectorSpec(1, 1, "Type2", 22.0),),
        **fields,  # type: ignore[arg-type]
    )
    await csms.runtime.chargers.save(record)


async def test_boot_heartbeat_status_authorize(csms: RunningCsms) -> None:
    await register(csms, "CP16-A")
    async with connected(Charger16, csms.url("CP16-A"), "CP16-A", "ocpp1.6") as charger:
        boot = await charger.call(
            call.BootNotification(
                charge_point_model="Wallbox", charge_point_vendor="Acme", firmware_version="1.2"
            ),
            suppress=False,
        )
        assert boot.status == "Accepted"
        assert boot.interval == 300
        heartbeat = await charger.call(call.Heartbeat(), suppress=False)
        assert heartbeat.current_time.endswith("Z")
        await charger.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"), suppress=False
        )
        authorize = await charger.call(call.Authorize(id_tag="TAG-1"), suppress=False)
        assert authorize.id_tag_info["status"] == "Accepted"

    state = await csms.runtime.live_state.get("CP16-A")
    assert state is not None
    assert state.registration is RegistrationStatus.ACCEPTED
    assert state.connectors[(1, 1)].status is ConnectorStatus.OCCUPIED
    assert state.connectors[(1, 1)].ocpp_status == "Preparing"
    assert state.last_heartbeat_at is not None
    record = await csms.runtime.chargers.get("CP16-A")
    assert record is not None
    assert (record.vendor, record.model, record.firmware_version) == ("Acme", "Wallbox", "1.2")
    assert record.connectors == (ConnectorSpec(1, 1, "Type2", 22.0),)


async def test_pending_registration_answers_pending_with_retry_interval(csms: RunningCsms) -> None:
    await register(csms, "CP16-PENDING", registration_status=RegistrationStatus.PENDING)
    async with connected(Charger16, csms.url("CP16-PENDING"), "CP16-PENDING", "ocpp1.6") as charger:
        boot = await charger.call(
            call.BootNotification(charge_point_model="M", charge_point_vendor="V"), suppress=False
        )
    assert (boot.status, boot.interval) == ("Pending", 60)


async def test_full_transaction_is_persisted_and_replays_are_idempotent(csms: RunningCsms) -> None:
    await register(csms, "CP16-TX")
    started_at = "2026-03-01T10:00:00Z"
    start = call.StartTransaction(connector_id=1, id_tag="TAG-9", meter_start=1000, timestamp=started_at)
    async with connected(Charger16, csms.url("CP16-TX"), "CP16-TX", "ocpp1.6") as charger:
        first = await charger.call(start, suppress=False)
        assert first.id_tag_info["status"] == "Accepted"
        transaction_id = first.transaction_id
        # The same StartTransaction again (same unique id, then a new one): the same transaction.
        replay = await charger.call(start, suppress=False, unique_id="replayed-start")
        again = await charger.call(start, suppress=False, unique_id="replayed-start")
        assert replay.transaction_id == again.transaction_id == transaction_id
        await charger.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=transaction_id,
                meter_value=[
                    {
                        "timestamp": "2026-03-01T10:15:00Z",
                        "sampledValue": [
                            {"value": "1.5", "unit": "kWh", "measurand": "Energy.Active.Import.Register"},
                            {"value": "7200", "unit": "W", "measurand": "Power.Active.Import"},
                        ],
                    }
                ],
            ),
            suppress=False,
        )
        stop = await charger.call(
            call.StopTransaction(
                meter_stop=4000,
                timestamp="2026-03-01T10:30:00Z",
                transaction_id=transaction_id,
                id_tag="TAG-9",
                reason="EVDisconnected",
                transaction_data=[
                    {
                        "timestamp": "2026-03-01T10:30:00Z",
                        "sampledValue": [{"value": "4000", "context": "Transaction.End"}],
                    }
                ],
            ),
            suppress=False,
        )
        assert stop.id_tag_info["status"] == "Accepted"

    stored = await csms.runtime.transactions.get("CP16-TX", str(transaction_id))
    assert stored is not None
    assert stored.started_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert stored.ended_at == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert (stored.meter_start_wh, stored.meter_stop_wh, stored.stop_reason) == (
        1000.0,
        4000.0,
        "EVDisconnected",
    )
    samples = await csms.runtime.transactions.samples("CP16-TX", str(transaction_id))
    assert [(s.measurand, s.value, s.unit) for s in samples] == [
        ("Energy.Active.Import.Register", 1500.0, "Wh"),
        ("Power.Active.Import", 7200.0, "W"),
        ("Energy.Active.Import.Register", 4000.0, "Wh"),
    ]
    async with csms.runtime.database.pool.acquire() as connection:
        count = await connection.fetchval("SELECT count(*) FROM transactions WHERE charger_id = 'CP16-TX'")
    assert count == 1
    state = await csms.runtime.live_state.get("CP16-TX")
    assert state is not None
    assert state.active_transactions == {}


async def test_message_log_records_both_directions(csms: RunningCsms) -> None:
    await register(csms, "CP16-LOG")
    async with connected(Charger16, csms.url("CP16-LOG"), "CP16-LOG", "ocpp1.6") as charger:
        await charger.call(call.Heartbeat(), suppress=False, unique_id="hb-1")
    await csms.runtime.message_log.flush()
    async with csms.runtime.database.pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT direction, message_type_id, action, payload FROM ocpp_messages "
            "WHERE charger_id = 'CP16-LOG' AND unique_id = 'hb-1' ORDER BY id"
        )
    assert [(r["direction"], r["message_type_id"], r["action"]) for r in rows] == [
        ("in", 2, "Heartbeat"),
        ("out", 3, "Heartbeat"),
    ]
    assert rows[0]["payload"] == {}
    assert "currentTime" in rows[1]["payload"]


async def test_remote_start_stop_and_charging_profile_through_the_command_bus(csms: RunningCsms) -> None:
    await register(csms, "CP16-CMD")
    bus = csms.runtime.commands
    async with connected(Charger16, csms.url("CP16-CMD"), "CP16-CMD", "ocpp1.6") as charger:
        started = await bus.remote_start("CP16-CMD", 1, IdToken("TAG-R"))
        assert started.outcome is CommandOutcome.ACCEPTED
        assert started.status == "Accepted"
        assert await charger.received.get() == (
            "RemoteStartTransaction",
            {"connector_id": 1, "id_tag": "TAG-R"},
        )

        stopped = await bus.remote_stop("CP16-CMD", "42")
        assert stopped.accepted
        assert await charger.received.get() == ("RemoteStopTransaction", {"transaction_id": 42})

        evse = Evse("CP16-CMD-1", Connection.THREE_PHASE, 230.0, 32.0, rate_unit=RateUnit.WATT, step=100.0)
        profile = ChargingProfile.failsafe(evse, limit_a=16.0, profile_id=7)
        result = await bus.set_charging_profile("CP16-CMD", 1, profile)
        assert result.accepted
        action, request = await charger.received.get()
        assert action == "SetChargingProfile"
        assert request["connector_id"] == 1
        sent = request["cs_charging_profiles"]
        assert sent["charging_profile_id"] == 7
        assert sent["charging_profile_purpose"] == "TxDefaultProfile"
        assert sent["charging_profile_kind"] == "Relative"
        assert [
            (p["start_period"], float(p["limit"]))
            for p in sent["charging_schedule"]["charging_schedule_period"]
        ] == [(0, 11000.0)]

        reset = await bus.reset("CP16-CMD", hard=False)
        assert (reset.outcome, reset.status) == (CommandOutcome.REJECTED, "Rejected")
        unsupported = await bus.set_variables("CP16-CMD", [])
        assert unsupported.outcome is CommandOutcome.NOT_SUPPORTED_BY_VERSION
        # The simulated charger has no handler for UnlockConnector: it answers with a CALLERROR.
        unlock = await bus.unlock_connector("CP16-CMD", 1)
        assert unlock.outcome is CommandOutcome.CALL_ERROR
        assert unlock.error_code is not None

    gone = await bus.remote_stop("CP16-CMD", "42")
    assert gone.outcome is CommandOutcome.NOT_CONNECTED
