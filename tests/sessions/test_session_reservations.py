"""A session start against a reserved connector, through the real reservations port: another
driver's hold refuses it, the holder's own start uses (and cancels at the charger) the hold."""

from __future__ import annotations

import pytest
from ocpp.v16 import call as call16

from sessions.events import SessionState
from tests.csms.chargers import connected
from tests.sessions.conftest import RunningApi
from tests.sessions.helpers import event_log, seed_driver
from tests.sessions.reservation_chargers import Reserving16, next_request, place_charger
from tests.sessions.test_session_e2e import booted16, now_text, start

pytestmark = pytest.mark.asyncio


async def test_a_reserved_connector_starts_only_for_its_driver(api: RunningApi) -> None:
    log = event_log(api)
    holder = await seed_driver(api, "tess", rfid="RFID-TESS")
    other = await seed_driver(api, "uma")
    await place_charger(api, "CP-T", 48.1, 11.5)
    async with connected(Reserving16, api.charger_url("CP-T"), "CP-T", "ocpp1.6") as charger:
        await booted16(charger)
        async with api.http.post(
            f"{api.base_url}/v1/reservations",
            json={"charger_id": "CP-T", "connector_id": 1, "duration_s": 900},
            headers=api.headers("tess"),
        ) as r:
            assert r.status == 201
            reservation_id = (await r.json())["reservation_id"]
        await next_request(charger, "ReserveNow")

        body = {"charger_id": "CP-T", "connector_id": 1}
        status, refused = await start(api, "uma", {**body, "payment_method_id": other}, "k-uma")
        assert (status, "reserved by another driver" in refused["detail"]) == (409, True)

        status, created = await start(api, "tess", {**body, "payment_method_id": holder}, "k-tess")
        assert status == 201
        assert created["reservation_id"] == reservation_id
        assert (await next_request(charger, "CancelReservation"))["reservation_id"] == reservation_id
        remote = await next_request(charger, "RemoteStartTransaction")
        await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag=remote["id_tag"], meter_start=0, timestamp=now_text()
            ),
            suppress=False,
        )
        active = await log.wait_state(created["session_id"], SessionState.ACTIVE)
    assert active.session_id == created["session_id"]
