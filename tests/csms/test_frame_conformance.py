"""OCPP-J conformance at the frame and message level, against the real server on 127.0.0.1.

Chargers and test tools we do not control connect to the CSMS, so each test sends what they may
send, raw where no ``ocpp`` ChargePoint would, and names the rule it checks: OCPP-J 1.6 (the
``ocpp-j-1.6`` specification and its errata), OCPP 2.0.1 Part 4 (JSON over WebSocket), the 2.0.1
use cases B01-B03 and the OCA test tool's cases (OCTT ``TC_B_..._CSMS``). Where the specification
leaves the choice to the CSMS, the test pins ours and says so.

A frame that must not be answered is followed by a Heartbeat: the server handles a connection's
frames in order, so the Heartbeat's answer arriving next shows that nothing was sent in between.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from ocpp.v201 import call as call201

from csms.commands import CommandOutcome
from csms.domain.events import IdToken, RegistrationStatus
from csms.protocol.connection import CLOSE_MESSAGE_TOO_BIG, CLOSE_POLICY_VIOLATION
from csms.storage.chargers import ChargerRecord
from tests.csms.chargers import Charger201, connected
from tests.csms.conftest import RunningCsms
from tests.csms.test_server import handshake_status

pytestmark = pytest.mark.asyncio

V16 = "ocpp1.6"
V201 = "ocpp2.0.1"
VERSIONS = [V16, V201]

# The CALLERROR codes that differ between the versions (1.6J §4.2.3 table 7 keeps its historic
# spellings, errata §5; 2.0.1 Part 4 §4.3 adds RpcFrameworkError, which 1.6 answers as GenericError).
RPC_FRAMEWORK = {V16: "GenericError", V201: "RpcFrameworkError"}
FORMAT = {V16: "FormationViolation", V201: "FormatViolation"}
OCCURRENCE = {V16: "OccurenceConstraintViolation", V201: "OccurrenceConstraintViolation"}

BOOT: dict[str, dict[str, Any]] = {
    V16: {"chargePointVendor": "V", "chargePointModel": "M"},
    V201: {"reason": "PowerUp", "chargingStation": {"vendorName": "V", "model": "M"}},
}
STATUS: dict[str, dict[str, Any]] = {
    V16: {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    V201: {
        "timestamp": "2026-01-01T00:00:00Z",
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 1,
    },
}


@asynccontextmanager
async def raw_socket(
    csms: RunningCsms,
    charger_id: str,
    subprotocol: str,
    *,
    registration: RegistrationStatus = RegistrationStatus.ACCEPTED,
    **ws_options: Any,
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A registered charger's bare WebSocket, for frames an ``ocpp`` ChargePoint would never send."""
    await csms.runtime.chargers.save(ChargerRecord(charger_id, registration_status=registration))
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(csms.url(charger_id), protocols=(subprotocol,), **ws_options) as websocket,
    ):
        yield websocket


async def receive_json(websocket: aiohttp.ClientWebSocketResponse) -> list[Any]:
    """The next OCPP-J frame (pings answered, pongs skipped on a socket without autoping)."""
    while True:
        message = await websocket.receive(timeout=5)
        if message.type is aiohttp.WSMsgType.PING:
            await websocket.pong(message.data)
        elif message.type is not aiohttp.WSMsgType.PONG:
            break
    assert message.type is aiohttp.WSMsgType.TEXT, message
    frame: list[Any] = json.loads(message.data)
    return frame


async def exchange(websocket: aiohttp.ClientWebSocketResponse, frame: str) -> list[Any]:
    await websocket.send_str(frame)
    return await receive_json(websocket)


async def send_call(
    websocket: aiohttp.ClientWebSocketResponse, unique_id: str, action: str, payload: dict[str, Any]
) -> list[Any]:
    return await exchange(websocket, json.dumps([2, unique_id, action, payload]))


async def still_serves(websocket: aiohttp.ClientWebSocketResponse, unique_id: str = "alive") -> None:
    """The connection is up and nothing was sent since the last frame read (answers come in order)."""
    answer = await send_call(websocket, unique_id, "Heartbeat", {})
    assert answer[:2] == [3, unique_id], answer


