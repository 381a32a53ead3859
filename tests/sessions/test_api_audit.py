"""What a driver's app and an API reviewer meet first: the OpenAPI document is a valid OpenAPI 3.1
document, errors are problem+json 4xx (never a 500 for bad input), one connector gets one session
however starts race, a declined card keeps the driver's reservation, and the live stream keeps a
quiet connection open and tells a reconnect after its final event to stop (204)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from sessions.api import session_live
from sessions.events import SessionState
from tests.csms.chargers import Charger16, connected
from tests.sessions.conftest import RunningApi
from tests.sessions.helpers import SseReader, event_log, register_charger, reserve, seed_driver
from tests.sessions.reservation_chargers import Reserving16, next_request, place_charger
from tests.sessions.test_session_e2e import booted16, start

pytestmark = pytest.mark.asyncio

WAIT_S = 10.0


async def problem_of(api: RunningApi, method: str, path: str, **options: Any) -> tuple[int, dict[str, Any]]:
    """Status and body of an answer that must be problem+json."""
    async with api.http.request(method, api.base_url + path, **options) as response:
        assert response.content_type == "application/problem+json", (path, await response.text())
        body = await response.json()
        assert body["status"] == response.status
        assert body["detail"]
        return response.status, body


@asynccontextmanager
async def booted_charger(api: RunningApi, charger_class: type[Any], charger_id: str) -> AsyncIterator[Any]:
    """A 1.6 charger of ``charger_class`` connected to the API's CSMS, booted and Available."""
    async with connected(charger_class, api.charger_url(charger_id), charger_id, "ocpp1.6") as charger:
        await booted16(charger)
        yield charger


async def test_the_served_document_is_valid_openapi_31_and_declares_what_the_stream_answers(
    api: RunningApi,
) -> None:
    async with api.http.get(f"{api.base_url}/v1/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in OpenAPIV31SpecValidator(document).iter_errors()
    ]
    assert errors == []
    live = document["paths"]["/v1/sessions/{session_id}/live"]["get"]
    assert {"200", "204", "400", "401", "403", "404"} <= set(live["responses"])
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert set(answer["content"]) == {"application/problem+json"}, (method, path, status)
            if operation.get("security"):
                assert "401" in operation["responses"], (method, path)


@pytest.mark.parametrize(
    ("method", "path", "body", "fragment"),
    [
        # str.isdigit() passes "²", which int() refuses; and int() refuses more than 4,300 digits
        ("GET", "/v1/sessions?limit=%C2%B2", None, "limit must be"),
        ("GET", "/v1/sessions?limit=" + "1" * 5000, None, "limit must be"),
        ("GET", "/v1/reservations?limit=%C2%B2", None, "'limit' must be"),
        ("GET", "/v1/reservations/%C2%B2", None, "reservation id must be"),
        # valid RFC 3339 instants whose UTC form is outside Python's datetime range
        ("GET", "/v1/sessions?before=9999-12-31T23:59:59-01:00", None, "before is out of range"),
        ("GET", "/v1/sessions?before=0001-01-01T00:00:00%2B01:00", None, "before is out of range"),
        (
            "POST",
            "/v1/reservations",
            {"charger_id": "CP-AUDIT-X", "connector_id": 1, "start_at": "9999-12-31T23:59:59-01:00"},
            "start_at is out of range",
        ),
        (
            "POST",
            "/v1/reservations",
            {"charger_id": "CP-AUDIT-X", "connector_id": 1, "start_at": "0001-01-01T00:00:00+01:00"},
            "start_at is out of range",
        ),
    ],
)
async def test_odd_numbers_and_instants_are_400_problems_not_500s(
    api: RunningApi, method: str, path: str, body: dict[str, Any] | None, fragment: str
) -> None:
    status, problem = await problem_of(api, method, path, json=body, headers=api.headers("audit-odd"))
    assert (status, fragment in problem["detail"]) == (400, True), problem


async def test_plumbing_errors_are_problems_with_their_headers(api: RunningApi) -> None:
    status, problem = await problem_of(api, "GET", "/v1/sessions")
    assert status == 401
    async with api.http.get(f"{api.base_url}/v1/sessions") as response:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    async with api.http.put(f"{api.base_url}/v1/sessions", headers=api.headers("audit-p")) as response:
        assert (response.status, response.content_type) == (405, "application/problem+json")
        assert set(response.headers["Allow"].split(",")) == {"GET", "POST"}
    status, problem = await problem_of(
        api,
        "POST",
        "/v1/sessions",
        data="{",
        headers=api.headers("audit-p", **{"Idempotency-Key": "k", "Content-Type": "application/json"}),
    )
    assert (status, "not valid JSON" in problem["detail"]) == (400, True)
    status, problem = await problem_of(
        api, "POST", "/v1/sessions", data="x", headers=api.headers("audit-p", **{"Idempotency-Key": "k"})
    )
    assert status == 415


