"""What the drivers' tokens tell a charger (expiry for its authorization cache, group), and a session
whose transaction learns its driver and EVSE after the start (2.0.1 E02), end to end: ``ocpp``
chargers against the real server, the sessions package and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from sessions.events import SessionState
from tests.csms.chargers import Charger16, Charger201, connected
from tests.sessions.conftest import RunningApi
from tests.sessions.helpers import event_log, register_charger, seed_driver
from tests.sessions.test_session_e2e import start

pytestmark = pytest.mark.asyncio

BOOT201 = call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")


def wire_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def truncated_ms(moment: datetime) -> datetime:
    """``moment`` as the wire carries it (milliseconds)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


async def token_of(api: RunningApi, token: str, **columns: Any) -> None:
    for column, value in columns.items():
        await api.csms.database.pool.execute(
            f"UPDATE driver_tokens SET {column} = $2 WHERE id_token = $1", token, value
        )


@pytest.mark.sessions_settings(authorization_cache_lifetime_s=3600.0)
async def test_an_accepted_token_expires_from_the_cache_at_its_own_expiry_or_the_cache_lifetime(
    api: RunningApi,
) -> None:
    """1.6 §7.29 IdTagInfo.expiryDate, 2.0.1 IdTokenInfoType.cacheExpiryDateTime (C10: the cache
    keeps a token until then): the token's ``expires_at``, capped at the configured cache lifetime;
    its group as 1.6 ``parentIdTag`` / 2.0.1 ``groupIdToken`` (C09). Refusals carry neither."""
    await seed_driver(api, "olga-auth", rfid="RFID-OLGA-A")
    await seed_driver(api, "pia-auth", rfid="RFID-PIA-A")
    await seed_driver(api, "vic-auth", rfid="RFID-VIC-A", blocked=True)
    await token_of(api, "RFID-OLGA-A", group_id_token="FAMILY-7")
    soon = datetime.now(UTC) + timedelta(minutes=10)
    await token_of(api, "RFID-PIA-A", expires_at=soon)
    await token_of(api, "RFID-VIC-A", group_id_token="FAMILY-7")
    await register_charger(api, "CS-AUTH")
    await register_charger(api, "CP-AUTH")
    async with connected(Charger201, api.charger_url("CS-AUTH"), "CS-AUTH", "ocpp2.0.1") as station:
        await station.call(BOOT201, suppress=False)
        before = datetime.now(UTC)
        olga = await station.call(
            call201.Authorize(id_token={"idToken": "RFID-OLGA-A", "type": "ISO14443"}), suppress=False
        )
        after = datetime.now(UTC)
        pia = await station.call(
            call201.Authorize(id_token={"idToken": "rfid-pia-a", "type": "ISO14443"}), suppress=False
        )
        vic = await station.call(
            call201.Authorize(id_token={"idToken": "RFID-VIC-A", "type": "ISO14443"}), suppress=False
        )
    olga_info = olga.id_token_info
    assert olga_info["status"] == "Accepted"
    assert olga_info["group_id_token"] == {"id_token": "FAMILY-7", "type": "Central"}
    expiry = wire_time(olga_info["cache_expiry_date_time"])
    assert truncated_ms(before + timedelta(hours=1)) <= expiry <= after + timedelta(hours=1)
    assert pia.id_token_info == {"status": "Accepted", "cache_expiry_date_time": _ms_text(soon)}
    assert vic.id_token_info == {"status": "Blocked"}
    async with connected(Charger16, api.charger_url("CP-AUTH"), "CP-AUTH", "ocpp1.6") as charger:
        olga16 = await charger.call(call16.Authorize(id_tag="RFID-OLGA-A"), suppress=False)
        pia16 = await charger.call(call16.Authorize(id_tag="RFID-PIA-A"), suppress=False)
    assert olga16.id_tag_info["parent_id_tag"] == "FAMILY-7"
    assert wire_time(olga16.id_tag_info["expiry_date"]) - expiry < timedelta(seconds=30)
    assert pia16.id_tag_info == {"status": "Accepted", "expiry_date": _ms_text(soon)}


