"""Sessions the charger starts (RFID, free vend), offline transactions reconciled once, and the
API's answers to bad input, limits and blocked drivers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from sessions.events import SessionEvent, SessionOrigin, SessionState
from tests.csms.chargers import Charger16, Charger201, connected
from tests.sessions.conftest import RunningApi
from tests.sessions.helpers import event_log, register_charger, seed_driver
from tests.sessions.test_session_e2e import booted16, meter_values_16, now_text, start

pytestmark = pytest.mark.asyncio


async def test_rfid_tokens_are_authorised_and_open_the_drivers_session(api: RunningApi) -> None:
    log = event_log(api)
    await seed_driver(api, "frank", rfid="RFID-FRANK")
    await seed_driver(api, "grace", rfid="RFID-GRACE", blocked=True)
    await register_charger(api, "CP-F")
    async with connected(Charger16, api.charger_url("CP-F"), "CP-F", "ocpp1.6") as charger:
        await booted16(charger)
        verdicts = {}
        for tag in ("RFID-FRANK", "RFID-GRACE", "NOBODY"):
            answer = await charger.call(call16.Authorize(id_tag=tag), suppress=False)
            verdicts[tag] = answer.id_tag_info["status"]
        assert verdicts == {"RFID-FRANK": "Accepted", "RFID-GRACE": "Blocked", "NOBODY": "Invalid"}
        started = await charger.call(
            call16.StartTransaction(connector_id=1, id_tag="RFID-FRANK", meter_start=0, timestamp=now_text()),
            suppress=False,
        )
        active = await log.wait_for(lambda e: e.kind == "state" and e.state is SessionState.ACTIVE)
        await charger.call(
            call16.StopTransaction(
                meter_stop=1500, timestamp=now_text(), transaction_id=started.transaction_id
            ),
            suppress=False,
        )
        await log.wait_state(active.session_id, SessionState.COMPLETED)
    async with api.http.get(f"{api.base_url}/v1/sessions?driver=me", headers=api.headers("frank")) as r:
        sessions = (await r.json())["sessions"]
    assert [(s["session_id"], s["origin"], s["state"], s["energy_kwh"]) for s in sessions] == [
        (active.session_id, SessionOrigin.RFID.value, "COMPLETED", 1.5)
    ]


def _event(event_type: str, seq_no: int, at: str, wh: float, transaction_id: str, **info: Any) -> Any:
    return call201.TransactionEvent(
        event_type=event_type,
        timestamp=at,
        trigger_reason="Authorized" if event_type == "Started" else "EVCommunicationLost",
        seq_no=seq_no,
        offline=True,
        transaction_info={"transactionId": transaction_id, **info},
        evse={"id": 1, "connectorId": 1},
        id_token={"idToken": "RFID-HEIDI", "type": "ISO14443"},
        meter_value=[
            {"timestamp": at, "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}]}
        ],
    )


async def test_a_201_station_hears_unknown_for_a_token_nobody_issued_and_any_case_of_a_known_one(
    api: RunningApi,
) -> None:
    await seed_driver(api, "una", rfid="RFID-UNA")
    await register_charger(api, "CS-U")
    async with connected(Charger201, api.charger_url("CS-U"), "CS-U", "ocpp2.0.1") as station:
        await station.call(
            call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"),
            suppress=False,
        )
        verdicts = {}
        for token in ("RFID-UNA", "rfid-una", "NOBODY"):
            answer = await station.call(call201.Authorize(id_token={"idToken": token, "type": "ISO14443"}))
            verdicts[token] = answer.id_token_info["status"]
    # 2.0.1 AuthorizationStatusEnumType: Unknown, "identifier is unknown" (1.6 says Invalid, above)
    # ... and id tokens are case-insensitive (IdTokenType.idToken; 1.6 §7.28)
    assert verdicts == {"RFID-UNA": "Accepted", "rfid-una": "Accepted", "NOBODY": "Unknown"}


async def test_offline_transactions_are_reconciled_once_on_reconnect(api: RunningApi) -> None:
    log = event_log(api)
    await seed_driver(api, "heidi", rfid="RFID-HEIDI")
    await register_charger(api, "CS-H")
    earlier = datetime.now(UTC) - timedelta(hours=2)

    def at(minutes: int) -> str:
        return (earlier + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    queued = [
        _event("Started", 0, at(0), 10_000.0, "TX-OFF"),
        _event("Updated", 1, at(30), 15_000.0, "TX-OFF"),
        _event("Ended", 2, at(60), 21_000.0, "TX-OFF", stoppedReason="Local"),
    ]
    async with connected(Charger201, api.charger_url("CS-H"), "CS-H", "ocpp2.0.1") as station:
        await station.call(
            call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"),
            suppress=False,
        )
        for message in (*queued, queued[-1], queued[0]):  # the station resends what it was not sure of
            await station.call(message, suppress=False)
        # a transaction whose Started the CSMS never got: it enters the lifecycle at COMPLETED
        await station.call(
            _event("Ended", 7, at(90), 4_000.0, "TX-LOST", stoppedReason="Local"), suppress=False
        )
        done = await log.wait_for(lambda e: e.kind == "state" and e.state is SessionState.COMPLETED)
        lost = await log.wait_for(
            lambda e: (
                e.kind == "state" and e.state is SessionState.COMPLETED and e.session_id != done.session_id
            )
        )
    rows = await api.csms.database.pool.fetch(
        """SELECT transaction_id, driver_id, state, offline, meter_start_wh, meter_stop_wh,
                  started_at, ended_at
           FROM charging_sessions WHERE charger_id = 'CS-H' ORDER BY transaction_id"""
    )
    assert [(r["transaction_id"], r["driver_id"], r["state"], r["offline"]) for r in rows] == [
        ("TX-LOST", "heidi", "COMPLETED", True),
        ("TX-OFF", "heidi", "COMPLETED", True),
    ]
    reconciled = rows[1]
    assert (reconciled["meter_start_wh"], reconciled["meter_stop_wh"]) == (10_000.0, 21_000.0)
    assert reconciled["started_at"] == earlier
    assert reconciled["ended_at"] == earlier + timedelta(minutes=60)
    completions = [e for e in log.events if e.kind == "state" and e.state is SessionState.COMPLETED]
    assert sorted(e.session_id for e in completions) == sorted({done.session_id, lost.session_id})
    assert done.data["energy_kwh"] == 11.0


async def test_bad_requests_are_clear_4xx_problems(api: RunningApi) -> None:
    payment = await seed_driver(api, "ivan")
    await seed_driver(api, "judy", blocked=True)
    await register_charger(api, "CP-I")
    good = {"charger_id": "CP-I", "connector_id": 1, "payment_method_id": payment}
    url = f"{api.base_url}/v1/sessions"
    async with api.http.post(url, json=good, headers=api.headers("ivan")) as r:
        assert r.status == 400
        assert "Idempotency-Key" in (await r.json())["detail"]
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**good, "connector_id": "1"}, 400, "connector_id"),
        ({**good, "connector_id": 0}, 400, "connector_id"),
        ({**good, "charger_id": "a b"}, 400, "charger_id"),
        ({**good, "card_number": "4111"}, 400, "unknown field"),
        ({**good, "charger_id": "NOPE"}, 404, "no charger"),
        ({**good, "connector_id": 2}, 404, "no connector 2"),
        (good, 409, "offline"),
    ]
    for number, (body, status, detail) in enumerate(cases):
        code, problem = await start(api, "ivan", body, f"k-{number}")
        assert (code, detail in problem["detail"]) == (status, True), (body, problem)
    code, problem = await start(api, "judy", good, "k-judy")
    assert code == 403
    for path in ("/v1/sessions/not-a-uuid", "/v1/sessions?limit=0", "/v1/sessions?driver=someone"):
        async with api.http.get(api.base_url + path, headers=api.headers("ivan")) as r:
            assert r.status == 400
            assert r.content_type == "application/problem+json"
    async with api.http.get(
        f"{url}/00000000-0000-0000-0000-000000000000/live", headers=api.headers("ivan")
    ) as r:
        assert r.status == 404
    async with api.http.get(url) as r:
        assert r.status == 401


@pytest.mark.sessions_settings(session_create_per_minute=2)
async def test_session_creation_is_rate_limited_per_driver(api: RunningApi) -> None:
    log = event_log(api)
    payment = await seed_driver(api, "kim")
    other = await seed_driver(api, "lou")
    await register_charger(api, "CP-K", evses=4)
    async with connected(Charger16, api.charger_url("CP-K"), "CP-K", "ocpp1.6") as charger:
        await booted16(charger)
        answers = [
            await start(
                api, "kim", {"charger_id": "CP-K", "connector_id": n, "payment_method_id": payment}, f"k{n}"
            )
            for n in (1, 2, 3)
        ]
        assert [status for status, _ in answers] == [201, 201, 429]
        # a retry of an accepted request is not a new session and is not limited
        assert (
            await start(
                api, "kim", {"charger_id": "CP-K", "connector_id": 1, "payment_method_id": payment}, "k1"
            )
        )[0] == 200
        status, _ = await start(
            api, "lou", {"charger_id": "CP-K", "connector_id": 4, "payment_method_id": other}, "k"
        )
        assert status == 201
        # the connector of an open session is busy
        status, busy = await start(
            api, "lou", {"charger_id": "CP-K", "connector_id": 1, "payment_method_id": other}, "k2"
        )
        assert (status, "in use" in busy["detail"]) == (409, True)
        for _, body in answers[:2]:
            await log.wait_for(lambda e, sid=body["session_id"]: e.session_id == sid)


class CountingSink:
    def __init__(self) -> None:
        self.completed: list[str] = []

    async def session_completed(self, session_id: str) -> None:
        self.completed.append(session_id)


async def test_a_16_chargers_offline_transaction_is_completed_once_when_replayed(api: RunningApi) -> None:
    log = event_log(api)
    sink = CountingSink()
    api.sessions.completion_sinks.append(sink)
    await seed_driver(api, "mona", rfid="RFID-MONA")
    await register_charger(api, "CP-M")
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    start_at = began.isoformat().replace("+00:00", "Z")
    stop_at = (began + timedelta(minutes=45)).isoformat().replace("+00:00", "Z")
    async with connected(Charger16, api.charger_url("CP-M"), "CP-M", "ocpp1.6") as charger:
        await booted16(charger)
        # queued while offline, sent on reconnect; the charger resends both, unsure they arrived
        start_message = call16.StartTransaction(
            connector_id=1, id_tag="RFID-MONA", meter_start=500, timestamp=start_at
        )
        first = await charger.call(start_message, suppress=False)
        again = await charger.call(start_message, suppress=False)
        assert again.transaction_id == first.transaction_id
        stop_message = call16.StopTransaction(
            meter_stop=9500, timestamp=stop_at, transaction_id=first.transaction_id
        )
        await charger.call(stop_message, suppress=False)
        done = await log.wait_for(lambda e: e.kind == "state" and e.state is SessionState.COMPLETED)
        await charger.call(stop_message, suppress=False)
        await charger.call(start_message, suppress=False)
        # a later transaction's completion orders the check: everything before it has been handled
        later = await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag="RFID-MONA", meter_start=9500, timestamp=now_text()
            ),
            suppress=False,
        )
        await charger.call(
            call16.StopTransaction(
                meter_stop=9600, timestamp=now_text(), transaction_id=later.transaction_id
            ),
            suppress=False,
        )
        last = await log.wait_for(
            lambda e: (
                e.kind == "state" and e.state is SessionState.COMPLETED and e.session_id != done.session_id
            )
        )
    await log.wait_for(lambda e: e.session_id == last.session_id)
    assert (done.data["energy_kwh"], done.data["elapsed_s"]) == (9.0, 45 * 60)
    rows = await api.csms.database.pool.fetch(
        "SELECT session_id, driver_id, started_at, ended_at FROM charging_sessions WHERE charger_id = 'CP-M'"
    )
    assert len(rows) == 2
    assert {r["driver_id"] for r in rows} == {"mona"}
    completions = [
        e.session_id for e in log.events if e.kind == "state" and e.state is SessionState.COMPLETED
    ]
    assert sorted(completions) == sorted([done.session_id, last.session_id])
    assert sorted(sink.completed) == sorted(completions)


class ReceiptsOf:
    """A ReceiptProvider for the API layer: billing's own tests cover real receipts."""

    def __init__(self, rated: str) -> None:
        self.rated = rated

    async def receipt_json(self, session_id: str) -> dict[str, Any] | None:
        return {"session_id": session_id, "total": "1.20"} if session_id == self.rated else None

    async def receipt_html(self, session_id: str) -> str | None:
        return f"<p>{session_id}</p>" if session_id == self.rated else None