async def test_racing_starts_on_one_connector_make_one_session(api: RunningApi) -> None:
    drivers = [f"audit-race-{n}" for n in range(4)]
    payments = {driver: await seed_driver(api, driver) for driver in drivers}
    await register_charger(api, "CP-AUDIT-RACE")
    body = {"charger_id": "CP-AUDIT-RACE", "connector_id": 1}
    async with booted_charger(api, Charger16, "CP-AUDIT-RACE") as charger:
        answers = await asyncio.gather(
            *(start(api, d, {**body, "payment_method_id": payments[d]}, f"key-{d}") for d in drivers)
        )
        assert sorted(status for status, _ in answers) == [201, 409, 409, 409], answers
        winner = next(created for status, created in answers if status == 201)
        assert all("is in use" in problem["detail"] for status, problem in answers if status == 409)
        action, _ = await asyncio.wait_for(charger.received.get(), WAIT_S)
        assert action == "RemoteStartTransaction"
        assert charger.received.empty()  # one remote start only

        # one driver's double tap under two keys: the second tap is told the connector is busy
        tap = await asyncio.gather(
            *(start(api, drivers[0], {**body, "payment_method_id": payments[drivers[0]]}, k) for k in "ab")
        )
        assert [status for status, _ in tap] == [409, 409]

    assert api.sessions.lifecycle is not None
    store = api.sessions.lifecycle.store
    open_session = await store.open_on_evse("CP-AUDIT-RACE", 1)
    assert open_session is not None
    assert open_session.session_id == winner["session_id"]
    losers = [d for d, (status, _) in zip(drivers, answers, strict=True) if status == 409]
    # a refused start leaves its Idempotency-Key unused: the same request may be retried later
    assert [await store.find_key(d, f"key-{d}") for d in losers] == [None] * 3


class Cashier:
    """Billing's payment holds, declining while ``declining`` is set."""

    def __init__(self) -> None:
        self.declining = True

    async def authorize(self, session_id: str, driver_id: str, payment_method_id: str) -> str | None:
        return "card declined" if self.declining else None


async def test_a_declined_card_keeps_the_drivers_reservation(api: RunningApi) -> None:
    payment = await seed_driver(api, "audit-res", rfid="RFID-AUDIT-RES")
    await place_charger(api, "CP-AUDIT-RES", 48.0, 11.0)
    cashier = Cashier()
    api.sessions.payment_holds = cashier
    body = {"charger_id": "CP-AUDIT-RES", "connector_id": 1, "payment_method_id": payment}
    url = f"{api.base_url}/v1/reservations"
    async with booted_charger(api, Reserving16, "CP-AUDIT-RES") as charger:
        status, made = await reserve(api, "audit-res", charger_id="CP-AUDIT-RES", connector_id=1)
        assert status == 201
        await next_request(charger, "ReserveNow")

        status, problem = await start(api, "audit-res", body, "declined")
        assert status == 402, problem
        async with api.http.get(f"{url}/{made['reservation_id']}", headers=api.headers("audit-res")) as r:
            assert (await r.json())["status"] == "active"  # still held for the driver, at the charger too
        assert charger.received.empty()  # neither CancelReservation nor a remote start went out

        cashier.declining = False
        status, created = await start(api, "audit-res", body, "approved")
        assert status == 201, created
        assert created["reservation_id"] == made["reservation_id"]
        cancelled = await next_request(charger, "CancelReservation")
        assert cancelled["reservation_id"] == made["reservation_id"]
        await next_request(charger, "RemoteStartTransaction")
        async with api.http.get(f"{url}/{made['reservation_id']}", headers=api.headers("audit-res")) as r:
            assert (await r.json())["status"] == "used"


@pytest.mark.sessions_settings(remote_start_timeout_s=0.2)
async def test_a_reconnect_after_the_final_event_is_told_to_stop(api: RunningApi) -> None:
    log = event_log(api)
    payment = await seed_driver(api, "audit-sse")
    await register_charger(api, "CP-AUDIT-SSE")
    async with booted_charger(api, Charger16, "CP-AUDIT-SSE"):
        _, created = await start(
            api,
            "audit-sse",
            {"charger_id": "CP-AUDIT-SSE", "connector_id": 1, "payment_method_id": payment},
            "k",
        )
        session_id = created["session_id"]
        await log.wait_state(session_id, SessionState.FAILED)
    url = f"{api.base_url}/v1/sessions/{session_id}/live"
    async with api.http.get(url, headers=api.headers("audit-sse")) as stream:
        frames = await SseReader(stream).rest()
    assert [(f.event, f.data["state"]) for f in frames] == [("state", "INITIATED"), ("final", "FAILED")]
    assert frames[0].id < frames[1].id

    # an EventSource reconnects whenever a stream ends, with the last id it saw: 204 stops it
    last = str(frames[-1].id)
    for headers, query in (
        (api.headers("audit-sse", **{"Last-Event-ID": last}), {}),
        (api.headers("audit-sse"), {"last_event_id": last}),
    ):
        async with api.http.get(url, headers=headers, params=query) as response:
            assert response.status == 204
            assert await asyncio.wait_for(response.read(), WAIT_S) == b""
    status, problem = await problem_of(
        api, "GET", f"/v1/sessions/{session_id}/live?last_event_id=%C2%B2", headers=api.headers("audit-sse")
    )
    assert (status, "Last-Event-ID must be" in problem["detail"]) == (400, True)
    # one that missed the final event still gets it, and only it
    async with api.http.get(
        url, headers=api.headers("audit-sse", **{"Last-Event-ID": str(frames[0].id)})
    ) as r:
        assert r.status == 200
        assert await SseReader(r).rest() == frames[1:]


