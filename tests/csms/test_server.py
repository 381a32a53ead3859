"""The WebSocket endpoint: subprotocols, registry, Basic auth, isolation, reconnection."""

from __future__ import annotations

import json

import aiohttp
import pytest
from ocpp.v16 import call
from ocpp.v201 import call as call201

from csms.commands import CommandOutcome
from csms.domain.events import RegistrationStatus
from csms.storage.chargers import ChargerRecord
from csms.storage.passwords import hash_password, verify_password
from tests.csms.chargers import Charger16, Charger201, basic_auth, connected
from tests.csms.conftest import RunningCsms

pytestmark = pytest.mark.asyncio


async def handshake_status(url: str, protocols: tuple[str, ...], authorization: str | None = None) -> int:
    headers = {"Authorization": authorization} if authorization else {}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as failure:
            await http.ws_connect(url, protocols=protocols, headers=headers)
    return failure.value.status


async def test_unknown_and_missing_subprotocols_are_rejected(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(ChargerRecord("CP-PROTO"))
    assert await handshake_status(csms.url("CP-PROTO"), ("ocpp1.5",)) == 400
    assert await handshake_status(csms.url("CP-PROTO"), ()) == 400


async def test_both_subprotocols_are_negotiated(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(ChargerRecord("CP-BOTH"))
    async with aiohttp.ClientSession() as http:
        for offered, chosen in (
            (("ocpp2.0.1", "ocpp1.6"), "ocpp2.0.1"),
            (("ocpp1.5", "ocpp1.6"), "ocpp1.6"),
        ):
            async with http.ws_connect(csms.url("CP-BOTH"), protocols=offered) as websocket:
                assert websocket.protocol == chosen


async def test_unknown_charger_is_rejected(csms: RunningCsms) -> None:
    assert await handshake_status(csms.url("CP-NOBODY"), ("ocpp1.6",)) == 404


@pytest.mark.csms_settings(auto_register=True, auto_register_status=RegistrationStatus.PENDING)
async def test_auto_register_admits_unknown_chargers(csms: RunningCsms) -> None:
    async with connected(Charger201, csms.url("CP-AUTO"), "CP-AUTO", "ocpp2.0.1") as charger:
        boot = await charger.call(
            call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"),
            suppress=False,
        )
    assert boot.status == "Pending"
    record = await csms.runtime.chargers.get("CP-AUTO")
    assert record is not None
    assert record.auto_registered


async def test_basic_auth_is_required_when_the_charger_has_a_password(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(
        ChargerRecord("CP-AUTH", password_hash=hash_password("s3cret-s3cret-16", iterations=1000))
    )
    url = csms.url("CP-AUTH")
    assert await handshake_status(url, ("ocpp1.6",)) == 401
    assert await handshake_status(url, ("ocpp1.6",), "Basic !!not-base64!!") == 401
    assert await handshake_status(url, ("ocpp1.6",), basic_auth("CP-AUTH", "wrong-password")) == 401
    assert await handshake_status(url, ("ocpp1.6",), basic_auth("CP-OTHER", "s3cret-s3cret-16")) == 401
    async with connected(Charger16, url, "CP-AUTH", "ocpp1.6", password="s3cret-s3cret-16") as charger:
        assert (await charger.call(call.Heartbeat(), suppress=False)).current_time


async def test_password_is_stored_only_as_a_hash(csms: RunningCsms) -> None:
    encoded = hash_password("plain-text-pw", iterations=1000)
    await csms.runtime.chargers.save(ChargerRecord("CP-HASH", password_hash=encoded))
    async with csms.runtime.database.pool.acquire() as connection:
        stored = await connection.fetchval("SELECT password_hash FROM chargers WHERE charger_id = 'CP-HASH'")
    assert "plain-text-pw" not in stored
    assert verify_password("plain-text-pw", stored)
    assert not verify_password("other", stored)
    assert not verify_password("plain-text-pw", "garbage")


async def test_garbage_from_one_charger_does_not_disturb_another(csms: RunningCsms) -> None:
    for charger_id in ("CP-BAD", "CP-GOOD"):
        await csms.runtime.chargers.save(ChargerRecord(charger_id))
    async with (
        connected(Charger16, csms.url("CP-GOOD"), "CP-GOOD", "ocpp1.6") as good,
        aiohttp.ClientSession() as http,
        http.ws_connect(csms.url("CP-BAD"), protocols=("ocpp1.6",)) as bad,
    ):
        await bad.send_str('[2,"x1","BootNotification",{"chargePointVendor":1,"chargePointModel":"M"}]')
        answer = json.loads((await bad.receive()).data)
        assert answer[:3] == [4, "x1", "TypeConstraintViolation"]
        assert (await good.call(call.Heartbeat(), suppress=False)).current_time
        await bad.send_str("\x00\x01 definitely not OCPP")
        assert json.loads((await bad.receive()).data)[:3] == [4, "-1", "GenericError"]
        assert (await good.call(call.Heartbeat(), suppress=False)).current_time


async def test_a_reconnecting_charger_replaces_its_old_connection(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(ChargerRecord("CP-RE"))
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(csms.url("CP-RE"), protocols=("ocpp1.6",)) as old,
    ):
        first = csms.runtime.connected.get("CP-RE")
        async with connected(Charger16, csms.url("CP-RE"), "CP-RE", "ocpp1.6") as charger:
            closing = await old.receive()
            assert closing.type is aiohttp.WSMsgType.CLOSE
            assert first is not None
            await first.wait_closed()
            current = csms.runtime.connected.get("CP-RE")
            assert current is not None
            assert current is not first
            assert (await charger.call(call.Heartbeat(), suppress=False)).current_time
            state = await csms.runtime.live_state.get("CP-RE")
            assert state is not None
            assert state.connected


async def test_a_command_the_charger_never_answers_times_out(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(ChargerRecord("CP-SILENT"))
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(csms.url("CP-SILENT"), protocols=("ocpp2.0.1",)) as silent,
    ):
        await silent.send_str('[2,"h1","Heartbeat",{}]')
        assert json.loads((await silent.receive()).data)[:2] == [3, "h1"]
        result = await csms.runtime.commands.reset("CP-SILENT", hard=True, timeout_s=0.05)
        assert result.outcome is CommandOutcome.TIMEOUT
        late = json.loads((await silent.receive()).data)
        assert late[2] == "Reset"
        await silent.send_str(json.dumps([3, late[1], {"status": "Accepted"}]))  # too late: dropped
        await silent.send_str('[2,"h2","Heartbeat",{}]')
        assert json.loads((await silent.receive()).data)[:2] == [3, "h2"]


@pytest.mark.csms_settings(max_message_bytes=1024, hard_max_message_bytes=4096)
async def test_message_size_limits(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(ChargerRecord("CP-BIG"))
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(csms.url("CP-BIG"), protocols=("ocpp2.0.1",)) as charger,
    ):
        await charger.send_str(json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "y" * 2000}]))
        assert json.loads((await charger.receive()).data)[:3] == [4, "big", "FormatViolation"]
        await charger.send_str(json.dumps([2, "huge", "DataTransfer", {"vendorId": "x", "data": "y" * 5000}]))
        closing = await charger.receive()
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == 1009
