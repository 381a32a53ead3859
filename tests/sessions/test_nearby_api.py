"""GET /v1/chargers/nearby through the running app: validation, order, live status, price, reserved."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ocpp.v16 import call as call16

from csms.storage.chargers import ChargerRecord, ConnectorSpec
from sessions.auth import Role
from tests.csms.chargers import connected
from tests.sessions.conftest import RunningApi
from tests.sessions.reservation_chargers import Reserving16, next_request, place_charger, report_status

pytestmark = pytest.mark.asyncio

TARIFF = {
    "country_code": "DE",
    "party_id": "FWT",
    "id": "T-NEARBY",
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.39, "vat": 19.0, "step_size": 1}]}],
}


async def nearby(api: RunningApi, driver: str = "dana", **params: Any) -> tuple[int, dict[str, Any]]:
    query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
    async with api.http.get(
        f"{api.base_url}/v1/chargers/nearby", params=query, headers=api.headers(driver)
    ) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"lng": 10}, "'lat' is required"),
        ({"lat": 91, "lng": 10}, "'lat' must be between -90 and 90"),
        ({"lat": 50, "lng": -180.5}, "'lng' must be between -180 and 180"),
        ({"lat": "north", "lng": 10}, "'lat' must be a number"),
        ({"lat": "nan", "lng": 10}, "'lat' must be between"),
        ({"lat": 50, "lng": 10, "radius_km": 0}, "'radius_km' must be more than 0"),
        ({"lat": 50, "lng": 10, "radius_km": 51}, "'radius_km' must be between 0 and 50"),
        ({"lat": 50, "lng": 10, "connector_type": "USB-C"}, "unknown connector_type 'USB-C'"),
        ({"lat": 50, "lng": 10, "min_power_kw": -1}, "'min_power_kw' must be between"),
        ({"lat": 50, "lng": 10, "available_only": "maybe"}, "'available_only' must be true or false"),
        ({"lat": 50, "lng": 10, "limit": 0}, "'limit' must be between 1 and 100"),
        ({"lat": 50, "lng": 10, "limit": "ten"}, "'limit' must be a whole number"),
        ({"lat": 50, "lon": 10}, "unknown query parameter(s): lon"),
    ],
)
async def test_bad_parameters_are_400_problems(
    api: RunningApi, params: dict[str, Any], fragment: str
) -> None:
    status, body = await nearby(api, **params)
    assert status == 400
    assert body["status"] == 400
    assert fragment in body["detail"]


async def test_a_drivers_token_is_required(api: RunningApi) -> None:
    url = f"{api.base_url}/v1/chargers/nearby?lat=50&lng=10"
    async with api.http.get(url) as response:
        assert response.status == 401
    operator = api.sessions.issuer.mint("op", Role.OPERATOR, cpo_id="cpo")
    async with api.http.get(url, headers={"Authorization": f"Bearer {operator}"}) as response:
        assert response.status == 403


async def test_nearest_first_with_filters_and_price(api: RunningApi) -> None:
    await api.sessions.tariffs.publish(TARIFF, cpo_id=None, created_by="test")
    await api.sessions.tariffs.assign("charger", "CP-NEAR", "T-NEARBY")
    await place_charger(api, "CP-FAR", 50.05, 10.0, connectors=((1, "cCCS2", 150.0),))
    await place_charger(api, "CP-NEAR", 50.001, 10.0)
    await place_charger(api, "CP-ELSEWHERE", 51.0, 10.0)
    status, body = await nearby(api, lat=50.0, lng=10.0, radius_km=10)
    assert status == 200
    assert [c["charger_id"] for c in body["chargers"]] == ["CP-NEAR", "CP-FAR"]
    near, far = body["chargers"]
    assert near["distance_km"] == pytest.approx(0.1112, abs=1e-3)
    assert near["connectors"] == [
        {
            "connector_id": 1,
            "evse_id": 1,
            "ocpp_connector_id": 1,
            "connector_type": "IEC_62196_T2",
            "max_power_kw": 22.0,
            "status": "Unknown",
        }
    ]
    assert near["price"] == {
        "tariff_id": "T-NEARBY",
        "currency": "EUR",
        "energy_per_kwh": "0.39",
        "time_per_hour": None,
        "parking_per_hour": None,
        "flat_per_session": None,
        "vat_percent": "19.0",
    }
    assert far["price"] is None
    assert (far["max_power_kw"], far["connector_types"]) == (150.0, ["IEC_62196_T2_COMBO"])
    _, dc = await nearby(api, lat=50.0, lng=10.0, radius_km=10, connector_type="CCS2", min_power_kw=100)
    assert [c["charger_id"] for c in dc["chargers"]] == ["CP-FAR"]
    _, one = await nearby(api, lat=50.0, lng=10.0, radius_km=10, limit=1)
    assert one["count"] == 1


async def test_status_changes_show_at_once_and_registry_changes_within_a_poll(api: RunningApi) -> None:
    await place_charger(api, "CP-LIVE", 48.0, 2.0, connectors=((1, "Type2", 22.0), (2, "Type2", 22.0)))
    async with connected(Reserving16, api.charger_url("CP-LIVE"), "CP-LIVE", "ocpp1.6") as charger:
        await charger.call(
            call16.BootNotification(charge_point_model="M", charge_point_vendor="V"), suppress=False
        )
        await report_status(charger, 1, "Available")
        await report_status(charger, 2, "Charging")
        _, body = await nearby(api, lat=48.0, lng=2.0, radius_km=1)
        assert [c["status"] for c in body["chargers"][0]["connectors"]] == ["Available", "Occupied"]
        _, available = await nearby(api, lat=48.0, lng=2.0, radius_km=1, available_only=True)
        assert available["count"] == 1
        await report_status(charger, 1, "Faulted")
        _, none = await nearby(api, lat=48.0, lng=2.0, radius_km=1, available_only=True)
        assert none["count"] == 0
    # a charger added by another node or the operator CLI shows after the index's own poll
    await api.csms.chargers.save(
        ChargerRecord(charger_id="CP-LATER", latitude_deg=48.0005, longitude_deg=2.0)
    )
    for _ in range(200):
        _, body = await nearby(api, lat=48.0, lng=2.0, radius_km=1)
        if "CP-LATER" in [c["charger_id"] for c in body["chargers"]]:
            break
        await asyncio.sleep(0.05)
    assert [c["charger_id"] for c in body["chargers"]] == ["CP-LIVE", "CP-LATER"]


async def test_a_reserved_connector_shows_reserved(api: RunningApi) -> None:
    await place_charger(api, "CP-RES", 45.0, 7.0)
    async with connected(Reserving16, api.charger_url("CP-RES"), "CP-RES", "ocpp1.6") as charger:
        await report_status(charger, 1, "Available")
        async with api.http.post(
            f"{api.base_url}/v1/reservations",
            json={"charger_id": "CP-RES", "connector_id": 1, "duration_s": 600},
            headers=api.headers("erin"),
        ) as response:
            assert response.status == 201
        await next_request(charger, "ReserveNow")
        _, body = await nearby(api, lat=45.0, lng=7.0, radius_km=1)
        assert body["chargers"][0]["connectors"][0]["status"] == "Reserved"
        _, available = await nearby(api, lat=45.0, lng=7.0, radius_km=1, available_only=True)
        assert available["count"] == 0


async def test_a_full_reload_reads_what_the_change_poll_reads(api: RunningApi) -> None:
    pool = api.csms.database.pool
    await pool.execute(
        """INSERT INTO stations (station_id, time_zone, latitude_deg, longitude_deg)
           VALUES ('ST-1', 'Europe/Berlin', 52.5, 13.4)"""
    )
    await api.sessions.tariffs.publish(TARIFF, cpo_id=None, created_by="test")
    await api.sessions.tariffs.assign("station", "ST-1", "T-NEARBY")
    await api.csms.chargers.save(
        ChargerRecord(
            charger_id="CP-AT-STATION",
            station_id="ST-1",
            connectors=(ConnectorSpec(1, 1, "cCCS2", 150.0), ConnectorSpec(1, 2, "CHAdeMO", 50.0)),
        )
    )
    await place_charger(api, "CP-OWN", 52.501, 13.4, connectors=((2, "Type2", 11.0), (1, "Type2", 22.0)))
    await api.csms.chargers.save(ChargerRecord(charger_id="CP-NOWHERE"))
    assert api.sessions.nearby is not None
    await api.sessions.nearby.apply_registry_changes()
    _, polled = await nearby(api, lat=52.5, lng=13.4, radius_km=2)
    await api.sessions.nearby.reload()
    _, reloaded = await nearby(api, lat=52.5, lng=13.4, radius_km=2)
    assert reloaded == polled
    assert [c["charger_id"] for c in reloaded["chargers"]] == ["CP-AT-STATION", "CP-OWN"]
    station, own = reloaded["chargers"]
    assert station["connector_types"] == ["CHADEMO", "IEC_62196_T2_COMBO"]
    assert station["price"]["energy_per_kwh"] == "0.39"
    assert [(c["evse_id"], c["ocpp_connector_id"]) for c in own["connectors"]] == [(1, 1), (2, 1)]


async def test_a_node_still_loading_its_index_answers_503(api: RunningApi) -> None:
    feed = api.sessions.nearby
    assert feed is not None
    await feed.loaded.wait()
    feed.loaded.clear()  # as while a large registry loads after start-up
    try:
        async with api.http.get(
            f"{api.base_url}/v1/chargers/nearby?lat=1&lng=1", headers=api.headers("dana")
        ) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "2"
    finally:
        feed.loaded.set()
    assert (await nearby(api, lat=1, lng=1))[0] == 200


async def test_a_charger_that_drops_its_connection_shows_unavailable_until_it_is_back(
    api: RunningApi,
) -> None:
    await place_charger(api, "CP-DROP", 47.0, 3.0, connectors=((1, "Type2", 22.0),))

    async def statuses() -> list[str]:
        _, body = await nearby(api, lat=47.0, lng=3.0, radius_km=1)
        return [c["status"] for c in body["chargers"][0]["connectors"]]

    for _ in range(2):  # connected, dropped, connected again, dropped again
        async with connected(Reserving16, api.charger_url("CP-DROP"), "CP-DROP", "ocpp1.6") as charger:
            await charger.call(
                call16.BootNotification(charge_point_model="M", charge_point_vendor="V"), suppress=False
            )
            await report_status(charger, 1, "Available")
            assert await statuses() == ["Available"]
        for _ in range(200):  # the server notices the closed socket
            if await statuses() == ["Unavailable"]:
                break
            await asyncio.sleep(0.05)
        assert await statuses() == ["Unavailable"]
        _, available = await nearby(api, lat=47.0, lng=3.0, radius_km=1, available_only=True)
        assert available["count"] == 0