async def test_a_quiet_stream_sends_keep_alives_on_time(
    api: RunningApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_live, "KEEPALIVE_S", 0.3)  # the poll stays at its 10 s
    payment = await seed_driver(api, "audit-quiet")
    await register_charger(api, "CP-AUDIT-QUIET")
    async with booted_charger(api, Charger16, "CP-AUDIT-QUIET") as charger:
        _, created = await start(
            api,
            "audit-quiet",
            {"charger_id": "CP-AUDIT-QUIET", "connector_id": 1, "payment_method_id": payment},
            "k",
        )
        await asyncio.wait_for(charger.received.get(), WAIT_S)  # INITIATED, and it stays so
        url = f"{api.base_url}/v1/sessions/{created['session_id']}/live"
        async with api.http.get(url, headers=api.headers("audit-quiet")) as stream:
            assert stream.status == 200
            assert stream.content_type == "text/event-stream"
            assert stream.headers["Cache-Control"] == "no-cache"
            lines: list[str] = []
            began = asyncio.get_running_loop().time()
            while lines.count(": keep-alive") < 2:
                raw = await asyncio.wait_for(stream.content.readline(), 3.0)
                lines.append(raw.decode().rstrip("\n"))
            took_s = asyncio.get_running_loop().time() - began
    assert "retry: 1000" in lines
    assert any(line.startswith("id: ") for line in lines)
    assert took_s < 3.0  # two keep-alives 0.3 s apart, not one per 10 s poll


def zoned(text: str) -> datetime:
    """An instant the API showed: ISO 8601 with a zone (Z or an offset)."""
    instant = datetime.fromisoformat(text)
    assert instant.utcoffset() is not None, text
    return instant


async def test_every_instant_the_api_shows_carries_its_zone(api: RunningApi) -> None:
    payment = await seed_driver(api, "audit-time", rfid="RFID-AUDIT-TIME")
    await place_charger(api, "CP-AUDIT-TIME", 48.5, 11.5)
    charger_id = "CP-AUDIT-TIME"
    async with booted_charger(api, Reserving16, charger_id):
        status, reservation = await reserve(api, "audit-time", charger_id=charger_id, connector_id=1)
        assert status == 201
        departure = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        status, session = await start(
            api,
            "audit-time",
            {
                "charger_id": charger_id,
                "connector_id": 1,
                "payment_method_id": payment,
                "departure_at": departure,
            },
            "k",
        )
        assert status == 201, session
        async with api.http.get(
            f"{api.base_url}/v1/sessions/{session['session_id']}/live", headers=api.headers("audit-time")
        ) as stream:
            first = await SseReader(stream).next()
    for name in ("starts_at", "expires_at", "ends_at", "created_at"):
        zoned(reservation[name])
    zoned(first.data["at"])
    for name in ("created_at", "departure_at"):
        zoned(session[name])
    assert zoned(session["departure_at"]) == datetime.fromisoformat(departure)
    assert {"energy_kwh", "power_kw", "elapsed_s", "energy_needed_kwh"} <= set(session)


@pytest.mark.sessions_settings(reservation_hold_s=1, reservation_check_interval_s=0.05)
async def test_an_expired_reservation_frees_the_connector_and_cancelling_it_then_changes_nothing(
    api: RunningApi,
) -> None:
    await seed_driver(api, "audit-hold", rfid="RFID-AUDIT-HOLD")
    other = await seed_driver(api, "audit-other")
    await place_charger(api, "CP-AUDIT-HOLD", 47.0, 10.0)
    body = {"charger_id": "CP-AUDIT-HOLD", "connector_id": 1, "payment_method_id": other}
    charger_id = "CP-AUDIT-HOLD"
    async with booted_charger(api, Reserving16, charger_id) as charger:
        status, made = await reserve(api, "audit-hold", charger_id=charger_id, connector_id=1)
        assert (status, made["status"]) == (201, "active")
        assert (await next_request(charger, "ReserveNow"))["id_tag"] == "RFID-AUDIT-HOLD"
        status, problem = await start(api, "audit-other", body, "early")
        assert (status, "reserved by another driver" in problem["detail"]) == (409, True)

        released = await next_request(charger, "CancelReservation")  # the 1 s hold ran out
        assert released["reservation_id"] == made["reservation_id"]
        url = f"{api.base_url}/v1/reservations/{made['reservation_id']}"
        async with api.http.delete(url, headers=api.headers("audit-hold")) as response:
            assert response.status == 200
            assert (await response.json())["status"] == "expired"
        status, created = await start(api, "audit-other", body, "later")
        assert status == 201, created
        # the next request is the remote start: the late cancel sent no second CancelReservation
        action, request = await asyncio.wait_for(charger.received.get(), WAIT_S)
        assert (action, request["connector_id"]) == ("RemoteStartTransaction", 1)