@pytest.mark.sessions_settings(authorization_cache_lifetime_s=None)
async def test_without_a_cache_lifetime_a_token_without_expiry_is_sent_none(api: RunningApi) -> None:
    """The cap is configurable: without it, a token that never expires is sent without an expiry
    (the charger's own AuthCacheLifeTime, if any, decides), and one that does expire keeps its own."""
    await seed_driver(api, "wes-auth", rfid="RFID-WES-A")
    await seed_driver(api, "xia-auth", rfid="RFID-XIA-A")
    later = datetime.now(UTC) + timedelta(days=30)
    await token_of(api, "RFID-XIA-A", expires_at=later)
    await register_charger(api, "CS-NOCAP")
    async with connected(Charger201, api.charger_url("CS-NOCAP"), "CS-NOCAP", "ocpp2.0.1") as station:
        await station.call(BOOT201, suppress=False)
        wes = await station.call(
            call201.Authorize(id_token={"idToken": "RFID-WES-A", "type": "ISO14443"}), suppress=False
        )
        xia = await station.call(
            call201.Authorize(id_token={"idToken": "RFID-XIA-A", "type": "ISO14443"}), suppress=False
        )
    assert wes.id_token_info == {"status": "Accepted"}
    assert xia.id_token_info == {"status": "Accepted", "cache_expiry_date_time": _ms_text(later)}


def _ms_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_a_token_given_after_the_start_makes_the_session_the_drivers(api: RunningApi) -> None:
    """E02 (cable plugged in first): the Started event carries neither idToken nor (as some stations
    send it) evse, so the session opens as free vend on EVSE 0 with no driver. The Updated event with
    triggerReason Authorized brings the driver's token and the EVSE: the session becomes the
    driver's (RFID, their token, their tier to the planner) on that EVSE, and completes as theirs."""
    log = event_log(api)
    await seed_driver(api, "rosa-auth", rfid="RFID-ROSA-A")
    await api.csms.database.pool.execute("UPDATE drivers SET tier = 'gold' WHERE driver_id = 'rosa-auth'")
    await register_charger(api, "CS-E02")
    row_sql = """SELECT driver_id, evse_id, origin, id_token, state FROM charging_sessions
                 WHERE charger_id = 'CS-E02' AND transaction_id = 'TX-E02'"""

    def event(event_type: str, seq_no: int, minute: int, **extra: Any) -> Any:
        at = f"2026-05-01T10:{minute:02d}:00Z"
        return call201.TransactionEvent(
            event_type=event_type,
            timestamp=at,
            seq_no=seq_no,
            meter_value=[
                {
                    "timestamp": at,
                    "sampledValue": [
                        {"value": 1000.0 + 100 * minute, "measurand": "Energy.Active.Import.Register"}
                    ],
                }
            ],
            **extra,
        )

    async with connected(Charger201, api.charger_url("CS-E02"), "CS-E02", "ocpp2.0.1") as station:
        await station.call(BOOT201, suppress=False)
        await station.call(
            event(
                "Started",
                0,
                0,
                trigger_reason="CablePluggedIn",
                transaction_info={"transactionId": "TX-E02", "chargingState": "EVConnected"},
            ),
            suppress=False,
        )
        opened = await api.csms.database.pool.fetchrow(row_sql)
        assert dict(opened) == {
            "driver_id": None,
            "evse_id": 0,
            "origin": "free_vend",
            "id_token": None,
            "state": "ACTIVE",
        }
        authorized = await station.call(
            event(
                "Updated",
                1,
                2,
                trigger_reason="Authorized",
                transaction_info={"transactionId": "TX-E02", "chargingState": "Charging"},
                evse={"id": 1, "connectorId": 1},
                id_token={"idToken": "RFID-ROSA-A", "type": "ISO14443"},
            ),
            suppress=False,
        )
        assert authorized.id_token_info["status"] == "Accepted"
        identified = await api.csms.database.pool.fetchrow(row_sql)
        assert dict(identified) == {
            "driver_id": "rosa-auth",
            "evse_id": 1,
            "origin": "rfid",
            "id_token": "RFID-ROSA-A",
            "state": "ACTIVE",
        }
        state = await api.csms.live_state.get("CS-E02")
        assert state is not None
        assert state.driver_needs[1].tier == "gold"
        # once the session has its EVSE and token, later events of its transaction skip the look-up
        lifecycle = api.sessions.lifecycle
        assert lifecycle is not None
        updated = event(
            "Updated",
            10,
            10,
            trigger_reason="MeterValuePeriodic",
            transaction_info={"transactionId": "TX-E02", "chargingState": "Charging"},
            evse={"id": 1, "connectorId": 1},
        )
        await station.call(updated, suppress=False)
        assert ("CS-E02", "TX-E02") in lifecycle._late._identified
        # the stop card (another one) does not change whose session it is
        await station.call(
            event(
                "Ended",
                2,
                30,
                trigger_reason="StopAuthorized",
                transaction_info={"transactionId": "TX-E02", "stoppedReason": "Local"},
                id_token={"idToken": "RFID-SOMEONE", "type": "ISO14443"},
            ),
            suppress=False,
        )
        await log.wait_for(lambda e: e.kind == "state" and e.state is SessionState.COMPLETED)
        assert ("CS-E02", "TX-E02") not in lifecycle._late._identified  # forgotten with its end
    ended = await api.csms.database.pool.fetchrow(row_sql)
    assert (ended["driver_id"], ended["id_token"], ended["state"]) == (
        "rosa-auth",
        "RFID-ROSA-A",
        "COMPLETED",
    )
    async with api.http.get(f"{api.base_url}/v1/sessions?driver=me", headers=api.headers("rosa-auth")) as r:
        sessions = (await r.json())["sessions"]
    assert [(s["state"], s["origin"], s["energy_kwh"]) for s in sessions] == [("COMPLETED", "rfid", 3.0)]


