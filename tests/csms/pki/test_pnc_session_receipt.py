"""Plug & Charge end to end: Authorize with the contract certificate -> TransactionEvent -> session
of the contract's driver -> rating, payment and receipt, through the real server (sessions and
billing installed), a 2.0.1 ``ocpp`` charger, the local OCSP responder and the test gateway."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from ocpp.v201 import call

import billing.api
from billing.app import BillingSettings
from billing.app import install as install_billing
from csms.server import CSMS, CsmsRuntime, create_app
from csms.storage.chargers import ChargerRecord, ConnectorSpec
from sessions.app import SESSIONS, SessionsRuntime, SessionsSettings
from sessions.app import install as install_sessions
from sessions.auth import Role
from tests.billing.conftest import (  # the billing tests' database, gateway process and error guard
    GatewayProcess,
    billing_dsn,
    database_dsn,
    fail_on_billing_errors,
    gateway,
    gateway_process,
)
from tests.billing.helpers import TEST_POLICY, seed_driver
from tests.csms.chargers import Charger201, connected
from tests.csms.conftest import make_settings
from tests.csms.pki.factory import Pki
from tests.csms.pki.harness import install_test_pki, pki_settings

__all__ = ["billing_dsn", "database_dsn", "fail_on_billing_errors", "gateway", "gateway_process"]

pytestmark = pytest.mark.asyncio
TOKEN_SECRET = "pnc-test-secret-of-at-least-32-bytes!!"
EMAID = "DE-FWT-C30000001-1"
WAIT_S = 15.0


class Server:
    def __init__(
        self, csms: CsmsRuntime, sessions: SessionsRuntime, port: int, http: aiohttp.ClientSession
    ) -> None:
        self.csms = csms
        self.sessions = sessions
        self.port = port
        self.http = http

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def headers(self, driver_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sessions.issuer.mint(driver_id, Role.DRIVER)}"}


@pytest_asyncio.fixture
async def server(database_dsn: str, gateway: GatewayProcess, pki: Pki) -> AsyncIterator[Server]:
    app = create_app(make_settings(database_dsn))
    install_sessions(app, SessionsSettings(token_secret=TOKEN_SECRET), extra_api=[billing.api.register])
    install_billing(
        app,
        BillingSettings(
            gateway_url=gateway.url,
            gateway_api_key="sk_test_pnc",
            gateway_timeout_s=2.0,
            poll_interval_s=0.2,
            policy=TEST_POLICY,
        ),
    )
    install_test_pki(app, pki, pki_settings())
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Server(app[CSMS], app[SESSIONS], port, http)
    finally:
        await runner.cleanup()


def now_text(offset: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + offset).isoformat().replace("+00:00", "Z")


def transaction_event(event_type: str, seq_no: int, energy_wh: float, **info: Any) -> Any:
    at = now_text()
    return call.TransactionEvent(
        event_type=event_type,
        timestamp=at,
        trigger_reason="Authorized" if event_type == "Started" else "EVCommunicationLost",
        seq_no=seq_no,
        transaction_info={"transactionId": "TX-PNC-1", **info},
        evse={"id": 1, "connectorId": 1},
        id_token={"idToken": EMAID, "type": "eMAID"},
        meter_value=[
            {
                "timestamp": at,
                "sampledValue": [{"value": energy_wh, "measurand": "Energy.Active.Import.Register"}],
            }
        ],
    )


async def until(check: Any) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


async def test_a_plug_and_charge_session_is_billed_to_the_contracts_driver(
    server: Server, pki: Pki, gateway: GatewayProcess
) -> None:
    database = server.csms.database
    await seed_driver(database, "petra")
    await database.pool.execute(
        "INSERT INTO driver_tokens (id_token, token_type, driver_id) VALUES ($1, 'eMAID', 'petra')", EMAID
    )
    await server.csms.chargers.save(
        ChargerRecord(charger_id="CS-PNC", connectors=(ConnectorSpec(1, 1, "CCS2", 150.0),))
    )
    await server.sessions.tariffs.publish(
        {
            "id": "pnc",
            "currency": "EUR",
            "elements": [
                {"price_components": [{"type": "ENERGY", "price": 0.50, "vat": 19, "step_size": 1}]}
            ],
        },
        cpo_id=None,
        created_by=None,
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    await server.sessions.tariffs.assign("charger", "CS-PNC", "pnc")
    contract, _ = pki.contract(EMAID)
    revoked, _ = pki.contract(EMAID)
    pki.responder.revoke(revoked)
    url = f"ws://127.0.0.1:{server.port}/ocpp/CS-PNC"
    async with connected(Charger201, url, "CS-PNC", "ocpp2.0.1") as station:
        await station.call(
            call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"),
            suppress=False,
        )
        refused = await station.call(
            call.Authorize(id_token={"id_token": EMAID, "type": "eMAID"}, certificate=pki.chain(revoked)),
            suppress=False,
        )
        assert (refused.id_token_info["status"], refused.certificate_status) == (
            "Blocked",
            "CertificateRevoked",
        )
        answer = await station.call(
            call.Authorize(id_token={"id_token": EMAID, "type": "eMAID"}, certificate=pki.chain(contract)),
            suppress=False,
        )
        assert (answer.id_token_info["status"], answer.certificate_status) == ("Accepted", "Accepted")
        started = await station.call(transaction_event("Started", 0, 1_000.0), suppress=False)
        assert started.id_token_info["status"] == "Accepted"
        await station.call(
            transaction_event("Ended", 1, 21_000.0, stoppedReason="EVDisconnected"), suppress=False
        )

    async def listed() -> list[dict[str, Any]] | None:
        async with server.http.get(
            server.url("/v1/sessions?driver=me"), headers=server.headers("petra")
        ) as r:
            sessions: list[dict[str, Any]] = (await r.json())["sessions"]
            return sessions if sessions and sessions[0]["state"] == "COMPLETED" else None

    sessions = await until(listed)
    assert [(s["origin"], s["energy_kwh"]) for s in sessions] == [("plug_and_charge", 20.0)]
    receipt_url = server.url(f"/v1/sessions/{sessions[0]['session_id']}/receipt")

    async def receipt() -> dict[str, Any] | None:
        async with server.http.get(receipt_url, headers=server.headers("petra")) as r:
            shown: dict[str, Any] = await r.json()
            return (
                shown
                if r.status == 200 and shown["payment"] and shown["payment"][0]["state"] == "captured"
                else None
            )

    shown = await until(receipt)
    # 20 kWh at 0.50 EUR + 19 % VAT.
    assert (shown["energy_kwh"], shown["total_incl_vat"], shown["currency"]) == ("20.000", "11.90", "EUR")
    movements = (await gateway.movements_by_session())[sessions[0]["session_id"]]
    assert [m["amount"] for m in movements] == [1190]


async def test_an_offline_plug_and_charge_session_is_billed_once_on_reconnect(
    server: Server, gateway: GatewayProcess
) -> None:
    """The station verified the contract itself while offline and queued the transaction; on
    reconnect it sends the events, some twice: one session, one receipt, one capture."""
    database = server.csms.database
    emaid = "DE-FWT-C30000002-1"
    await seed_driver(database, "otto")
    await database.pool.execute(
        "INSERT INTO driver_tokens (id_token, token_type, driver_id) VALUES ($1, 'eMAID', 'otto')", emaid
    )
    await server.csms.chargers.save(
        ChargerRecord(charger_id="CS-OFF", connectors=(ConnectorSpec(1, 1, "CCS2", 50.0),))
    )
    await server.sessions.tariffs.publish(
        {
            "id": "pnc-offline",
            "currency": "EUR",
            "elements": [
                {"price_components": [{"type": "ENERGY", "price": 0.40, "vat": 19, "step_size": 1}]}
            ],
        },
        cpo_id=None,
        created_by=None,
        now=datetime.now(UTC) - timedelta(hours=3),
    )
    await server.sessions.tariffs.assign("charger", "CS-OFF", "pnc-offline")

    def offline_event(event_type: str, seq_no: int, minutes: int, energy_wh: float, **info: Any) -> Any:
        at = now_text(timedelta(minutes=minutes - 120))
        return call.TransactionEvent(
            event_type=event_type,
            timestamp=at,
            trigger_reason="Authorized" if event_type == "Started" else "EVCommunicationLost",
            seq_no=seq_no,
            offline=True,
            transaction_info={"transactionId": "TX-PNC-OFF", **info},
            evse={"id": 1, "connectorId": 1},
            id_token={"idToken": emaid, "type": "eMAID"},
            meter_value=[
                {
                    "timestamp": at,
                    "sampledValue": [{"value": energy_wh, "measurand": "Energy.Active.Import.Register"}],
                }
            ],
        )

    queued = [
        offline_event("Started", 0, 0, 5_000.0),
        offline_event("Ended", 1, 45, 15_000.0, stoppedReason="EVDisconnected"),
    ]
    url = f"ws://127.0.0.1:{server.port}/ocpp/CS-OFF"
    async with connected(Charger201, url, "CS-OFF", "ocpp2.0.1") as station:
        await station.call(
            call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"),
            suppress=False,
        )
        for event in (*queued, *queued):  # resent: the station was not sure they arrived
            await station.call(event, suppress=False)

    async def captured() -> list[dict[str, Any]] | None:
        async with server.http.get(server.url("/v1/sessions?driver=me"), headers=server.headers("otto")) as r:
            sessions: list[dict[str, Any]] = (await r.json())["sessions"]
        if len(sessions) != 1 or sessions[0]["state"] != "COMPLETED":
            return None
        async with server.http.get(
            server.url(f"/v1/sessions/{sessions[0]['session_id']}/receipt"), headers=server.headers("otto")
        ) as r:
            shown: dict[str, Any] = await r.json()
        done = r.status == 200 and shown["payment"] and shown["payment"][0]["state"] == "captured"
        return [sessions[0], shown] if done else None

    session, shown = await until(captured)
    assert (session["origin"], session["energy_kwh"]) == ("plug_and_charge", 10.0)
    # 10 kWh at 0.40 EUR + 19 % VAT, captured once.
    assert (shown["total_incl_vat"], shown["currency"]) == ("4.76", "EUR")
    assert [m["amount"] for m in (await gateway.movements_by_session())[session["session_id"]]] == [476]
