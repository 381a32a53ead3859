"""Reservations end to end with ``ocpp``-package chargers: ReserveNow, overlaps, expiry, cancel,
use by a transaction, and who may see what."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.storage.chargers import ChargerRecord, ConnectorSpec
from tests.csms.chargers import connected
from tests.sessions.conftest import RunningApi
from tests.sessions.helpers import reserve, seed_driver
from tests.sessions.reservation_chargers import Reserving16, Reserving201, next_request, place_charger

pytestmark = pytest.mark.asyncio


async def reservation(
    api: RunningApi, driver: str, reservation_id: int, method: str = "GET"
) -> tuple[int, Any]:
    url = f"{api.base_url}/v1/reservations/{reservation_id}"
    async with api.http.request(method, url, headers=api.headers(driver)) as response:
        return response.status, await response.json()


async def eventually_status(api: RunningApi, driver: str, reservation_id: int, expected: str) -> bool:
    """Whether the reservation reaches ``expected`` within a few seconds (the charger's answer is
    stored after the charger has seen the request)."""
    for _ in range(100):
        if (await reservation(api, driver, reservation_id))[1]["status"] == expected:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_reserve_now_reaches_the_charger_and_only_the_driver_sees_it(api: RunningApi) -> None:
    await seed_driver(api, "ann", rfid="RFID-ANN")
    await place_charger(api, "CP-R1", 50.0, 8.0)
    async with connected(Reserving16, api.charger_url("CP-R1"), "CP-R1", "ocpp1.6") as charger:
        status, made = await reserve(api, "ann", charger_id="CP-R1", connector_id=1, duration_s=600)
        assert status == 201
        assert made["status"] == "active"
        sent = await next_request(charger, "ReserveNow")
        assert (sent["connector_id"], sent["id_tag"], sent["reservation_id"]) == (
            1,
            "RFID-ANN",
            made["reservation_id"],
        )
        expires = datetime.fromisoformat(made["expires_at"])
        assert datetime.fromisoformat(sent["expiry_date"].replace("Z", "+00:00")) == expires.replace(
            microsecond=expires.microsecond // 1000 * 1000
        )
        rid = made["reservation_id"]
        assert (await reservation(api, "ann", rid))[1]["status"] == "active"
        async with api.http.get(f"{api.base_url}/v1/reservations", headers=api.headers("ann")) as response:
            assert [r["reservation_id"] for r in (await response.json())["reservations"]] == [rid]
        async with api.http.get(f"{api.base_url}/v1/reservations", headers=api.headers("bob")) as response:
            assert (await response.json())["reservations"] == []
        assert (await reservation(api, "bob", rid))[0] == 404
        assert (await reservation(api, "bob", rid, "DELETE"))[0] == 404
        status, cancelled = await reservation(api, "ann", rid, "DELETE")
        assert (status, cancelled["status"]) == (200, "cancelled")
        assert (await next_request(charger, "CancelReservation"))["reservation_id"] == rid
        assert (await reservation(api, "ann", rid, "DELETE"))[1]["status"] == "cancelled"  # harmless twice
        assert charger.received.empty()


async def test_overlapping_requests_get_one_reservation_and_409s(api: RunningApi) -> None:
    await place_charger(api, "CP-R2", 50.0, 8.1, connectors=((1, "Type2", 22.0), (2, "Type2", 22.0)))
    async with connected(Reserving16, api.charger_url("CP-R2"), "CP-R2", "ocpp1.6"):
        answers = await asyncio.gather(
            *(
                reserve(api, f"driver-{i}", charger_id="CP-R2", connector_id=1, duration_s=900)
                for i in range(6)
            )
        )
        assert sorted(status for status, _ in answers) == [201, 409, 409, 409, 409, 409]
        refused = next(body for status, body in answers if status == 409)
        assert "already reserved" in refused["detail"]
        later = (datetime.now(UTC) + timedelta(minutes=25)).isoformat()
        status, _ = await reserve(
            api, "driver-x", charger_id="CP-R2", connector_id=1, start_at=later, duration_s=300
        )
        assert status == 201  # starts after the first one's hold ends
        status, _ = await reserve(api, "driver-y", charger_id="CP-R2", connector_id=2, duration_s=300)
        assert status == 201  # another connector
    count = await api.csms.database.pool.fetchval(
        "SELECT count(*) FROM reservations WHERE charger_id = 'CP-R2' AND status IN ('active', 'scheduled')"
    )
    assert count == 3


@pytest.mark.sessions_settings(reservation_hold_s=1, reservation_check_interval_s=0.05)
async def test_an_unused_reservation_is_released_with_cancel_reservation(api: RunningApi) -> None:
    await place_charger(api, "CP-R3", 50.0, 8.2)
    async with connected(Reserving16, api.charger_url("CP-R3"), "CP-R3", "ocpp1.6") as charger:
        status, made = await reserve(api, "cat", charger_id="CP-R3", connector_id=1)
        assert status == 201
        await next_request(charger, "ReserveNow")
        cancelled = await next_request(charger, "CancelReservation")
        assert cancelled["reservation_id"] == made["reservation_id"]
        assert (await reservation(api, "cat", made["reservation_id"]))[1]["status"] == "expired"


@pytest.mark.sessions_settings(reservation_check_interval_s=0.05)
async def test_a_later_start_is_sent_when_it_starts(api: RunningApi) -> None:
    await place_charger(api, "CP-R4", 50.0, 8.3)
    async with connected(Reserving16, api.charger_url("CP-R4"), "CP-R4", "ocpp1.6") as charger:
        start = datetime.now(UTC) + timedelta(seconds=3)
        status, made = await reserve(
            api, "dan", charger_id="CP-R4", connector_id=1, start_at=start.isoformat(), duration_s=120
        )
        assert (status, made["status"]) == (201, "scheduled")
        assert charger.received.empty()
        await next_request(charger, "ReserveNow")
        assert datetime.now(UTC) >= start - timedelta(seconds=2)
        assert await eventually_status(api, "dan", made["reservation_id"], "active")


async def test_201_reservation_is_used_by_the_transaction_that_names_it(api: RunningApi) -> None:
    await place_charger(api, "CS-R5", 50.0, 8.4)
    async with connected(Reserving201, api.charger_url("CS-R5"), "CS-R5", "ocpp2.0.1") as charger:
        status, made = await reserve(api, "eve", charger_id="CS-R5", connector_id=1, duration_s=300)
        assert status == 201
        sent = await next_request(charger, "ReserveNow")
        assert (sent["id"], sent["evse_id"], sent["id_token"]["type"]) == (
            made["reservation_id"],
            1,
            "Central",
        )
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        await charger.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=now,
                trigger_reason="Authorized",
                seq_no=0,
                transaction_info={"transactionId": "TX-R5"},
                evse={"id": 1, "connectorId": 1},
                id_token={"idToken": sent["id_token"]["id_token"], "type": "Central"},
                reservation_id=made["reservation_id"],
            ),
            suppress=False,
        )
        assert (await reservation(api, "eve", made["reservation_id"]))[1]["status"] == "used"


async def test_a_refusing_or_absent_charger_is_a_409(api: RunningApi) -> None:
    await place_charger(api, "CP-R6", 50.0, 8.5)
    async with connected(Reserving16, api.charger_url("CP-R6"), "CP-R6", "ocpp1.6") as charger:
        charger.reserve_answer = "Occupied"
        status, body = await reserve(api, "fay", charger_id="CP-R6", connector_id=1)
        assert status == 409
        assert "Occupied" in body["detail"]
        assert body["reservation"]["status"] == "rejected"
    status, body = await reserve(api, "fay", charger_id="CP-R6", connector_id=1)
    assert (status, body["reservation"]["status"]) == (409, "failed")
    assert (await reserve(api, "fay", charger_id="CP-NONE", connector_id=1))[0] == 404
    assert (await reserve(api, "fay", charger_id="CP-R6", connector_id=7))[0] == 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"connector_id": 1}, "charger_id must be"),
        ({"charger_id": "CP", "connector_id": 0}, "connector_id must be"),
        ({"charger_id": "CP", "connector_id": True}, "connector_id must be"),
        ({"charger_id": "CP", "connector_id": 1, "duration_s": 3600}, "duration_s must be"),
        ({"charger_id": "CP", "connector_id": 1, "start_at": "tomorrow"}, "not an ISO 8601"),
        ({"charger_id": "CP", "connector_id": 1, "start_at": "2030-01-01T00:00:00"}, "time zone"),
        (
            {"charger_id": "CP", "connector_id": 1, "start_at": "2099-01-01T00:00:00Z"},
            "within the next 1800 s",
        ),
        ({"charger_id": "CP", "connector_id": 1, "colour": "red"}, "unknown field(s): colour"),
    ],
)
async def test_bad_requests_are_400(api: RunningApi, body: dict[str, Any], fragment: str) -> None:
    status, problem = await reserve(api, "gus", **body)
    assert status == 400
    assert fragment in problem["detail"]
    async with api.http.get(f"{api.base_url}/v1/reservations/abc", headers=api.headers("gus")) as response:
        assert response.status == 400


async def test_the_session_port_sees_holds_and_claims_the_drivers_own(api: RunningApi) -> None:
    claims = api.sessions.reservations
    assert claims is not None
    await place_charger(api, "CP-R7", 50.0, 8.6)
    async with connected(Reserving16, api.charger_url("CP-R7"), "CP-R7", "ocpp1.6") as charger:
        _, made = await reserve(api, "hal", charger_id="CP-R7", connector_id=1, duration_s=300)
        await next_request(charger, "ReserveNow")
        now = datetime.now(UTC)
        assert await claims.held_by_other("ivy", "CP-R7", 1, now)
        assert not await claims.held_by_other("hal", "CP-R7", 1, now)
        assert await claims.claim("ivy", "CP-R7", 1, now) is None
        assert await claims.claim("hal", "CP-R7", 1, now) == made["reservation_id"]
        assert (await next_request(charger, "CancelReservation"))["reservation_id"] == made["reservation_id"]
        assert not await claims.held_by_other("ivy", "CP-R7", 1, now)
        assert (await reservation(api, "hal", made["reservation_id"]))[1]["status"] == "used"
        await charger.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"),
            suppress=False,
        )


@pytest.mark.sessions_settings(reservation_check_interval_s=0.05)
async def test_a_hold_that_ran_out_while_no_node_was_up_is_released_on_start(api: RunningApi) -> None:
    await place_charger(api, "CP-R8", 50.0, 8.7)
    past = datetime.now(UTC) - timedelta(minutes=20)
    async with connected(Reserving16, api.charger_url("CP-R8"), "CP-R8", "ocpp1.6") as charger:
        # what a node that died mid-hold left behind in PostgreSQL
        reservation_id = await api.csms.database.pool.fetchval(
            """INSERT INTO reservations (driver_id, charger_id, evse_id, id_token, status, starts_at,
                   ends_at, expires_at)
               VALUES ('kim', 'CP-R8', 1, 'RFID-KIM', 'active', $1, $2, $2) RETURNING reservation_id""",
            past,
            past + timedelta(minutes=15),
        )
        cancelled = await next_request(charger, "CancelReservation")
        assert cancelled["reservation_id"] == reservation_id
    assert (await reservation(api, "kim", reservation_id))[1]["status"] == "expired"


@pytest.mark.sessions_settings(reservation_hold_by_station_s={"ST-SHORT": 120})
async def test_a_stations_own_hold_bounds_the_reservation(api: RunningApi) -> None:
    await api.csms.database.pool.execute("INSERT INTO stations (station_id) VALUES ('ST-SHORT')")
    await api.csms.chargers.save(
        ChargerRecord("CP-R9", station_id="ST-SHORT", connectors=(ConnectorSpec(1, 1, "Type2", 22.0),))
    )
    await place_charger(api, "CP-R10", 50.0, 8.8)
    async with (
        connected(Reserving16, api.charger_url("CP-R9"), "CP-R9", "ocpp1.6"),
        connected(Reserving16, api.charger_url("CP-R10"), "CP-R10", "ocpp1.6"),
    ):
        _, short = await reserve(api, "lou", charger_id="CP-R9", connector_id=1, duration_s=1800)
        _, default = await reserve(api, "lou", charger_id="CP-R10", connector_id=1, duration_s=1800)
    held = {
        r["charger_id"]: datetime.fromisoformat(r["expires_at"]) - datetime.fromisoformat(r["starts_at"])
        for r in (short, default)
    }
    assert held == {"CP-R9": timedelta(seconds=120), "CP-R10": timedelta(seconds=900)}


async def test_a_201_charger_ending_a_reservation_frees_the_connector(api: RunningApi) -> None:
    await place_charger(api, "CS-R9", 50.2, 8.6)
    async with connected(Reserving201, api.charger_url("CS-R9"), "CS-R9", "ocpp2.0.1") as charger:
        status, made = await reserve(api, "ivy", charger_id="CS-R9", connector_id=1, duration_s=300)
        assert status == 201
        await next_request(charger, "ReserveNow")
        assert await eventually_status(api, "ivy", made["reservation_id"], "active")
        await charger.call(
            call201.ReservationStatusUpdate(
                reservation_id=made["reservation_id"], reservation_update_status="Expired"
            ),
            suppress=False,
        )
        assert (await reservation(api, "ivy", made["reservation_id"]))[1]["status"] == "expired"
        # the connector is free again: another driver may hold it now
        status, _ = await reserve(api, "jon", charger_id="CS-R9", connector_id=1, duration_s=300)
        assert status == 201