async def test_receipts_come_from_billing_once_rated(api: RunningApi) -> None:
    log = event_log(api)
    await seed_driver(api, "sam", rfid="RFID-SAM")
    await register_charger(api, "CP-S")
    async with connected(Charger16, api.charger_url("CP-S"), "CP-S", "ocpp1.6") as charger:
        await booted16(charger)
        await charger.call(
            call16.StartTransaction(connector_id=1, id_tag="RFID-SAM", meter_start=0, timestamp=now_text()),
            suppress=False,
        )
        active = await log.wait_for(lambda e: e.kind == "state" and e.state is SessionState.ACTIVE)
    url = f"{api.base_url}/v1/sessions/{active.session_id}/receipt"
    async with api.http.get(url, headers=api.headers("sam")) as r:
        assert r.status == 404
        assert "billing is not installed" in (await r.json())["detail"]
    api.sessions.receipts = ReceiptsOf("someone-else")
    async with api.http.get(url, headers=api.headers("sam")) as r:
        assert (r.status, "no receipt yet" in (await r.json())["detail"]) == (404, True)
    api.sessions.receipts = ReceiptsOf(active.session_id)
    async with api.http.get(url, headers=api.headers("sam")) as r:
        assert (r.status, await r.json()) == (200, {"session_id": active.session_id, "total": "1.20"})
    async with api.http.get(url, headers=api.headers("sam", Accept="text/html")) as r:
        assert (r.status, r.content_type) == (200, "text/html")
    async with api.http.get(url, headers=api.headers("nobody")) as r:
        assert r.status == 404


