"""Protocol layer against an in-memory connection: raw frames in, CALLERROR codes out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from csms.errors import ConnectionClosedError
from csms.protocol.framing import CallError, CallResult
from csms.protocol.router import IncomingCall, Router, handles
from csms.protocol.session import OcppSession
from csms.protocol.versions import OcppVersion
from tests.csms.memory import MemoryConnection

pytestmark = pytest.mark.asyncio

V16 = OcppVersion.V16
V201 = OcppVersion.V201
MAX_BYTES = 2048


class StubHandlers:
    """Handlers with fixed answers, so the tests exercise framing and validation only."""

    @handles("Heartbeat")
    async def heartbeat(self, call: IncomingCall) -> dict[str, Any]:
        return {"currentTime": "2026-01-01T00:00:00Z"}

    @handles("BootNotification")
    async def boot(self, call: IncomingCall) -> dict[str, Any]:
        return {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 300}

    @handles("StatusNotification")
    async def status(self, call: IncomingCall) -> dict[str, Any]:
        return {}

    @handles("Authorize")
    async def authorize(self, call: IncomingCall) -> dict[str, Any]:
        raise RuntimeError("handler bug")


async def start_session(version: OcppVersion) -> tuple[MemoryConnection, OcppSession, asyncio.Task[None]]:
    connection = MemoryConnection()
    router = Router()
    router.include(StubHandlers())
    session = OcppSession("CP-MEM", version, connection, router, max_message_bytes=MAX_BYTES)
    return connection, session, asyncio.create_task(session.run())


async def stop_session(connection: MemoryConnection, task: asyncio.Task[None]) -> None:
    await connection.incoming.put(None)
    await task


BOOT_16 = {"chargePointVendor": "V", "chargePointModel": "M"}
CASES_16: list[tuple[str, str, str]] = [
    ("wrong element count", '[2,"a1","Heartbeat"]', "FormationViolation"),
    ("payload not an object", '[2,"a1","Heartbeat",[]]', "FormationViolation"),
    ("action not a string", '[2,"a1",5,{}]', "FormationViolation"),
    ("unknown action", '[2,"a1","Teleport",{}]', "NotImplemented"),
    ("known action without handler", '[2,"a1","DataTransfer",{"vendorId":"x"}]', "NotSupported"),
    ("missing required field", '[2,"a1","BootNotification",{"chargePointVendor":"V"}]', "ProtocolError"),
    (
        "wrong type",
        '[2,"a1","BootNotification",{"chargePointVendor":"V","chargePointModel":7}]',
        "TypeConstraintViolation",
    ),
    (
        "string too long",
        json.dumps([2, "a1", "BootNotification", {**BOOT_16, "chargePointModel": "M" * 21}]),
        "TypeConstraintViolation",
    ),
    (
        "unexpected field",
        json.dumps([2, "a1", "BootNotification", {**BOOT_16, "colour": "red"}]),
        "FormationViolation",
    ),
    (
        "invalid enum value",
        '[2,"a1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Dancing"}]',
        "PropertyConstraintViolation",
    ),
    ("oversized message", json.dumps([2, "a1", "Heartbeat", {"x": "y" * MAX_BYTES}]), "FormationViolation"),
    ("handler crash", '[2,"a1","Authorize",{"idTag":"T"}]', "InternalError"),
]


@pytest.mark.allow_error_logs
@pytest.mark.parametrize(("case", "frame", "code"), CASES_16, ids=[c[0] for c in CASES_16])
async def test_v16_malformed_calls_get_the_right_callerror(case: str, frame: str, code: str) -> None:
    connection, _, task = await start_session(V16)
    answer = await connection.exchange(frame)
    assert answer[0] == 4
    assert answer[1] == "a1"
    assert answer[2] == code, answer
    assert len(answer[3]) <= 255
    assert isinstance(answer[4], dict)
    # The session keeps serving the charger after the error.
    assert (await connection.exchange('[2,"a2","Heartbeat",{}]'))[:2] == [3, "a2"]
    await stop_session(connection, task)


CASES_201: list[tuple[str, str, str, str]] = [
    ("unreadable message id", '[2,17,"Heartbeat",{}]', "-1", "RpcFrameworkError"),
    # NaN and Infinity are no JSON (RFC 8259), though Python's parser takes them: not a frame
    (
        "NaN number",
        '[2,"b1","NotifyEVChargingNeeds",{"evseId":1,"chargingNeeds":{"requestedEnergyTransfer":"AC_three_phase",'
        '"acChargingParameters":{"energyAmount":NaN,"evMinCurrent":6,"evMaxCurrent":16,"evMaxVoltage":400}}}]',
        "-1",
        "RpcFrameworkError",
    ),
    ("Infinity number", '[2,"b1","Heartbeat",{"x":-Infinity}]', "-1", "RpcFrameworkError"),
    ("message id too long", json.dumps([2, "x" * 37, "Heartbeat", {}]), "x" * 37, "RpcFrameworkError"),
    ("wrong element count", '[2,"b1","Heartbeat",{},{}]', "b1", "FormatViolation"),
    ("unexpected field", '[2,"b1","Heartbeat",{"x":1}]', "b1", "FormatViolation"),
    ("unknown action", '[2,"b1","StartTransaction",{}]', "b1", "NotImplemented"),
    (
        "missing nested field",
        '[2,"b1","BootNotification",{"reason":"PowerUp","chargingStation":{"model":"M"}}]',
        "b1",
        "ProtocolError",
    ),
]


@pytest.mark.parametrize(("case", "frame", "unique_id", "code"), CASES_201, ids=[c[0] for c in CASES_201])
async def test_v201_malformed_calls_get_the_right_callerror(
    case: str, frame: str, unique_id: str, code: str
) -> None:
    connection, _, task = await start_session(V201)
    answer = await connection.exchange(frame)
    assert answer[:3] == [4, unique_id, code], answer
    await stop_session(connection, task)


async def test_v16_unreadable_message_id_is_answered_as_generic_error() -> None:
    connection, _, task = await start_session(V16)
    assert (await connection.exchange('[2,null,"Heartbeat",{}]'))[:3] == [4, "-1", "GenericError"]
    await stop_session(connection, task)


@pytest.mark.parametrize("frame", ["this is not json", '{"not": "an array"}', "42", '"text"'])
async def test_frames_that_are_not_ocpp_j_are_answered_with_id_minus_one(frame: str) -> None:
    connection, session, task = await start_session(V16)
    assert (await connection.exchange(frame))[:3] == [4, "-1", "GenericError"]
    assert (await connection.exchange('[2,"a2","Heartbeat",{}]'))[:2] == [3, "a2"]
    assert not session.closed
    await stop_session(connection, task)


async def test_empty_array_is_answered_with_id_minus_one() -> None:
    connection, _, task = await start_session(V201)
    assert (await connection.exchange("[]"))[:3] == [4, "-1", "RpcFrameworkError"]
    await stop_session(connection, task)


async def test_unknown_message_type_is_ignored_and_the_session_continues() -> None:
    connection, _, task = await start_session(V201)
    await connection.incoming.put('[7,"c1","Whatever",{}]')
    assert (await connection.exchange('[2,"c2","Heartbeat",{}]'))[:2] == [3, "c2"]
    assert connection.outgoing.empty()
    await stop_session(connection, task)


async def test_valid_call_gets_a_schema_valid_result() -> None:
    connection, _, task = await start_session(V16)
    answer = await connection.exchange(json.dumps([2, "d1", "BootNotification", BOOT_16]))
    assert answer == [3, "d1", {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 300}]
    await stop_session(connection, task)


async def test_outgoing_call_resolves_with_the_chargers_result_and_error() -> None:
    connection, session, task = await start_session(V16)
    pending = asyncio.create_task(session.call("Reset", {"type": "Soft"}, timeout_s=5))
    sent = json.loads(await connection.outgoing.get())
    assert sent[0] == 2
    assert sent[2] == "Reset"
    assert sent[3] == {"type": "Soft"}
    await connection.incoming.put('[3,"someone-else",{}]')  # an answer to no call: dropped
    await connection.incoming.put(json.dumps([3, sent[1], {"status": "Accepted"}]))
    result = await pending
    assert isinstance(result, CallResult)
    assert result.payload == {"status": "Accepted"}

    pending = asyncio.create_task(session.call("Reset", {"type": "Hard"}, timeout_s=5))
    sent = json.loads(await connection.outgoing.get())
    await connection.incoming.put(json.dumps([4, sent[1], "NotSupported", "no", {}]))
    error = await pending
    assert isinstance(error, CallError)
    assert error.error_code == "NotSupported"
    await stop_session(connection, task)


async def test_outgoing_call_fails_when_the_connection_closes() -> None:
    connection, session, task = await start_session(V201)
    pending = asyncio.create_task(session.call("Reset", {"type": "OnIdle"}, timeout_s=5))
    await connection.outgoing.get()
    await stop_session(connection, task)
    with pytest.raises(ConnectionClosedError):
        await pending


async def test_outgoing_call_times_out_without_an_answer() -> None:
    connection, session, task = await start_session(V201)
    with pytest.raises(TimeoutError):
        await session.call("Reset", {"type": "OnIdle"}, timeout_s=0.01)
    await stop_session(connection, task)