async def test_a_remote_start_after_plug_in_makes_the_running_session_the_app_drivers(
    api: RunningApi,
) -> None:
    """F01 (cable plugged in first, then a remote start) on a station that sends no ``evse`` in its
    Started event: the session it opened (free vend, EVSE 0) becomes the app driver's when the Updated
    event brings our app token and the EVSE; the token is no driver's card, so the driver is the app
    session's (whose own session is not merged and times out)."""
    payment = await seed_driver(api, "sam-auth")
    await register_charger(api, "CS-F01")
    row_sql = """SELECT driver_id, evse_id, origin, id_token FROM charging_sessions
                 WHERE charger_id = 'CS-F01' AND transaction_id = 'TX-F01'"""
    async with connected(Charger201, api.charger_url("CS-F01"), "CS-F01", "ocpp2.0.1") as station:
        await station.call(BOOT201, suppress=False)
        await station.call(
            call201.StatusNotification(
                timestamp=_ms_text(datetime.now(UTC)), connector_status="Available", evse_id=1, connector_id=1
            ),
            suppress=False,
        )
        await station.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=_ms_text(datetime.now(UTC)),
                trigger_reason="CablePluggedIn",
                seq_no=0,
                transaction_info={"transactionId": "TX-F01", "chargingState": "EVConnected"},
            ),
            suppress=False,
        )
        status, created = await start(
            api, "sam-auth", {"charger_id": "CS-F01", "connector_id": 1, "payment_method_id": payment}, "f01"
        )
        assert status == 201, created
        action, request = await asyncio.wait_for(station.received.get(), 10)
        assert action == "RequestStartTransaction"
        await station.call(
            call201.TransactionEvent(
                event_type="Updated",
                timestamp=_ms_text(datetime.now(UTC)),
                trigger_reason="RemoteStart",
                seq_no=1,
                transaction_info={
                    "transactionId": "TX-F01",
                    "chargingState": "Charging",
                    "remoteStartId": request["remote_start_id"],
                },
                evse={"id": 1, "connectorId": 1},
                id_token={"idToken": request["id_token"]["id_token"], "type": request["id_token"]["type"]},
            ),
            suppress=False,
        )
    row = await api.csms.database.pool.fetchrow(row_sql)
    assert dict(row) == {
        "driver_id": "sam-auth",
        "evse_id": 1,
        "origin": "app",
        "id_token": request["id_token"]["id_token"],
    }