def assert_call_error(answer: list[Any], unique_id: str, code: str) -> None:
    """``[4, unique_id, code, description, {details}]`` as OCPP-J prescribes (description <= 255)."""
    assert answer[:3] == [4, unique_id, code], answer
    assert len(answer) == 5, answer
    assert isinstance(answer[3], str)
    assert len(answer[3]) <= 255
    assert isinstance(answer[4], dict)


async def call_from_csms(
    websocket: aiohttp.ClientWebSocketResponse, command: asyncio.Task[Any], answer: list[Any]
) -> tuple[list[Any], Any]:
    """Read the CALL ``command`` sends, reply ``answer`` with the CALL's id put in, return both ends."""
    sent = await receive_json(websocket)
    assert sent[0] == 2, sent
    await websocket.send_str(json.dumps([answer[0], sent[1], *answer[1:]]))
    return sent, await command


# --- subprotocol negotiation (OCPP-J 1.6 §3.1.2, 2.0.1 Part 4 §3.1.2) -----------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        *[((V16,), V16), ((V201,), V201), ((V16, V201), V16), ((V201, V16), V201)],
        (("ocpp0.1", V201), V201),  # OCTT TC_B_58_CSMS steps 3-4
        (("ocpp1.5", "ocpp2.1", V16), V16),
    ],
)
async def test_the_server_selects_a_version_it_speaks_and_then_speaks_it(
    csms: RunningCsms, offered: tuple[str, ...], chosen: str
) -> None:
    # Among several supported versions the spec lets the server choose; we take the client's order
    # (RFC 6455 §4.1: the offered subprotocols are "ordered by preference").
    await csms.runtime.chargers.save(ChargerRecord("CP-NEGO"))
    async with aiohttp.ClientSession() as http, http.ws_connect(csms.url("CP-NEGO"), protocols=offered) as ws:
        assert ws.protocol == chosen
        answer = await send_call(ws, "b1", "BootNotification", BOOT[chosen])
        assert answer[:2] == [3, "b1"], answer
        assert answer[2]["status"] == "Accepted"


@pytest.mark.parametrize("offered", [(), ("ocpp0.1",), ("ocpp1.5",), ("ocpp2.1",), ("ocpp1.6j",)])
async def test_a_charger_offering_no_version_we_speak_is_refused_before_the_upgrade(
    csms: RunningCsms, offered: tuple[str, ...]
) -> None:
    # 2.0.1 Part 4 §3.1.2, OCTT TC_B_58_CSMS steps 1-2: rejected, NOT upgraded. OCPP-J 1.6 §3.1.2
    # would complete the handshake without a subprotocol and close at once; the charger ends up
    # unconnected either way, and an unknown name does not tell which version's rule applies.
    await csms.runtime.chargers.save(ChargerRecord("CP-NOPROTO"))
    assert await handshake_status(csms.url("CP-NOPROTO"), offered) == 400


async def test_websocket_compression_is_accepted_from_201_stations_only(csms: RunningCsms) -> None:
    # 2.0.1 Part 4 §3.3: the CSMS SHALL support RFC 7692; OCPP-J 1.6 §5.1 recommends no compression.
    async with raw_socket(csms, "CP-DEFLATE", V201, compress=15) as station:
        assert station.compress == 15
        await still_serves(station)
    async with raw_socket(csms, "CP-DEFLATE", V16, compress=15) as charger:
        assert charger.compress == 0
        await still_serves(charger)


@pytest.mark.csms_settings(websocket_compression=False)
async def test_an_operator_may_turn_compression_off(csms: RunningCsms) -> None:
    # for memory per connection at scale (CsmsSettings.websocket_compression): the offer is declined
    async with raw_socket(csms, "CP-PLAIN", V201, compress=15) as station:
        assert station.compress == 0
        await still_serves(station)


# --- frames that are not OCPP-J, or whose message id cannot be read ---------------------------------

UNREADABLE = ["this is not json", '[2, "x", ', '{"not": "an array"}', "42", '"text"', "null", "[]", "[2]"]
UNREADABLE += ['[2, 17, "Heartbeat", {}]', '[2, null, "Heartbeat", {}]', '[2, "", "Heartbeat", {}]']  # ids


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("frame", UNREADABLE)
async def test_a_frame_whose_message_id_cannot_be_read_is_answered_with_id_minus_one(
    csms: RunningCsms, version: str, frame: str
) -> None:
    # 2.0.1 Part 4 §4.2.3: "When also the MessageId cannot be read, the CALLERROR SHALL contain "-1"",
    # §4.3 RpcFrameworkError ("not a valid RPC Request"). 1.6 has neither; we answer it the same
    # way with GenericError. The connection stays open.
    async with raw_socket(csms, "CP-GARBAGE", version) as charger:
        assert_call_error(await exchange(charger, frame), "-1", RPC_FRAMEWORK[version])
        await still_serves(charger)


