"""The profile send path the smart-charging loop uses: our builders' profiles go out without a
second schema check (their forms are valid: checked here against both versions' schemas), any
other profile is still validated, and every send gets its own copy of the form."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import numpy as np
import pytest

from csms.commands import ChargingProfile, CommandBus, CommandOutcome
from csms.errors import CommandError
from csms.protocol.framing import CALL
from csms.protocol.registry import ConnectedChargers
from csms.protocol.router import Router
from csms.protocol.schemas import validate_payload
from csms.protocol.session import OcppSession
from csms.protocol.versions import OcppVersion
from optimizer.types import Connection, Evse, ObjectiveBreakdown, Schedule, SolveStatus
from tests.csms.memory import MemoryConnection

EVSE = Evse("E1", Connection.THREE_PHASE, 230.0, 16.0, 6.0)
SCHEDULE = Schedule(
    station_id="ST",
    start=datetime(2026, 1, 5, 17, 0, tzinfo=UTC),
    period_s=300,
    evse_ids=("E1",),
    session_ids=("42",),
    current_a=np.array([[12.8, 12.8, 9.6, 6.0, 0.0, 16.0]]),
    power_kw=np.array([[8.8, 8.8, 6.6, 4.1, 0.0, 11.0]]),
    status=SolveStatus.FALLBACK,
    objective=ObjectiveBreakdown(0.0, 0.0, 0.0, 8.8, 1.0),
    solve_time_s=0.0,
)


def built_profiles() -> list[ChargingProfile]:
    return [
        ChargingProfile.tx(SCHEDULE, EVSE, transaction_id="42", profile_id=1001),
        ChargingProfile.failsafe(EVSE, limit_a=9.6, profile_id=101),
        ChargingProfile.station_max(SCHEDULE, EVSE, profile_id=7),
    ]


def test_our_builders_profiles_are_checked_and_valid_in_both_versions() -> None:
    for profile in built_profiles():
        assert profile.checked
        v16, v201 = profile.for_version(OcppVersion.V16), profile.for_version(OcppVersion.V201)
        assert v16 is not None
        assert v201 is not None
        validate_payload(
            OcppVersion.V16, CALL, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": v16}, "1"
        )
        validate_payload(
            OcppVersion.V201, CALL, "SetChargingProfile", {"evseId": 1, "chargingProfile": v201}, "1"
        )
    assert not ChargingProfile(v16={"chargingProfileId": 1}).checked


def test_every_send_gets_its_own_copy_of_the_form() -> None:
    profile = built_profiles()[0]
    first = profile.for_version(OcppVersion.V16)
    assert first is not None
    first["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 99.0
    again = profile.for_version(OcppVersion.V16)
    assert again is not None
    assert again == profile.for_version(OcppVersion.V16)
    assert again["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 12.8
    wrapped = ChargingProfile(v16=again)  # a wrapped form is copied for each send too
    copy = wrapped.for_version(OcppVersion.V16)
    assert copy is not None
    copy["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 99.0
    assert wrapped.for_version(OcppVersion.V16) == again


@pytest.mark.asyncio
async def test_a_built_profile_goes_out_and_a_wrapped_invalid_one_is_still_refused() -> None:
    connection = MemoryConnection()
    session = OcppSession("CP", OcppVersion.V16, connection, Router(), max_message_bytes=65536)
    connected = ConnectedChargers()
    connected.register(session)
    serving = asyncio.create_task(session.run())
    bus = CommandBus(connected, default_timeout_s=5)
    try:
        profile = built_profiles()[0]
        pending = asyncio.create_task(bus.set_charging_profile("CP", 1, profile))
        sent = json.loads(await connection.outgoing.get())
        form = profile.for_version(OcppVersion.V16)
        assert sent[2:] == ["SetChargingProfile", {"connectorId": 1, "csChargingProfiles": form}]
        await connection.incoming.put(json.dumps([3, sent[1], {"status": "Accepted"}]))
        assert (await pending).outcome is CommandOutcome.ACCEPTED

        assert form is not None
        broken = dict(form, chargingProfilePurpose="NoSuchPurpose")
        with pytest.raises(CommandError, match="SetChargingProfile"):
            await bus.set_charging_profile("CP", 1, ChargingProfile(v16=broken))
        assert connection.outgoing.empty()
    finally:
        await connection.incoming.put(None)
        await serving