@pytest.mark.allow_error_logs  # the failing listener is logged, as it must be
async def test_a_slow_or_failing_listener_hears_every_event_in_order(
    api: RunningApi, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[int] = []
    done = asyncio.Event()

    async def slow_and_once_broken(event: SessionEvent) -> None:
        if event.kind == "progress" and not any(seq > 0 for seq in heard):
            await asyncio.sleep(0.2)  # the first progress event is slow: later ones must wait for it
        if not heard:  # the first call (the ACTIVE event) fails
            heard.append(-1)
            raise RuntimeError("listener bug")
        heard.append(event.seq)
        if event.kind == "state" and event.state is SessionState.COMPLETED:
            done.set()

    api.sessions.session_listeners.append(slow_and_once_broken)
    await seed_driver(api, "xena", rfid="RFID-XENA")
    await register_charger(api, "CP-X")
    async with connected(Charger16, api.charger_url("CP-X"), "CP-X", "ocpp1.6") as charger:
        await booted16(charger)
        started = await charger.call(
            call16.StartTransaction(connector_id=1, id_tag="RFID-XENA", meter_start=0, timestamp=now_text()),
            suppress=False,
        )
        for wh in (100, 200, 300):
            await charger.call(meter_values_16(started.transaction_id, wh, 1000), suppress=False)
        await charger.call(
            call16.StopTransaction(
                meter_stop=400, timestamp=now_text(), transaction_id=started.transaction_id
            ),
            suppress=False,
        )
        await asyncio.wait_for(done.wait(), 10)
    stored = await api.csms.database.pool.fetch(
        """SELECT e.seq FROM session_events e JOIN charging_sessions s USING (session_id)
           WHERE s.charger_id = 'CP-X' ORDER BY e.seq"""
    )
    assert heard[0] == -1  # the ACTIVE event's call failed and was logged ...
    assert heard[1:] == [row["seq"] for row in stored][1:]  # ... the rest came, in order
    assert any("a listener failed" in r.getMessage() for r in caplog.records)
