"""An OCPP 1.6J conformance audit against the real server on 127.0.0.1 (PostgreSQL, free port).

Each test sends what a 1.6 charge point or a conformance test tool may send, raw where an ``ocpp``
ChargePoint would not, and names the rule it checks: the OCPP 1.6 specification (edition 2,
section numbers as there) and OCPP-J 1.6 (the JSON binding). Frame-level rules already pinned by
``test_frame_conformance`` are not repeated; these are the ones the audit found broken or
unpinned: sampled values without a unit, values that are not numbers, a stop whose transaction
data cannot be read, text that cannot be stored, idTagInfo per verdict, transaction ids, offline
deliveries, connector 0, vendor data, URL-encoded identities and the TxProfile on the wire.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import numpy as np
import pytest
from ocpp.v16 import call as call16

from csms.commands import ChargingProfile, CommandOutcome
from csms.domain.events import Authorization, AuthorizationStatus, IdToken, RegistrationStatus
from csms.protocol.framing import CALL
from csms.protocol.schemas import validate_payload
from csms.protocol.versions import OcppVersion
from csms.storage.chargers import ChargerRecord
from optimizer.types import Connection, Evse, ObjectiveBreakdown, Schedule, SolveStatus
from tests.csms.chargers import Charger16, connected
from tests.csms.conftest import RunningCsms
from tests.csms.test_frame_conformance import (
    assert_call_error,
    call_from_csms,
    exchange,
    raw_socket,
    send_call,
    still_serves,
)

pytestmark = pytest.mark.asyncio

V16 = "ocpp1.6"
V201 = "ocpp2.0.1"
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}
OCPP_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def start(connector_id: int = 1, id_tag: str = "TAG", *, at: str = "2026-03-01T10:00:00Z") -> dict[str, Any]:
    return {"connectorId": connector_id, "idTag": id_tag, "meterStart": 1000, "timestamp": at}


def meter_values(transaction_id: int, at: str, *sampled: dict[str, Any]) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": at, "sampledValue": list(sampled)}],
    }


# --- MeterValues: measurands, units, phases, contexts (1.6 §4.7, §7.45 SampledValue) ----------------


async def test_sampled_values_without_a_unit_are_read_in_their_measurands_unit(csms: RunningCsms) -> None:
    # §7.45: unit "Default = Wh if the (default) measurand is an Energy type"; for the others the spec
    # gives no default. A power or current reading without a unit was stored as "Wh", so billing's
    # power and current readings (which keep W/kW and A only) never saw it.
    async with raw_socket(csms, "CP-UNITS", V16) as charger:
        transaction_id = (await send_call(charger, "s1", "StartTransaction", start()))[2]["transactionId"]
        sampled = [
            {"value": "1234.5"},  # the default measurand, Energy.Active.Import.Register: Wh
            {"value": "2.5", "unit": "kWh", "measurand": "Energy.Active.Export.Register"},
            {"value": "7200", "measurand": "Power.Active.Import"},
            {"value": "3.7", "unit": "kW", "measurand": "Power.Offered"},
            {"value": "16.1", "measurand": "Current.Import", "phase": "L1"},
            {"value": "15.9", "unit": "A", "measurand": "Current.Import", "phase": "L2"},
            {"value": "230.4", "measurand": "Voltage", "phase": "L1-N"},
            {"value": "120", "measurand": "Energy.Reactive.Import.Register"},
            {"value": "55", "measurand": "SoC", "location": "EV"},
            {"value": "0.98", "measurand": "Power.Factor"},
            {
                "value": "31",
                "unit": "Celcius",
                "measurand": "Temperature",
                "location": "Body",
            },  # 1.6's spelling
            {"value": "signed:abcdef", "format": "SignedData", "context": "Sample.Clock"},  # not a reading
        ]
        answer = await send_call(
            charger, "m1", "MeterValues", meter_values(transaction_id, "2026-03-01T10:05:00Z", *sampled)
        )
        assert answer == [3, "m1", {}]
    samples = await csms.runtime.transactions.samples("CP-UNITS", str(transaction_id))
    stored = {(s.measurand, s.phase): (s.value, s.unit) for s in samples}
    assert stored == {
        ("Energy.Active.Import.Register", None): (1234.5, "Wh"),
        ("Energy.Active.Export.Register", None): (2500.0, "Wh"),
        ("Power.Active.Import", None): (7200.0, "W"),
        ("Power.Offered", None): (3700.0, "W"),
        ("Current.Import", "L1"): (16.1, "A"),
        ("Current.Import", "L2"): (15.9, "A"),
        ("Voltage", "L1-N"): (230.4, "V"),
        ("Energy.Reactive.Import.Register", None): (120.0, "varh"),
        ("SoC", None): (55.0, "Percent"),
        ("Power.Factor", None): (0.98, ""),
        ("Temperature", None): (31.0, "Celsius"),
    }


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-inf", "12,5", ""])
async def test_a_sampled_value_that_is_not_a_finite_number_is_a_property_constraint_violation(
    csms: RunningCsms, value: str
) -> None:
    # §7.45: a Raw value is a decimal number. "NaN" and "Infinity" parsed as floats and were stored,
    # where every sum over the readings (energy, billing) then became NaN.
    async with raw_socket(csms, "CP-NAN", V16) as charger:
        payload = meter_values(1, "2026-03-01T10:05:00Z", {"value": value})
        assert_call_error(
            await send_call(charger, "m1", "MeterValues", payload), "m1", "PropertyConstraintViolation"
        )
        await still_serves(charger)
    async with csms.runtime.database.pool.acquire() as connection:
        stored = await connection.fetchval("SELECT count(*) FROM meter_samples WHERE charger_id = 'CP-NAN'")
    assert stored == 0


# --- StopTransaction (1.6 §4.10, §6.49) --------------------------------------------------------------


async def test_a_stop_whose_transaction_data_cannot_be_read_still_ends_the_transaction(
    csms: RunningCsms,
) -> None:
    # §4.10: the Central System cannot prevent a transaction from stopping. A CALLERROR (it was
    # PropertyConstraintViolation for one bad value) makes the charger retry and then drop the stop
    # (TransactionMessageAttempts, §9.1): the transaction stayed open here for good. The readable
    # data is kept, the rest left out.
    async with raw_socket(csms, "CP-BADSTOP", V16) as charger:
        transaction_id = (await send_call(charger, "s1", "StartTransaction", start()))[2]["transactionId"]
        stop = {
            "transactionId": transaction_id,
            "meterStop": 4000,
            "timestamp": "2026-03-01T10:30:00Z",
            "idTag": "TAG",
            "reason": "EVDisconnected",
            "transactionData": [
                {
                    "timestamp": "2026-03-01T10:00:00Z",
                    "sampledValue": [{"value": "1000", "context": "Transaction.Begin"}],
                },
                {"timestamp": "not a time", "sampledValue": [{"value": "2000"}]},
                {
                    "timestamp": "2026-03-01T10:30:00Z",
                    "sampledValue": [
                        {"value": "n/a", "measurand": "Power.Active.Import"},
                        {"value": "4.0", "unit": "kWh", "context": "Transaction.End"},
                    ],
                },
            ],
        }
        assert await send_call(charger, "e1", "StopTransaction", stop) == [
            3,
            "e1",
            {"idTagInfo": {"status": "Accepted"}},
        ]
    stored = await csms.runtime.transactions.get("CP-BADSTOP", str(transaction_id))
    assert stored is not None
    assert (stored.ended_at, stored.meter_stop_wh, stored.stop_reason) == (
        datetime(2026, 3, 1, 10, 30, tzinfo=UTC),
        4000.0,
        "EVDisconnected",
    )
    samples = await csms.runtime.transactions.samples("CP-BADSTOP", str(transaction_id))
    assert [(s.value, s.context) for s in samples] == [
        (1000.0, "Transaction.Begin"),
        (4000.0, "Transaction.End"),
    ]
    state = await csms.runtime.live_state.get("CP-BADSTOP")
    assert state is not None
    assert state.active_transactions == {}


async def test_a_stop_for_a_transaction_we_do_not_know_is_answered_and_ends_nothing_else(
    csms: RunningCsms,
) -> None:
    # §4.10 / §6.50: the Central System answers every StopTransaction (idTagInfo only with an idTag);
    # an unknown id (a charger's memory reset, another central system's id) must not close the
    # transaction running on the connector.
    async with raw_socket(csms, "CP-UNKNOWNSTOP", V16) as charger:
        running = (await send_call(charger, "s1", "StartTransaction", start()))[2]["transactionId"]
        unknown = running + 100_000
        stop = {"transactionId": unknown, "meterStop": 10, "timestamp": "2026-03-01T11:00:00Z"}
        assert await send_call(charger, "e1", "StopTransaction", stop) == [3, "e1", {}]
        tagged = await send_call(charger, "e2", "StopTransaction", {**stop, "idTag": "OTHER"})
        assert tagged == [3, "e2", {"idTagInfo": {"status": "Accepted"}}]
    open_one = await csms.runtime.transactions.get("CP-UNKNOWNSTOP", str(running))
    assert open_one is not None
    assert open_one.ended_at is None
    assert await csms.runtime.transactions.get("CP-UNKNOWNSTOP", str(unknown)) is None
    state = await csms.runtime.live_state.get("CP-UNKNOWNSTOP")
    assert state is not None
    assert state.active_transactions == {1: str(running)}


# --- StartTransaction (1.6 §4.8, §6.45, §6.46) -------------------------------------------------------


@pytest.mark.parametrize("connector_id", [0, -1])
async def test_a_start_on_connector_0_is_a_property_constraint_violation(
    csms: RunningCsms, connector_id: int
) -> None:
    # §6.45: StartTransaction.req connectorId "> 0" (the JSON schema only says integer). It was
    # stored as a transaction of "EVSE 0", the whole charge point.
    async with raw_socket(csms, "CP-CONN0", V16) as charger:
        answer = await send_call(charger, "s1", "StartTransaction", start(connector_id))
        assert_call_error(answer, "s1", "PropertyConstraintViolation")
        assert answer[4]["path"] == "connectorId"
        await still_serves(charger)
    async with csms.runtime.database.pool.acquire() as connection:
        stored = await connection.fetchval("SELECT count(*) FROM transactions WHERE charger_id = 'CP-CONN0'")
    assert stored == 0


async def test_transaction_ids_are_unique_per_start_and_kept_for_a_replay(csms: RunningCsms) -> None:
    # §6.46 transactionId: the id the Central System assigns; two chargers starting at the same second,
    # and two connectors of one charger, get four ids; a StartTransaction sent again (its answer lost)
    # gets its first id back.
    ids: list[int] = []
    for charger_id in ("CP-IDS-A", "CP-IDS-B"):
        async with raw_socket(csms, charger_id, V16) as charger:
            for connector_id in (1, 2):
                answer = await send_call(charger, f"s{connector_id}", "StartTransaction", start(connector_id))
                ids.append(answer[2]["transactionId"])
            again = await send_call(charger, "s1-again", "StartTransaction", start(1))
            assert again[2]["transactionId"] == ids[-2]
    assert len(set(ids)) == 4
    assert all(isinstance(i, int) and 0 < i < 2**31 for i in ids)


class VerdictByTag:
    """An authorizer whose verdict is named by the id tag (``BLOCKED-1`` is Blocked)."""

    async def authorize(self, charger_id: str, id_token: IdToken) -> Authorization:
        return Authorization(AuthorizationStatus[id_token.value.rsplit("-", 1)[0]])


@pytest.mark.parametrize(
    ("verdict", "wire"),
    [
        (AuthorizationStatus.ACCEPTED, "Accepted"),
        (AuthorizationStatus.BLOCKED, "Blocked"),
        (AuthorizationStatus.EXPIRED, "Expired"),
        (AuthorizationStatus.INVALID, "Invalid"),
        (AuthorizationStatus.CONCURRENT_TX, "ConcurrentTx"),
        (AuthorizationStatus.UNKNOWN, "Invalid"),  # 2.0.1 names 1.6 lacks (§7.2) become Invalid
        (AuthorizationStatus.NO_CREDIT, "Invalid"),
    ],
)
async def test_id_tag_info_carries_the_verdict_and_a_refused_start_still_gets_its_transaction(
    csms: RunningCsms, verdict: AuthorizationStatus, wire: str
) -> None:
    # §4.8: the Central System MUST check the idTag of a StartTransaction (it may have been accepted
    # from a stale cache) and answers with a transactionId whatever the verdict: the charger stops
    # it (StopTransactionOnInvalidId) and still needs the id for its StopTransaction, which ends the
    # transaction whatever the verdict on the stopping tag (§4.10).
    csms.runtime.service.use_authorizer(VerdictByTag())
    tag = f"{verdict.name}-1"
    async with raw_socket(csms, f"CP-VERDICT-{verdict.name}"[:48], V16) as charger:
        assert await send_call(charger, "a1", "Authorize", {"idTag": tag}) == [
            3,
            "a1",
            {"idTagInfo": {"status": wire}},
        ]
        started = await send_call(charger, "s1", "StartTransaction", start(1, tag))
        assert started[2]["idTagInfo"] == {"status": wire}
        transaction_id = started[2]["transactionId"]
        stop = {"transactionId": transaction_id, "meterStop": 1000, "timestamp": "2026-03-01T10:01:00Z"}
        stopped = await send_call(
            charger, "e1", "StopTransaction", {**stop, "idTag": tag, "reason": "DeAuthorized"}
        )
        assert stopped == [3, "e1", {"idTagInfo": {"status": wire}}]
    stored = await csms.runtime.transactions.get(f"CP-VERDICT-{verdict.name}"[:48], str(transaction_id))
    assert stored is not None
    assert (stored.id_token, stored.stop_reason) == (tag, "DeAuthorized")
    assert stored.ended_at == datetime(2026, 3, 1, 10, 1, tzinfo=UTC)


# --- messages queued while offline (1.6 §4.8 note, §4.10, §4.7) ----------------------------------------


async def test_messages_queued_offline_keep_their_own_timestamps(csms: RunningCsms) -> None:
    # A charger offline keeps transaction messages and sends them on reconnect with the times they
    # happened: the transaction is stored with those times, not the time they arrived.
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    stamp = {n: (began + timedelta(minutes=n)).isoformat().replace("+00:00", "Z") for n in (0, 15, 45)}
    async with raw_socket(csms, "CP-OFFLINE", V16) as charger:
        boot = await send_call(charger, "b1", "BootNotification", BOOT)
        assert boot[2]["status"] == "Accepted"
        transaction_id = (await send_call(charger, "s1", "StartTransaction", start(at=stamp[0])))[2][
            "transactionId"
        ]
        reading = {"value": "1500", "context": "Sample.Periodic"}
        assert await send_call(
            charger, "m1", "MeterValues", meter_values(transaction_id, stamp[15], reading)
        ) == [
            3,
            "m1",
            {},
        ]
        stop = {"transactionId": transaction_id, "meterStop": 3000, "timestamp": stamp[45], "reason": "Local"}
        assert await send_call(charger, "e1", "StopTransaction", stop) == [3, "e1", {}]
    stored = await csms.runtime.transactions.get("CP-OFFLINE", str(transaction_id))
    assert stored is not None
    assert (stored.started_at, stored.ended_at) == (began, began + timedelta(minutes=45))
    assert (stored.meter_start_wh, stored.meter_stop_wh) == (1000.0, 3000.0)
    samples = await csms.runtime.transactions.samples("CP-OFFLINE", str(transaction_id))
    assert [(s.sampled_at, s.value) for s in samples] == [(began + timedelta(minutes=15), 1500.0)]
    state = await csms.runtime.live_state.get("CP-OFFLINE")
    assert state is not None
    assert state.active_transactions == {}


# --- provisioning: boot, heartbeat, status (1.6 §4.2, §4.6, §4.9) -------------------------------------


@pytest.mark.parametrize(
    ("registration", "interval_s"),
    [(RegistrationStatus.ACCEPTED, 300), (RegistrationStatus.PENDING, 60), (RegistrationStatus.REJECTED, 60)],
)
async def test_boot_and_heartbeat_answer_utc_times_and_the_intervals(
    csms: RunningCsms, registration: RegistrationStatus, interval_s: int
) -> None:
    # §6.4: Accepted: interval is the heartbeat interval; otherwise the minimum wait before the next
    # BootNotification (> 0: zero lets the charger choose). §6.30/§6.4 currentTime: UTC, "Z".
    before = datetime.now(UTC) - timedelta(seconds=1)
    async with raw_socket(csms, f"CP-BOOT-{registration.name}", V16, registration=registration) as charger:
        boot = await send_call(charger, "b1", "BootNotification", BOOT)
        assert boot[2]["status"] == registration.value
        assert boot[2]["interval"] == interval_s
        assert OCPP_TIME.match(boot[2]["currentTime"]), boot
        told = datetime.fromisoformat(boot[2]["currentTime"].replace("Z", "+00:00"))
        assert before <= told <= datetime.now(UTC) + timedelta(seconds=1)
        if registration is not RegistrationStatus.REJECTED:
            heartbeat = await send_call(charger, "h1", "Heartbeat", {})
            assert OCPP_TIME.match(heartbeat[2]["currentTime"]), heartbeat


async def test_status_of_connector_0_and_of_a_connector_are_kept_apart(csms: RunningCsms) -> None:
    # §4.9: connectorId 0 is the charge point as a whole (main controller), others are connectors.
    async with raw_socket(csms, "CP-STATUS", V16) as charger:
        whole = {"connectorId": 0, "errorCode": "NoError", "status": "Unavailable"}
        faulted = {
            "connectorId": 2,
            "errorCode": "GroundFailure",
            "status": "Faulted",
            "timestamp": "2026-03-01T09:59:00Z",
            "info": "RCD tripped",
            "vendorErrorCode": "E42",
        }
        assert await send_call(charger, "n0", "StatusNotification", whole) == [3, "n0", {}]
        assert await send_call(charger, "n2", "StatusNotification", faulted) == [3, "n2", {}]
    state = await csms.runtime.live_state.get("CP-STATUS")
    assert state is not None
    assert set(state.connectors) == {(0, 0), (2, 1)}
    assert state.connectors[(0, 0)].ocpp_status == "Unavailable"
    assert state.connectors[(0, 0)].error_code is None
    assert (state.connectors[(2, 1)].ocpp_status, state.connectors[(2, 1)].error_code) == (
        "Faulted",
        "GroundFailure",
    )
    assert state.connectors[(2, 1)].changed_at == datetime(2026, 3, 1, 9, 59, tzinfo=UTC)


async def test_data_transfer_from_a_vendor_we_do_not_know(csms: RunningCsms) -> None:
    # §4.3 / §6.16: "UnknownVendorId" and no data element.
    async with raw_socket(csms, "CP-VENDOR", V16) as charger:
        answer = await send_call(
            charger, "d1", "DataTransfer", {"vendorId": "com.acme", "messageId": "x", "data": "y"}
        )
        assert answer == [3, "d1", {"status": "UnknownVendorId"}]


# --- text that cannot be stored (OCPP-J 1.6 §4.1: UTF-8 JSON) ----------------------------------------

NUL_DATA = json.dumps([2, "d1", "DataTransfer", {"vendorId": "x", "data": "a\u0000b"}])
SURROGATE_TAG = '[2, "a1", "Authorize", {"idTag": "\\ud800"}]'


@pytest.mark.parametrize("version", [V16, V201])
@pytest.mark.parametrize(("frame", "unique_id"), [(NUL_DATA, "d1"), (SURROGATE_TAG, "a1")])
async def test_text_with_nul_or_an_unpaired_surrogate_is_refused_and_the_log_keeps_the_rest(
    csms: RunningCsms, version: str, frame: str, unique_id: str
) -> None:
    # A JSON escape can put NUL (which PostgreSQL text and jsonb cannot hold) or half a surrogate pair
    # (not Unicode: OCPP-J messages are UTF-8) into a string. Such a CALL reached the handlers and the
    # message log: StartTransaction crashed with InternalError, and the log writer lost its whole
    # batch, the other chargers' messages too (an ERROR, which fails this test). Now it is a
    # FormationViolation (2.0.1: FormatViolation) at the edge.
    code = "FormationViolation" if version == V16 else "FormatViolation"
    frame = (
        frame
        if version == V16
        else frame.replace('"Authorize", {"idTag": "\\ud800"}', '"Heartbeat", {"x": "\\ud800"}')
    )
    async with raw_socket(csms, "CP-TEXT", version) as charger:
        await still_serves(charger, "before")
        assert_call_error(await exchange(charger, frame), unique_id, code)
        await still_serves(charger, "after")
        bad_id = json.dumps([2, "h\u0000", "Heartbeat", {}])
        assert_call_error(
            await exchange(charger, bad_id), "-1", "GenericError" if version == V16 else "RpcFrameworkError"
        )
    await csms.runtime.message_log.flush()
    async with csms.runtime.database.pool.acquire() as connection:
        logged = await connection.fetch(
            "SELECT unique_id FROM ocpp_messages WHERE charger_id = 'CP-TEXT' AND message_type_id = 3"
        )
    assert {row["unique_id"] for row in logged} >= {"before", "after"}


async def test_an_answer_with_nul_is_dropped_and_the_command_times_out(csms: RunningCsms) -> None:
    async with raw_socket(csms, "CP-NULANSWER", V16) as charger:
        await still_serves(charger)
        command = asyncio.create_task(
            csms.runtime.commands.get_configuration("CP-NULANSWER", ["X"], timeout_s=0.3)
        )
        answer = [3, {"configurationKey": [{"key": "X", "readonly": True, "value": "a\u0000"}]}]
        _, result = await call_from_csms(charger, command, answer)
        assert result.outcome is CommandOutcome.TIMEOUT
        await still_serves(charger)


# --- the charge point identity in the URL (OCPP-J 1.6 §3.1.1) ---------------------------------------


async def test_a_percent_encoded_identity_is_the_decoded_charge_point(csms: RunningCsms) -> None:
    # The identity is the last path segment; a charger percent-encodes characters outside the URL's
    # unreserved set, and is known by the decoded identity.
    await csms.runtime.chargers.save(ChargerRecord("Ladesäule#1"))
    url = f"ws://127.0.0.1:{csms.port}/ocpp/Lades%C3%A4ule%231"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, protocols=(V16,)) as charger:
        assert (await send_call(charger, "b1", "BootNotification", BOOT))[2]["status"] == "Accepted"
        assert csms.runtime.connected.get("Ladesäule#1") is not None
    record = await csms.runtime.chargers.get("Ladesäule#1")
    assert record is not None
    assert record.vendor == "V"


# --- smart charging: the TxProfile a 1.6 charger receives (1.6 §3.13, §5.16, §6.43) -------------------


async def test_a_tx_profile_reaches_a_16_charger_valid_and_naming_its_transaction(csms: RunningCsms) -> None:
    # §5.16.1 / §7.8: a TxProfile applies to the running transaction, named by transactionId, on a
    # connector > 0, with stackLevel, chargingRateUnit and periods from startPeriod 0; the payload
    # validates against the 1.6 SetChargingProfile schema (limits are multiples of 0.1).
    evse = Evse("CP-TX-1", Connection.THREE_PHASE, 230.0, 32.0, 6.0)
    async with raw_socket(csms, "CP-TXPROFILE", V16) as charger:
        transaction_id = (await send_call(charger, "s1", "StartTransaction", start()))[2]["transactionId"]
        schedule = Schedule(
            station_id="ST",
            start=datetime.now(UTC).replace(microsecond=0),
            period_s=900,
            evse_ids=(evse.evse_id,),
            session_ids=(str(transaction_id),),
            current_a=np.array([[16.0, 12.4, 6.0, 0.0]]),
            power_kw=np.array([[11.0, 8.6, 4.1, 0.0]]),
            status=SolveStatus.OPTIMAL,
            objective=ObjectiveBreakdown(0.0, 0.0, 0.0, 0.0, 1.0),
            solve_time_s=0.0,
        )
        profile = ChargingProfile.tx(schedule, evse, transaction_id=str(transaction_id), profile_id=2001)
        command = asyncio.create_task(csms.runtime.commands.set_charging_profile("CP-TXPROFILE", 1, profile))
        sent, result = await call_from_csms(charger, command, [3, {"status": "Accepted"}])
        assert result.accepted
        assert sent[2] == "SetChargingProfile"
        validate_payload(OcppVersion.V16, CALL, "SetChargingProfile", sent[3], sent[1])
        assert sent[3]["connectorId"] == 1
        wire = sent[3]["csChargingProfiles"]
        assert wire["chargingProfilePurpose"] == "TxProfile"
        assert wire["transactionId"] == transaction_id
        assert wire["stackLevel"] > 0  # above the failsafe TxDefaultProfile at 0
        schedule_wire = wire["chargingSchedule"]
        assert schedule_wire["chargingRateUnit"] in ("A", "W")
        starts = [p["startPeriod"] for p in schedule_wire["chargingSchedulePeriod"]]
        assert starts[0] == 0
        assert starts == sorted(set(starts))
        if wire["chargingProfileKind"] == "Absolute":
            assert OCPP_TIME.match(schedule_wire["startSchedule"]), schedule_wire

        # A 2.0.1 transaction id has no 1.6 form: not sent at all.
        foreign = ChargingProfile.tx(schedule, evse, transaction_id="tx-uuid-1", profile_id=2002)
        refused = await csms.runtime.commands.set_charging_profile("CP-TXPROFILE", 1, foreign)
        assert refused.outcome is CommandOutcome.NOT_SUPPORTED_BY_VERSION
        await still_serves(charger)  # and nothing was sent before its answer


# --- §4.2: what the Central System may send to a charger it answered Pending or Rejected -----------


async def test_no_remote_start_or_stop_goes_to_a_pending_16_charger(csms: RunningCsms) -> None:
    # §4.2: while Pending, RemoteStartTransaction and RemoteStopTransaction are not allowed; other
    # requests (configuration, triggers) are. Once Accepted, the same command goes out.
    charger_id = "CP-AUD-PEND16"
    await csms.runtime.chargers.save(
        ChargerRecord(charger_id, registration_status=RegistrationStatus.PENDING)
    )
    bus = csms.runtime.commands
    async with connected(Charger16, csms.url(charger_id), charger_id, V16) as charger:
        boot = await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        assert boot.status == "Pending"
        start = await bus.remote_start(charger_id, 1, IdToken("APP", "Central"))
        stop = await bus.remote_stop(charger_id, "17")
        assert [(r.action, r.outcome) for r in (start, stop)] == [
            ("RemoteStartTransaction", CommandOutcome.NOT_REGISTERED),
            ("RemoteStopTransaction", CommandOutcome.NOT_REGISTERED),
        ]
        assert charger.received.empty()  # nothing reached it
        reset = await bus.reset(charger_id, hard=False)
        assert (reset.action, reset.status) == ("Reset", "Rejected")  # sent; this charger refuses resets
        action, _ = await asyncio.wait_for(charger.received.get(), 5)
        assert action == "Reset"

        await csms.runtime.chargers.save(ChargerRecord(charger_id))
        boot = await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        assert boot.status == "Accepted"
        start = await bus.remote_start(charger_id, 1, IdToken("APP", "Central"))
        assert start.outcome is CommandOutcome.ACCEPTED
        action, _ = await asyncio.wait_for(charger.received.get(), 5)
        assert action == "RemoteStartTransaction"