UNKNOWN_TYPES = [
    '[7, "t1", "Heartbeat", {}]',
    '["2", "t1", "Heartbeat", {}]',
    '[true, "t1", "Heartbeat", {}]',
    '[5, "t1", "GenericError", "", {}]',  # 2.1's CALLRESULTERROR
    '[6, "t1", "NotifyPeriodicEventStream", {}]',  # 2.1's SEND
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("frame", UNKNOWN_TYPES)
async def test_a_message_type_we_do_not_know_is_ignored(csms: RunningCsms, version: str, frame: str) -> None:
    # OCPP-J 1.6 §4.1.3: "it SHALL ignore the message payload"; 2.0.1 errata: MessageTypeNotSupported
    # is deprecated, unknown message types are ignored.
    async with raw_socket(csms, "CP-MSGTYPE", version) as charger:
        await charger.send_str(frame)
        await still_serves(charger)


# --- CALLs that are malformed: answered with their own message id ----------------------------------


MISSHAPEN = [
    '[2, "c1", "Heartbeat"]',
    '[2, "c1", "Heartbeat", {}, {}]',
    '[2, "c1", 5, {}]',
    '[2, "c1", "", {}]',
    '[2, "c1", "Heartbeat", []]',
    '[2, "c1", "Heartbeat", null]',
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("frame", MISSHAPEN)
async def test_a_call_not_shaped_as_one_is_a_format_violation(
    csms: RunningCsms, version: str, frame: str
) -> None:
    # 1.6J table 7 FormationViolation "not conform the PDU structure"; 2.0.1 §4.3 FormatViolation.
    # A null payload is refused, not read as {} (some CSMSs are lenient; the spec asks for an object).
    async with raw_socket(csms, "CP-SHAPE", version) as charger:
        assert_call_error(await exchange(charger, frame), "c1", FORMAT[version])
        await still_serves(charger)


@pytest.mark.parametrize("version", VERSIONS)
async def test_message_ids_up_to_36_characters_are_served_and_longer_ones_refused(
    csms: RunningCsms, version: str
) -> None:
    # OCPP-J 1.6 §4.1.3 and 2.0.1 §4.1.4: a message id is at most 36 characters; 1.6J §4.2.3 lists
    # "unique identifier too long" among the reasons for a CALLERROR.
    longest, too_long = "i" * 36, "i" * 37
    async with raw_socket(csms, "CP-MSGID", version) as charger:
        assert (await send_call(charger, longest, "Heartbeat", {}))[:2] == [3, longest]
        answer = await send_call(charger, too_long, "Heartbeat", {})
        assert_call_error(answer, too_long, RPC_FRAMEWORK[version])
        await still_serves(charger)


@pytest.mark.parametrize(
    ("version", "action", "payload", "code"),
    [
        (V16, "Teleport", {}, "NotImplemented"),
        (V16, "TransactionEvent", {}, "NotImplemented"),  # a 2.0.1 action
        (V16, "Reset", {"type": "Soft"}, "NotSupported"),  # known, but the charger's to handle
        (V201, "Teleport", {}, "NotImplemented"),
        (V201, "StartTransaction", {}, "NotImplemented"),  # a 1.6 action
        (V201, "Reset", {"type": "Immediate"}, "NotSupported"),
    ],
)
async def test_unknown_and_unsupported_actions(
    csms: RunningCsms, version: str, action: str, payload: dict[str, Any], code: str
) -> None:
    # 1.6J table 7 and 2.0.1 §4.3 alike: NotImplemented "Requested Action is not known by receiver",
    # NotSupported "recognized but not supported" (the ``ocpp`` library has the two the other way).
    async with raw_socket(csms, "CP-ACTION", version) as charger:
        assert_call_error(await send_call(charger, "a1", action, payload), "a1", code)
        await still_serves(charger)


SCHEMA_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    (V16, "BootNotification", {"chargePointVendor": "V"}, "ProtocolError"),
    (V16, "BootNotification", {"chargePointVendor": "V", "chargePointModel": 7}, "TypeConstraintViolation"),
    (V16, "BootNotification", {**BOOT[V16], "chargePointModel": "M" * 21}, "TypeConstraintViolation"),
    (V16, "BootNotification", {**BOOT[V16], "colour": "red"}, FORMAT[V16]),
    (V16, "StatusNotification", {**STATUS[V16], "status": "Dancing"}, "PropertyConstraintViolation"),
    (V16, "MeterValues", {"connectorId": 1, "meterValue": []}, OCCURRENCE[V16]),
    (V201, "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "M"}}, "ProtocolError"),
    (V201, "BootNotification", {**BOOT[V201], "reason": 1}, "TypeConstraintViolation"),
    (V201, "BootNotification", {**BOOT[V201], "reason": "Bored"}, "PropertyConstraintViolation"),
    (V201, "BootNotification", {**BOOT[V201], "colour": "red"}, FORMAT[V201]),
    (V201, "MeterValues", {"evseId": 1, "meterValue": []}, OCCURRENCE[V201]),
]


@pytest.mark.parametrize(("version", "action", "payload", "code"), SCHEMA_CASES)
async def test_a_payload_failing_its_schema_gets_the_matching_error(
    csms: RunningCsms, version: str, action: str, payload: dict[str, Any], code: str
) -> None:
    # Codes per 1.6J table 7 / 2.0.1 §4.3. Which code a JSON-schema keyword maps to is left to the
    # implementation (others answer a missing field with OccurrenceConstraintViolation); ours: missing
    # -> ProtocolError ("incomplete"), type or length -> TypeConstraintViolation, enum/value ->
    # PropertyConstraintViolation, item count -> Occurrence, unexpected field -> Format(ion)Violation.
    async with raw_socket(csms, "CP-SCHEMA", version) as charger:
        answer = await send_call(charger, "s1", action, payload)
        assert_call_error(answer, "s1", code)
        assert answer[4]["path"]  # the details say where
        await still_serves(charger)


# --- CALLRESULT / CALLERROR: never answered with a CALLERROR ---------------------------------------


ORPHANS = [
    '[3, "never-sent", {}]',
    '[4, "never-sent", "GenericError", "", {}]',
    '[3, "never-sent", []]',
    '[3, "never-sent"]',
    "[3, null, {}]",
    "[3]",
    '[4, "never-sent", 17, "", {}]',
    json.dumps([3, "x" * 40, {}]),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("frame", ORPHANS)
async def test_an_answer_to_no_call_of_ours_is_dropped_without_reply(
    csms: RunningCsms, version: str, frame: str
) -> None:
    # A CALLERROR answers a CALL (1.6J §4.2.3: "the call is received but..."); an answer we cannot
    # match or read has nothing to be answered with, so it is logged and dropped (SteVe does the same).
    async with raw_socket(csms, "CP-ORPHAN", version) as charger:
        await charger.send_str(frame)
        await still_serves(charger)


async def test_an_unreadable_answer_to_our_call_is_dropped_and_the_command_times_out(
    csms: RunningCsms,
) -> None:
    async with raw_socket(csms, "CP-BADANSWER", V16) as charger:
        await still_serves(charger)
        command = asyncio.create_task(csms.runtime.commands.reset("CP-BADANSWER", hard=False, timeout_s=0.3))
        sent, result = await call_from_csms(charger, command, [3, ["Accepted"]])
        assert sent[2] == "Reset"
        assert result.outcome is CommandOutcome.TIMEOUT
        await still_serves(charger)


@pytest.mark.parametrize("tail", [["not supported", {}], ["", []], ["", None], [None], []])
async def test_a_sloppy_callerror_still_answers_our_call(csms: RunningCsms, tail: list[Any]) -> None:
    # Chargers in the field send [] or null details, or stop after the code: the code is what
    # matters, so the CALLERROR is read leniently instead of leaving the command to time out.
    async with raw_socket(csms, "CP-SLOPPY", V16) as charger:
        await still_serves(charger)
        command = asyncio.create_task(csms.runtime.commands.reset("CP-SLOPPY", hard=False))
        _, result = await call_from_csms(charger, command, [4, "NotImplemented", *tail])
        assert result.outcome is CommandOutcome.CALL_ERROR
        assert result.error_code == "NotImplemented"
        await still_serves(charger)


# --- duplicate message ids -------------------------------------------------------------------------


async def test_a_repeated_message_id_is_answered_again_and_a_repeated_start_keeps_its_id(
    csms: RunningCsms,
) -> None:
    # OCPP-J 1.6 §4.1.3 / 2.0.1 §4.1.4 make unique ids the sender's duty and say nothing of the
    # receiver's; we answer a repeat like the first (a charger resending after a lost answer must get
    # one), and storage is idempotent: the same StartTransaction keeps its transaction id.
    start = {"connectorId": 1, "idTag": "TAG-DUP", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"}
    async with raw_socket(csms, "CP-DUP", V16) as charger:
        await still_serves(charger, "dup")
        await still_serves(charger, "dup")
        first = await send_call(charger, "st-1", "StartTransaction", start)
        again = await send_call(charger, "st-1", "StartTransaction", start)
        assert first[:2] == again[:2] == [3, "st-1"]
        assert first[2]["transactionId"] == again[2]["transactionId"]


# --- message size ----------------------------------------------------------------------------------


@pytest.mark.csms_settings(max_message_bytes=1024, hard_max_message_bytes=4096)
@pytest.mark.parametrize("version", VERSIONS)
async def test_a_call_over_the_size_limit_is_refused_and_a_huge_frame_closes(
    csms: RunningCsms, version: str
) -> None:
    # Neither version fixes a size; ours: up to max_message_bytes served, above it a CALLERROR with
    # the CALL's id (2.0.1 uses FormatViolation for too many bytes, e.g. BytesPerMessage), above
    # hard_max_message_bytes the WebSocket closes with 1009 (RFC 6455 "message too big").
    data = {"vendorId": "x", "data": "y" * 2000}
    async with raw_socket(csms, "CP-SIZE", version) as charger:
        assert_call_error(await send_call(charger, "big", "DataTransfer", data), "big", FORMAT[version])
        await still_serves(charger)
        await charger.send_str(json.dumps([2, "huge", "DataTransfer", {**data, "data": "y" * 5000}]))
        closing = await charger.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == CLOSE_MESSAGE_TOO_BIG


@pytest.mark.csms_settings(max_message_bytes=1024, hard_max_message_bytes=8192)
async def test_a_stop_over_the_size_limit_is_still_served(csms: RunningCsms) -> None:
    # A long session's StopTransaction carries its meter data; refusing it for its size would have
    # the charger retry and drop it, leaving the transaction open (1.6 §4.10). Only the hard limit
    # bounds it.
    async with raw_socket(csms, "CP-BIGSTOP", V16) as charger:
        await send_call(charger, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        started = await send_call(
            charger,
            "s",
            "StartTransaction",
            {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2026-03-01T10:00:00Z"},
        )
        transaction_id = started[2]["transactionId"]
        readings = [
            {
                "timestamp": f"2026-03-01T10:{minute:02d}:00Z",
                "sampledValue": [{"value": str(minute * 100), "measurand": "Energy.Active.Import.Register"}],
            }
            for minute in range(60)
        ]
        stop = {
            "transactionId": transaction_id,
            "meterStop": 5900,
            "timestamp": "2026-03-01T11:00:00Z",
            "transactionData": readings,
        }
        assert 1024 < len(json.dumps([2, "stop", "StopTransaction", stop])) < 8192
        answer = await send_call(charger, "stop", "StopTransaction", stop)
        assert answer[0] == 3, answer  # a CALLRESULT, not a CALLERROR
        # any other CALL of that size is still refused
        big = {"vendorId": "x", "data": "y" * 2000}
        assert_call_error(await send_call(charger, "big", "DataTransfer", big), "big", FORMAT[V16])


@pytest.mark.csms_settings(max_message_bytes=1024, hard_max_message_bytes=4096)
async def test_a_compressed_frame_is_bounded_by_its_decompressed_size(csms: RunningCsms) -> None:
    # A few hundred compressed bytes must not smuggle a message past the hard limit.
    async with raw_socket(csms, "CP-BOMB", V201, compress=15) as station:
        assert station.compress
        await station.send_str(
            json.dumps([2, "bomb", "DataTransfer", {"vendorId": "x", "data": "y" * 50_000}])
        )
        closing = await station.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == CLOSE_MESSAGE_TOO_BIG


@pytest.mark.csms_settings(max_message_bytes=1024, hard_max_message_bytes=4096)
async def test_an_answer_over_the_call_size_limit_is_still_read(csms: RunningCsms) -> None:
    # The soft limit exists to answer a CALL with a CALLERROR; an answer cannot be refused that way,
    # so only the hard limit bounds it.
    async with raw_socket(csms, "CP-BIGANSWER", V16) as charger:
        await still_serves(charger)
        command = asyncio.create_task(
            csms.runtime.commands.call("CP-BIGANSWER", "DataTransfer", {"vendorId": "x"})
        )
        _, result = await call_from_csms(charger, command, [3, {"status": "Accepted", "data": "y" * 2000}])
        assert result.outcome is CommandOutcome.ACCEPTED
        assert len(result.payload["data"]) == 2000


# --- messages before the BootNotification is Accepted ---------------------------------------------


@pytest.mark.parametrize("registration", [RegistrationStatus.PENDING, RegistrationStatus.REJECTED])
async def test_a_201_station_not_accepted_gets_security_error_for_anything_but_boot(
    csms: RunningCsms, registration: RegistrationStatus
) -> None:
    # B02.FR.09 (Pending) and B03.FR.07 (Rejected); OCTT TC_B_30_CSMS.
    async with raw_socket(csms, "CS-GATE", V201, registration=registration) as station:
        boot = await send_call(station, "b1", "BootNotification", BOOT[V201])
        assert boot[2]["status"] == registration.value
        status = await send_call(station, "s1", "StatusNotification", STATUS[V201])
        assert_call_error(status, "s1", "SecurityError")
        assert_call_error(await send_call(station, "h1", "Heartbeat", {}), "h1", "SecurityError")
        assert (await send_call(station, "b2", "BootNotification", BOOT[V201]))[:2] == [3, "b2"]


async def test_a_pending_201_station_may_send_what_the_csms_asked_for(csms: RunningCsms) -> None:
    # B02.FR.09 excepts "a message triggered by TriggerMessageRequest, GetBaseReportRequest,
    # GetReportRequest": after our TriggerMessage(StatusNotification) the status passes, the rest not.
    async with raw_socket(csms, "CS-TRIGGER", V201, registration=RegistrationStatus.PENDING) as station:
        boot = await send_call(station, "b1", "BootNotification", BOOT[V201])
        assert boot[2]["status"] == "Pending"
        status = await send_call(station, "s0", "StatusNotification", STATUS[V201])
        assert_call_error(status, "s0", "SecurityError")
        command = asyncio.create_task(
            csms.runtime.commands.trigger_message("CS-TRIGGER", "StatusNotification", evse_id=1)
        )
        sent, result = await call_from_csms(station, command, [3, {"status": "Accepted"}])
        assert sent[2:] == ["TriggerMessage", {"requestedMessage": "StatusNotification", "evse": {"id": 1}}]
        assert result.accepted
        assert await send_call(station, "s1", "StatusNotification", STATUS[V201]) == [3, "s1", {}]
        assert_call_error(await send_call(station, "h1", "Heartbeat", {}), "h1", "SecurityError")


async def test_reconnecting_does_not_lift_a_pending_registration(csms: RunningCsms) -> None:
    # The station stays Pending until a BootNotification is Accepted, whichever connection it is on.
    async with raw_socket(csms, "CS-REPEND", V201, registration=RegistrationStatus.PENDING) as station:
        boot = await send_call(station, "b1", "BootNotification", BOOT[V201])
        assert boot[2]["status"] == "Pending"
    async with raw_socket(csms, "CS-REPEND", V201, registration=RegistrationStatus.PENDING) as station:
        assert_call_error(await send_call(station, "h1", "Heartbeat", {}), "h1", "SecurityError")


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_charger_that_was_never_answered_is_not_blocked(csms: RunningCsms, version: str) -> None:
    # A charger reconnecting after a network outage does not boot again (2.0.1 B04, 1.6 §4.2 only on
    # a reboot); we have told it nothing on record, so nothing blocks it.
    async with raw_socket(csms, "CP-UNBOOTED", version) as charger:
        await still_serves(charger)


async def test_a_rejected_16_charger_gets_security_error_and_a_pending_one_is_served(
    csms: RunningCsms,
) -> None:
    # 1.6 §4.2: a Rejected charge point "SHALL NOT send any OCPP message" but BootNotification; what
    # the central system answers is not said, we answer SecurityError as 2.0.1 does. A Pending charge
    # point may send what a TriggerMessage asked for, which we cannot tell apart, so it is served.
    async with raw_socket(csms, "CP-16GATE", V16, registration=RegistrationStatus.REJECTED) as charger:
        assert (await send_call(charger, "b1", "BootNotification", BOOT[V16]))[2]["status"] == "Rejected"
        status = await send_call(charger, "s1", "StatusNotification", STATUS[V16])
        assert_call_error(status, "s1", "SecurityError")
    async with raw_socket(csms, "CP-16GATE", V16, registration=RegistrationStatus.PENDING) as charger:
        assert (await send_call(charger, "b2", "BootNotification", BOOT[V16]))[2]["status"] == "Pending"
        assert await send_call(charger, "s2", "StatusNotification", STATUS[V16]) == [3, "s2", {}]


# --- keepalive (RFC 6455 §5.5.2-3; OCPP-J 1.6 §5.3, 2.0.1 Part 4 §5.3) -----------------------------


async def test_the_server_answers_a_chargers_ping(csms: RunningCsms) -> None:
    async with raw_socket(csms, "CP-PINGER", V201, autoping=False) as station:
        await still_serves(station)
        await station.ping(b"are you there")
        pong = await station.receive(timeout=5)
        assert pong.type is aiohttp.WSMsgType.PONG
        assert pong.data == b"are you there"


@pytest.mark.csms_settings(websocket_ping_interval_s=0.2)
async def test_the_server_pings_and_keeps_a_charger_that_answers(csms: RunningCsms) -> None:
    async with raw_socket(csms, "CP-PONGER", V16, autoping=False) as charger:
        for _ in range(3):
            ping = await charger.receive(timeout=5)
            assert ping.type is aiohttp.WSMsgType.PING
            await charger.pong(ping.data)
        await still_serves(charger)


@pytest.mark.csms_settings(websocket_ping_interval_s=0.2)
async def test_the_server_drops_a_charger_that_does_not_answer_its_ping(csms: RunningCsms) -> None:
    async with raw_socket(csms, "CP-SILENT", V16, autoping=False) as charger:
        await still_serves(charger)
        session = csms.runtime.connected.get("CP-SILENT")
        assert session is not None
        while (message := await charger.receive(timeout=5)).type is aiohttp.WSMsgType.PING:
            pass  # no pong
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        await asyncio.wait_for(session.wait_closed(), 5)
        assert csms.runtime.connected.get("CP-SILENT") is None
        state = await csms.runtime.live_state.get("CP-SILENT")
        assert state is not None
        assert not state.connected


# --- the same charger connecting again -------------------------------------------------------------


async def test_a_reconnect_replaces_the_open_connection_and_leaves_no_task_behind(csms: RunningCsms) -> None:
    # OCPP leaves this to the CSMS; the newest connection wins (the old one is often half-open after a
    # network change), the old one is closed with 1008 and its session ends without touching the new.
    tasks_before = len(csms.runtime.tasks)
    async with raw_socket(csms, "CS-TWICE", V201) as old:
        await still_serves(old)
        first = csms.runtime.connected.get("CS-TWICE")
        assert first is not None
        async with connected(Charger201, csms.url("CS-TWICE"), "CS-TWICE", V201) as station:
            closing = await old.receive(timeout=5)
            assert closing.type is aiohttp.WSMsgType.CLOSE
            assert closing.data == CLOSE_POLICY_VIOLATION
            await asyncio.wait_for(first.wait_closed(), 5)
            closers = [t for t in asyncio.all_tasks() if t.get_name() == "close-CS-TWICE"]
            await asyncio.wait_for(asyncio.gather(*closers), 5)
            assert len(csms.runtime.tasks) == tasks_before

            current = csms.runtime.connected.get("CS-TWICE")
            assert current is not None
            assert current is not first
            assert not current.closed
            state = await csms.runtime.live_state.get("CS-TWICE")
            assert state is not None
            assert state.connected
            assert (await station.call(call201.Heartbeat(), suppress=False)).current_time
            started = await csms.runtime.commands.remote_start("CS-TWICE", 1, IdToken("TAG", "Central"))
            assert started.accepted
            assert (await station.received.get())[0] == "RequestStartTransaction"
