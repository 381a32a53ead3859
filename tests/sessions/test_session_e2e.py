"""End to end: a driver starts, watches and stops a session on ``ocpp``-package chargers (1.6 and
2.0.1) through the real API, PostgreSQL and the real OCPP endpoint."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from sessions.auth import Role
from sessions.events import SessionState
from tests.csms.chargers import Charger16, Charger201, connected
from tests.sessions.conftest import RunningApi
from tests.sessions.helpers import SseReader, event_log, register_charger, seed_driver

pytestmark = pytest.mark.asyncio


def now_text(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


def meter_values_16(transaction_id: int, energy_wh: float, power_w: float) -> Any:
    return call16.MeterValues(
        connector_id=1,
        transaction_id=transaction_id,
        meter_value=[
            {
                "timestamp": now_text(),
                "sampledValue": [
                    {"value": str(energy_wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                    {"value": str(power_w), "measurand": "Power.Active.Import", "unit": "W"},
                ],
            }
        ],
    )


async def booted16(charger: Any) -> None:
    await charger.call(
        call16.BootNotification(charge_point_model="M", charge_point_vendor="V"), suppress=False
    )
    await charger.call(
        call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"), suppress=False
    )


async def start(api: RunningApi, driver: str, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    async with api.http.post(
        f"{api.base_url}/v1/sessions", json=body, headers=api.headers(driver, **{"Idempotency-Key": key})
    ) as response:
        return response.status, await response.json()


async def test_start_watch_stop_on_a_16_charger(api: RunningApi) -> None:
    log = event_log(api)
    payment = await seed_driver(api, "alice")
    await register_charger(api, "CP-A")
    await api.sessions.tariffs.publish(
        {
            "id": "std",
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]}],
        },
        cpo_id=None,
        created_by=None,
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    await api.sessions.tariffs.assign("charger", "CP-A", "std")
    body = {"charger_id": "CP-A", "connector_id": 1, "payment_method_id": payment}
    async with connected(Charger16, api.charger_url("CP-A"), "CP-A", "ocpp1.6") as charger:
        await booted16(charger)
        status, created = await start(api, "alice", body, "key-1")
        assert status == 201, created
        assert created["state"] == "INITIATED"
        session_id = created["session_id"]
        action, request = await asyncio.wait_for(charger.received.get(), 10)
        assert action == "RemoteStartTransaction"
        assert request["connector_id"] == 1
        id_tag = request["id_tag"]

        # the same key and body is the same session; the same key with another body is refused
        assert await start(api, "alice", body, "key-1") == (200, created | {"elapsed_s": None})
        status, problem = await start(api, "alice", {**body, "connector_id": 2}, "key-1")
        assert status == 409
        assert problem["session_id"] == session_id

        async with api.http.get(
            f"{api.base_url}/v1/sessions/{session_id}/live", headers=api.headers("alice")
        ) as stream:
            assert stream.status == 200
            assert stream.content_type == "text/event-stream"
            sse = SseReader(stream)
            first = await sse.next()
            assert (first.event, first.data["state"]) == ("state", "INITIATED")

            answer = await charger.call(
                call16.StartTransaction(
                    connector_id=1, id_tag=id_tag, meter_start=1000, timestamp=now_text()
                ),
                suppress=False,
            )
            assert answer.id_tag_info["status"] == "Accepted"
            active = await sse.until("state")
            assert active.data["state"] == "ACTIVE"

            await charger.call(
                call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"),
                suppress=False,
            )
            status_event = await sse.until("progress")
            assert status_event.data["charger_status"] == "Charging"
            await charger.call(meter_values_16(answer.transaction_id, 3500, 7000), suppress=False)
            progress = await sse.until("progress")
            assert (progress.data["energy_kwh"], progress.data["power_kw"]) == (2.5, 7.0)
            assert progress.data["cost_so_far"] == {"amount": "0.75", "currency": "EUR"}

            async with api.http.get(
                f"{api.base_url}/v1/sessions/{session_id}", headers=api.headers("alice")
            ) as r:
                shown = await r.json()
            assert (shown["state"], shown["energy_kwh"], shown["power_kw"]) == ("ACTIVE", 2.5, 7.0)
            assert shown["elapsed_s"] >= 0

            for _ in range(2):  # stopping twice is harmless: the stop is sent again
                async with api.http.delete(
                    f"{api.base_url}/v1/sessions/{session_id}", headers=api.headers("alice")
                ) as r:
                    assert r.status == 202
                    stopped = await r.json()
                assert (stopped["state"], stopped["stop_command"]) == ("STOPPING", "accepted")
                action, request = await asyncio.wait_for(charger.received.get(), 10)
                assert (action, request["transaction_id"]) == ("RemoteStopTransaction", answer.transaction_id)

            await charger.call(
                call16.StopTransaction(
                    meter_stop=5000,
                    timestamp=now_text(),
                    transaction_id=answer.transaction_id,
                    reason="Remote",
                ),
                suppress=False,
            )
            final = await sse.until("final")
            assert (final.data["state"], final.data["energy_kwh"]) == ("COMPLETED", 4.0)
            assert final.data["cost_so_far"] == {"amount": "1.20", "currency": "EUR"}
            assert await sse.rest() == []

        # reconnecting after the first progress event resumes exactly after it
        async with api.http.get(
            f"{api.base_url}/v1/sessions/{session_id}/live",
            headers=api.headers("alice", **{"Last-Event-ID": str(progress.id)}),
        ) as stream:
            resumed = await SseReader(stream).rest()
        stored = await api.sessions.lifecycle.store.events_after(session_id, progress.id)  # type: ignore[union-attr]
        assert [frame.id for frame in resumed] == [event.seq for event in stored]
        assert resumed[-1].event == "final"
        assert [frame.data["state"] for frame in resumed if frame.event != "progress"] == [
            "STOPPING",
            "COMPLETED",
        ]

    async with api.http.delete(f"{api.base_url}/v1/sessions/{session_id}", headers=api.headers("alice")) as r:
        assert r.status == 200
        assert (await r.json())["state"] == "COMPLETED"
    states = [e.state for e in log.events if e.session_id == session_id and e.kind == "state"]
    assert states == [
        SessionState.INITIATED,
        SessionState.ACTIVE,
        SessionState.STOPPING,
        SessionState.COMPLETED,
    ]


async def test_another_driver_and_an_operator_are_refused(api: RunningApi) -> None:
    payment = await seed_driver(api, "bob")
    await seed_driver(api, "mallory")
    await register_charger(api, "CP-B")
    async with connected(Charger16, api.charger_url("CP-B"), "CP-B", "ocpp1.6") as charger:
        await booted16(charger)
        status, created = await start(
            api, "bob", {"charger_id": "CP-B", "connector_id": 1, "payment_method_id": payment}, "k"
        )
        assert status == 201
        url = f"{api.base_url}/v1/sessions/{created['session_id']}"
        for method in ("GET", "DELETE"):
            async with api.http.request(method, url, headers=api.headers("mallory")) as r:
                assert r.status == 404
        async with api.http.get(url + "/live", headers=api.headers("mallory")) as r:
            assert r.status == 404
        operator = api.sessions.issuer.mint("op", Role.OPERATOR, cpo_id="cpo")
        async with api.http.get(url, headers={"Authorization": f"Bearer {operator}"}) as r:
            assert r.status == 403
            assert r.content_type == "application/problem+json"
        async with api.http.get(f"{api.base_url}/v1/sessions?driver=me", headers=api.headers("mallory")) as r:
            assert (await r.json())["sessions"] == []
        # someone else's payment method cannot pay
        status, refused = await start(
            api, "mallory", {"charger_id": "CP-B", "connector_id": 1, "payment_method_id": payment}, "k"
        )
        assert status == 404
        assert "not one of yours" in refused["detail"]
        # a session token for this one session may watch it
        token = api.sessions.issuer.mint(
            created["session_id"], Role.SESSION, session_id=created["session_id"]
        )
        async with api.http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200


class RefusingCharger16(Charger16):
    from ocpp.routing import on
    from ocpp.v16 import call_result
    from ocpp.v16.enums import Action

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, **request: Any) -> Any:
        await self.received.put(("RemoteStartTransaction", request))
        return self.call_result.RemoteStartTransaction(status="Rejected")


async def test_a_refused_start_fails_with_its_reason(api: RunningApi) -> None:
    log = event_log(api)
    payment = await seed_driver(api, "carol")
    await register_charger(api, "CP-C")
    async with connected(RefusingCharger16, api.charger_url("CP-C"), "CP-C", "ocpp1.6") as charger:
        await booted16(charger)
        _, created = await start(
            api, "carol", {"charger_id": "CP-C", "connector_id": 1, "payment_method_id": payment}, "k"
        )
        failed = await log.wait_state(created["session_id"], SessionState.FAILED)
    assert "rejected" in failed.data["reason"]
    async with api.http.get(
        f"{api.base_url}/v1/sessions/{created['session_id']}", headers=api.headers("carol")
    ) as r:
        shown = await r.json()
    assert shown["state"] == "FAILED"
    assert shown["failure_reason"] == "the charger rejected the start request (Rejected)"


@pytest.mark.sessions_settings(remote_start_timeout_s=0.2)
async def test_a_start_the_charger_never_confirms_times_out(api: RunningApi) -> None:
    log = event_log(api)
    payment = await seed_driver(api, "dave")
    await register_charger(api, "CP-D")
    async with connected(Charger16, api.charger_url("CP-D"), "CP-D", "ocpp1.6") as charger:
        await booted16(charger)
        _, created = await start(
            api, "dave", {"charger_id": "CP-D", "connector_id": 1, "payment_method_id": payment}, "k"
        )
        failed = await log.wait_state(created["session_id"], SessionState.FAILED)
    assert "did not start charging" in failed.data["reason"]


async def test_request_start_on_a_201_station_and_the_end_at_the_station(api: RunningApi) -> None:
    log = event_log(api)
    payment = await seed_driver(api, "erin")
    await register_charger(api, "CS-E")
    async with connected(Charger201, api.charger_url("CS-E"), "CS-E", "ocpp2.0.1") as station:
        await station.call(
            call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"),
            suppress=False,
        )
        _, created = await start(
            api, "erin", {"charger_id": "CS-E", "connector_id": 1, "payment_method_id": payment}, "k"
        )
        session_id = created["session_id"]
        action, request = await asyncio.wait_for(station.received.get(), 10)
        assert (action, request["evse_id"]) == ("RequestStartTransaction", 1)

        def event(event_type: str, seq_no: int, wh: float, **info: Any) -> Any:
            return call201.TransactionEvent(
                event_type=event_type,
                timestamp=now_text(),
                trigger_reason="RemoteStart" if event_type == "Started" else "MeterValuePeriodic",
                seq_no=seq_no,
                transaction_info={"transactionId": "TX-E", **info},
                evse={"id": 1, "connectorId": 1},
                id_token=request["id_token"],
                meter_value=[
                    {
                        "timestamp": now_text(),
                        "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}],
                    }
                ],
            )

        answer = await station.call(
            event("Started", 0, 200.0, remoteStartId=request["remote_start_id"]), suppress=False
        )
        assert answer.id_token_info["status"] == "Accepted"
        await log.wait_state(session_id, SessionState.ACTIVE)
        await station.call(event("Updated", 1, 1200.0), suppress=False)
        await log.wait_for(lambda e: e.session_id == session_id and e.data.get("energy_kwh") == 1.0)
        await station.call(event("Ended", 2, 2700.0, stoppedReason="EVDisconnected"), suppress=False)
        done = await log.wait_state(session_id, SessionState.COMPLETED)
    assert (done.data["energy_kwh"], done.data["reason"]) == (2.5, "EVDisconnected")


async def test_a_stop_before_the_charger_started_stops_the_transaction_it_starts(api: RunningApi) -> None:
    log = event_log(api)
    payment = await seed_driver(api, "quinn")
    await register_charger(api, "CP-Q")
    async with connected(Charger16, api.charger_url("CP-Q"), "CP-Q", "ocpp1.6") as charger:
        await booted16(charger)
        _, created = await start(
            api, "quinn", {"charger_id": "CP-Q", "connector_id": 1, "payment_method_id": payment}, "k"
        )
        session_id = created["session_id"]
        _, request = await asyncio.wait_for(charger.received.get(), 10)
        async with api.http.delete(
            f"{api.base_url}/v1/sessions/{session_id}", headers=api.headers("quinn")
        ) as r:
            assert r.status == 202
            stopping = await r.json()
        assert (stopping["state"], stopping["stop_command"]) == ("STOPPING", None)  # nothing to stop yet
        answer = await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag=request["id_tag"], meter_start=0, timestamp=now_text()
            ),
            suppress=False,
        )
        action, stop = await asyncio.wait_for(charger.received.get(), 10)
        assert (action, stop["transaction_id"]) == ("RemoteStopTransaction", answer.transaction_id)
        await charger.call(
            call16.StopTransaction(meter_stop=10, timestamp=now_text(), transaction_id=answer.transaction_id),
            suppress=False,
        )
        done = await log.wait_state(session_id, SessionState.COMPLETED)
    assert done.data["energy_kwh"] == 0.01
    states = [e.state for e in log.events if e.session_id == session_id and e.kind == "state"]
    assert states == [SessionState.INITIATED, SessionState.STOPPING, SessionState.COMPLETED]


@pytest.mark.sessions_settings(remote_start_timeout_s=1.0)  # the DELETE must come before it runs out
async def test_a_session_stopped_before_a_start_that_never_comes_completes_empty(api: RunningApi) -> None:
    log = event_log(api)
    payment = await seed_driver(api, "rita")
    await register_charger(api, "CP-R")
    async with connected(Charger16, api.charger_url("CP-R"), "CP-R", "ocpp1.6") as charger:
        await booted16(charger)
        _, created = await start(
            api, "rita", {"charger_id": "CP-R", "connector_id": 1, "payment_method_id": payment}, "k"
        )
        session_id = created["session_id"]
        async with api.http.delete(
            f"{api.base_url}/v1/sessions/{session_id}", headers=api.headers("rita")
        ) as r:
            assert r.status == 202
        done = await log.wait_state(session_id, SessionState.COMPLETED)
    assert (done.data["energy_kwh"], done.data["reason"]) == (0.0, "stopped before charging began")
