"""Every CommandBus command builds a schema-valid request for each version and reads the answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from csms.commands import ChargingProfile, CommandBus, CommandOutcome, CommandResult, ProfilePurpose
from csms.commands.payloads import LocalListEntry, VariableRef, VariableSetting
from csms.domain.events import Authorization, AuthorizationStatus, IdToken
from csms.errors import CommandError
from csms.protocol.registry import ConnectedChargers
from csms.protocol.router import Router
from csms.protocol.session import OcppSession
from csms.protocol.versions import OcppVersion
from optimizer.types import Connection, Evse, ObjectiveBreakdown, RateUnit, Schedule, SolveStatus
from tests.csms.memory import MemoryConnection

pytestmark = pytest.mark.asyncio

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STATION = Evse("CP", Connection.THREE_PHASE, 230.0, 32.0, rate_unit=RateUnit.WATT, step=100.0)
PROFILE = ChargingProfile.failsafe(Evse("CP-1", Connection.L1, 230.0, 16.0, 6.0), limit_a=10.0, profile_id=5)
# A remote start's profile is a TxProfile (1.6 §6.33, 2.0.1 RequestStartTransaction): the failsafe's
# forms with that purpose (no transactionId: the transaction does not exist yet).
TX_PROFILE = ChargingProfile(
    {**(PROFILE.v16 or {}), "chargingProfilePurpose": "TxProfile"},
    {**(PROFILE.v201 or {}), "chargingProfilePurpose": "TxProfile"},
)
STATION_MAX = ChargingProfile.station_max(
    Schedule(
        station_id="ST",
        start=WHEN,
        period_s=900,
        evse_ids=("CP",),
        session_ids=(),
        current_a=np.array([[32.0, 32.0, 16.0]]),
        power_kw=np.array([[22.08, 22.08, 11.04]]),
        status=SolveStatus.OPTIMAL,
        objective=ObjectiveBreakdown(0.0, 0.0, 0.0, 22.08, 1.0),
        solve_time_s=0.0,
    ),
    STATION,
    profile_id=1,
)
LOCAL_LIST = [
    LocalListEntry(IdToken("A", "ISO14443"), Authorization(AuthorizationStatus.ACCEPTED)),
    LocalListEntry(IdToken("B", "ISO14443"), Authorization(AuthorizationStatus.NO_CREDIT)),
]

Command = Callable[[CommandBus], Coroutine[Any, Any, CommandResult]]
Case = tuple[str, Command, str, dict[str, Any], CommandOutcome, str | None]

V16_CASES: list[Case] = [
    (
        "remote start with profile",
        lambda b: b.remote_start("CP", 1, IdToken("T"), charging_profile=TX_PROFILE),
        "RemoteStartTransaction",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "remote stop",
        lambda b: b.remote_stop("CP", "5"),
        "RemoteStopTransaction",
        {"status": "Rejected"},
        CommandOutcome.REJECTED,
        "Rejected",
    ),
    (
        "station max profile",
        lambda b: b.set_charging_profile("CP", 0, STATION_MAX),
        "SetChargingProfile",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "clear by criteria",
        lambda b: b.clear_charging_profile(
            "CP", profile_id=3, evse_id=1, purpose=ProfilePurpose.TX_DEFAULT, stack_level=2
        ),
        "ClearChargingProfile",
        {"status": "Unknown"},
        CommandOutcome.REJECTED,
        "Unknown",
    ),
    (
        "composite schedule",
        lambda b: b.get_composite_schedule("CP", 1, 3600, rate_unit="W"),
        "GetCompositeSchedule",
        {"status": "Rejected"},
        CommandOutcome.REJECTED,
        "Rejected",
    ),
    (
        "availability",
        lambda b: b.change_availability("CP", None, False),
        "ChangeAvailability",
        {"status": "Scheduled"},
        CommandOutcome.ACCEPTED,
        "Scheduled",
    ),
    (
        "reset",
        lambda b: b.reset("CP", hard=True),
        "Reset",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "change configuration",
        lambda b: b.change_configuration("CP", "HeartbeatInterval", "60"),
        "ChangeConfiguration",
        {"status": "RebootRequired"},
        CommandOutcome.ACCEPTED,
        "RebootRequired",
    ),
    (
        "get configuration",
        lambda b: b.get_configuration("CP", ["HeartbeatInterval"]),
        "GetConfiguration",
        {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]},
        CommandOutcome.ACCEPTED,
        None,
    ),
    (
        "unlock",
        lambda b: b.unlock_connector("CP", 1),
        "UnlockConnector",
        {"status": "Unlocked"},
        CommandOutcome.ACCEPTED,
        "Unlocked",
    ),
    (
        "trigger",
        lambda b: b.trigger_message("CP", "StatusNotification", evse_id=1),
        "TriggerMessage",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "reserve",
        lambda b: b.reserve_now("CP", 1, 1, IdToken("T"), WHEN),
        "ReserveNow",
        {"status": "Occupied"},
        CommandOutcome.REJECTED,
        "Occupied",
    ),
    (
        "cancel reservation",
        lambda b: b.cancel_reservation("CP", 1),
        "CancelReservation",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "local list",
        lambda b: b.send_local_list("CP", 2, LOCAL_LIST, full=False),
        "SendLocalList",
        {"status": "VersionMismatch"},
        CommandOutcome.REJECTED,
        "VersionMismatch",
    ),
    (
        "local list version",
        lambda b: b.get_local_list_version("CP"),
        "GetLocalListVersion",
        {"listVersion": 2},
        CommandOutcome.ACCEPTED,
        None,
    ),
    (
        "diagnostics",
        lambda b: b.get_diagnostics("CP", "ftp://logs.example/up"),
        "GetDiagnostics",
        {"fileName": "diag.zip"},
        CommandOutcome.ACCEPTED,
        None,
    ),
    (
        "firmware",
        lambda b: b.update_firmware("CP", "https://fw.example/1.bin", WHEN),
        "UpdateFirmware",
        {},
        CommandOutcome.ACCEPTED,
        None,
    ),
]

V201_CASES: list[Case] = [
    (
        "request start with profile",
        lambda b: b.remote_start("CP", 1, IdToken("T", "eMAID"), charging_profile=TX_PROFILE),
        "RequestStartTransaction",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "request stop",
        lambda b: b.remote_stop("CP", "TX-1"),
        "RequestStopTransaction",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "station max profile",
        lambda b: b.set_charging_profile("CP", 0, STATION_MAX),
        "SetChargingProfile",
        {"status": "Rejected"},
        CommandOutcome.REJECTED,
        "Rejected",
    ),
    (
        "clear all",
        lambda b: b.clear_charging_profile("CP"),
        "ClearChargingProfile",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "clear by criteria",
        lambda b: b.clear_charging_profile("CP", evse_id=1, purpose=ProfilePurpose.TX_DEFAULT),
        "ClearChargingProfile",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "composite schedule",
        lambda b: b.get_composite_schedule("CP", 1, 3600),
        "GetCompositeSchedule",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "availability",
        lambda b: b.change_availability("CP", 2, True),
        "ChangeAvailability",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "reset",
        lambda b: b.reset("CP", hard=False),
        "Reset",
        {"status": "Scheduled"},
        CommandOutcome.ACCEPTED,
        "Scheduled",
    ),
    (
        "set variables",
        lambda b: b.set_variables("CP", [VariableSetting("OCPPCommCtrlr", "HeartbeatInterval", "60")]),
        "SetVariables",
        {
            "setVariableResult": [
                {
                    "attributeStatus": "UnknownVariable",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        },
        CommandOutcome.REJECTED,
        "UnknownVariable",
    ),
    (
        "get variables",
        lambda b: b.get_variables("CP", [VariableRef("EVSE", "Power", evse_id=1, attribute_type="MaxSet")]),
        "GetVariables",
        {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "22000",
                    "component": {"name": "EVSE", "evse": {"id": 1}},
                    "variable": {"name": "Power"},
                }
            ]
        },
        CommandOutcome.ACCEPTED,
        None,
    ),
    (
        "unlock",
        lambda b: b.unlock_connector("CP", 1, 1),
        "UnlockConnector",
        {"status": "UnlockFailed"},
        CommandOutcome.REJECTED,
        "UnlockFailed",
    ),
    (
        "trigger",
        lambda b: b.trigger_message("CP", "MeterValues", evse_id=1),
        "TriggerMessage",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "reserve",
        lambda b: b.reserve_now("CP", 7, None, IdToken("T", "ISO14443"), WHEN),
        "ReserveNow",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "cancel reservation",
        lambda b: b.cancel_reservation("CP", 7),
        "CancelReservation",
        {"status": "Rejected"},
        CommandOutcome.REJECTED,
        "Rejected",
    ),
    (
        "local list",
        lambda b: b.send_local_list("CP", 3, LOCAL_LIST, full=True),
        "SendLocalList",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "local list version",
        lambda b: b.get_local_list_version("CP"),
        "GetLocalListVersion",
        {"versionNumber": 3},
        CommandOutcome.ACCEPTED,
        None,
    ),
    (
        "diagnostics",
        lambda b: b.get_diagnostics("CP", "https://logs.example/up", request_id=5),
        "GetLog",
        {"status": "Accepted"},
        CommandOutcome.ACCEPTED,
        "Accepted",
    ),
    (
        "firmware",
        lambda b: b.update_firmware("CP", "https://fw.example/1.bin", WHEN, request_id=6),
        "UpdateFirmware",
        {"status": "AcceptedCanceled"},
        CommandOutcome.ACCEPTED,
        "AcceptedCanceled",
    ),
]


async def run_case(
    version: OcppVersion, command: Command, action: str, answer: dict[str, Any]
) -> CommandResult:
    connection = MemoryConnection()
    session = OcppSession("CP", version, connection, Router(), max_message_bytes=65536)
    connected = ConnectedChargers()
    connected.register(session)
    serving = asyncio.create_task(session.run())
    bus = CommandBus(connected, default_timeout_s=5)
    pending = asyncio.create_task(command(bus))
    sent = json.loads(await connection.outgoing.get())
    assert sent[2] == action
    await connection.incoming.put(json.dumps([3, sent[1], answer]))
    result = await pending
    await connection.incoming.put(None)
    await serving
    return result


def _ids(cases: list[Case]) -> list[str]:
    return [case[0] for case in cases]


@pytest.mark.parametrize(
    ("name", "command", "action", "answer", "outcome", "status"), V16_CASES, ids=_ids(V16_CASES)
)
async def test_v16_commands(
    name: str,
    command: Command,
    action: str,
    answer: dict[str, Any],
    outcome: CommandOutcome,
    status: str | None,
) -> None:
    result = await run_case(OcppVersion.V16, command, action, answer)
    assert (result.action, result.outcome, result.status, result.payload) == (action, outcome, status, answer)


@pytest.mark.parametrize(
    ("name", "command", "action", "answer", "outcome", "status"), V201_CASES, ids=_ids(V201_CASES)
)
async def test_v201_commands(
    name: str,
    command: Command,
    action: str,
    answer: dict[str, Any],
    outcome: CommandOutcome,
    status: str | None,
) -> None:
    result = await run_case(OcppVersion.V201, command, action, answer)
    assert (result.action, result.outcome, result.status, result.payload) == (action, outcome, status, answer)


async def test_invalid_arguments_raise_command_error() -> None:
    connection = MemoryConnection()
    connected = ConnectedChargers()
    connected.register(OcppSession("CP", OcppVersion.V16, connection, Router(), max_message_bytes=65536))
    bus = CommandBus(connected, default_timeout_s=5)
    with pytest.raises(CommandError):
        await bus.remote_stop("CP", "not-a-number")
    with pytest.raises(CommandError):
        await bus.trigger_message("CP", "NoSuchMessage")
    assert connection.outgoing.empty()


@pytest.mark.parametrize("version", [OcppVersion.V16, OcppVersion.V201])
async def test_a_remote_start_the_spec_forbids_is_refused_before_it_is_sent(version: OcppVersion) -> None:
    """1.6 §6.33 RemoteStartTransaction.req: connectorId > 0 and a chargingProfile of purpose TxProfile;
    2.0.1 RequestStartTransactionRequest: evseId "SHALL be > 0", the profile a TxProfile (F01/F02). A
    charger would refuse them (or worse, apply a TxDefaultProfile to every later transaction)."""
    connection = MemoryConnection()
    connected = ConnectedChargers()
    connected.register(OcppSession("CP", version, connection, Router(), max_message_bytes=65536))
    bus = CommandBus(connected, default_timeout_s=5)
    for evse_id in (0, -1):
        with pytest.raises(CommandError, match=f"EVSE > 0.*got {evse_id}"):
            await bus.remote_start("CP", evse_id, IdToken("T"))
    for profile, purpose in (
        (PROFILE, "TxDefaultProfile"),
        (STATION_MAX, "ChargePointMaxProfile" if version is OcppVersion.V16 else "ChargingStationMaxProfile"),
    ):
        with pytest.raises(CommandError, match=f"must have purpose TxProfile, got {purpose}"):
            await bus.remote_start("CP", 1, IdToken("T"), charging_profile=profile)
        with pytest.raises(CommandError, match="purpose TxProfile"):
            await bus.remote_start("CP", None, IdToken("T"), charging_profile=profile)
    assert connection.outgoing.empty()
