"""End to end through the real server: a driver starts a session on an ``ocpp``-package charger
through the sessions API, the charger stops it, billing captures the final amount from the hold at
the local test gateway, and the receipt is served; operators see debts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from ocpp.v16 import call as call16

import billing.api
from billing.app import BILLING, BillingRuntime, BillingSettings
from billing.app import install as install_billing
from csms.server import CSMS, create_app
from csms.storage.chargers import ChargerRecord, ConnectorSpec
from sessions.app import SESSIONS, SessionsRuntime, SessionsSettings
from sessions.app import install as install_sessions
from sessions.auth import Role
from tests.billing.conftest import GatewayProcess
from tests.billing.helpers import TEST_POLICY, completed_session, make_due, seed_charger, seed_driver
from tests.csms.chargers import Charger16, connected
from tests.csms.conftest import make_settings

pytestmark = pytest.mark.asyncio
TOKEN_SECRET = "billing-test-secret-of-at-least-32-bytes"
WAIT_S = 15.0


@dataclass
class BilledApi:
    sessions: SessionsRuntime
    billing: BillingRuntime
    port: int
    http: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(
        self, subject: str, role: Role = Role.DRIVER, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        cpo = "CPO1" if role is Role.OPERATOR else None
        return {
            "Authorization": f"Bearer {self.sessions.issuer.mint(subject, role, cpo_id=cpo)}",
            **(extra or {}),
        }


@pytest_asyncio.fixture
async def billed(database_dsn: str, gateway: GatewayProcess) -> AsyncIterator[BilledApi]:
    app = create_app(make_settings(database_dsn))
    install_sessions(app, SessionsSettings(token_secret=TOKEN_SECRET), extra_api=[billing.api.register])
    install_billing(
        app,
        BillingSettings(
            gateway_url=gateway.url,
            gateway_api_key="sk_test_e2e",
            gateway_timeout_s=2.0,
            poll_interval_s=30.0,  # longer than any test: billing runs because the sink woke it
            policy=TEST_POLICY,
        ),
    )
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    try:
        async with aiohttp.ClientSession() as http:
            yield BilledApi(app[SESSIONS], app[BILLING], port, http)
    finally:
        await runner.cleanup()
    assert app[CSMS] is not None


async def until(check: Any) -> Any:
    """Poll ``check()`` until it returns something truthy (billing runs in its own task)."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


def now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def test_a_charger_session_started_through_the_api_is_captured_and_receipted(
    billed: BilledApi, gateway: GatewayProcess
) -> None:
    database = billed.sessions.csms.database
    payment = await seed_driver(database, "gina")
    await billed.sessions.csms.chargers.save(
        ChargerRecord(charger_id="CP-E2E", connectors=(ConnectorSpec(1, 1, "Type2", 22.0),))
    )
    await billed.sessions.tariffs.publish(
        {
            "id": "e2e",
            "currency": "EUR",
            "elements": [
                {"price_components": [{"type": "ENERGY", "price": 0.30, "vat": 19, "step_size": 1}]}
            ],
        },
        cpo_id=None,
        created_by=None,
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    await billed.sessions.tariffs.assign("charger", "CP-E2E", "e2e")
    url = f"ws://127.0.0.1:{billed.port}/ocpp/CP-E2E"
    async with connected(Charger16, url, "CP-E2E", "ocpp1.6") as charger:
        await charger.call(
            call16.BootNotification(charge_point_model="M", charge_point_vendor="V"), suppress=False
        )
        await charger.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"),
            suppress=False,
        )
        body = {"charger_id": "CP-E2E", "connector_id": 1, "payment_method_id": payment}
        async with billed.http.post(
            f"{billed.base_url}/v1/sessions",
            json=body,
            headers=billed.headers("gina", extra={"Idempotency-Key": "k1"}),
        ) as response:
            created = await response.json()
            assert response.status == 201, created
        session_id = created["session_id"]
        hold = next(iter((await gateway.state())["intents"].values()))
        assert (hold["status"], hold["amount"], hold["metadata"]["session_id"]) == (
            "requires_capture",
            5000,
            session_id,
        )

        action, request = await asyncio.wait_for(charger.received.get(), WAIT_S)
        assert action == "RemoteStartTransaction"
        started = await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag=request["id_tag"], meter_start=1000, timestamp=now_text()
            ),
            suppress=False,
        )
        stop = call16.StopTransaction(
            meter_stop=5000, timestamp=now_text(), transaction_id=started.transaction_id, reason="Local"
        )
        await charger.call(stop, suppress=False)
        await charger.call(stop, suppress=False)  # the charger resends its StopTransaction

    receipt_url = f"{billed.base_url}/v1/sessions/{session_id}/receipt"

    async def receipt() -> dict[str, Any] | None:
        async with billed.http.get(receipt_url, headers=billed.headers("gina")) as r:
            shown = await r.json()
            done = r.status == 200 and shown["payment"][0]["state"] == "captured"
            return shown if done else None

    shown = await until(receipt)
    assert (shown["energy_kwh"], shown["total_incl_vat"], shown["currency"]) == ("4.000", "1.43", "EUR")
    assert shown["station"]["charger_id"] == "CP-E2E"
    async with billed.http.get(
        receipt_url, headers=billed.headers("gina", extra={"Accept": "text/html"})
    ) as r:
        assert r.content_type == "text/html"
        assert "Total: 1.43 EUR" in await r.text()

    movements = (await gateway.movements_by_session())[session_id]
    assert [(m["how"], m["amount"], m["intent_id"]) for m in movements] == [("capture", 143, hold["id"])]
    assert await database.pool.fetchval("SELECT count(*) FROM billing_ratings") == 1


async def test_operators_see_debts_and_drivers_do_not(billed: BilledApi, gateway: GatewayProcess) -> None:
    database = billed.sessions.csms.database
    await seed_charger(database, "CP-D")
    await seed_driver(database, "hank", token="pm_card_chargeDeclined")
    session_id = await completed_session(database, charger_id="CP-D", driver_id="hank", energy_wh=10_000)

    async def declines() -> bool:
        count: int = await database.pool.fetchval("SELECT declines FROM billing_payments") or 0
        if count < TEST_POLICY.max_declines:
            await make_due(database)  # the backoff ends...
            for sink in billed.sessions.completion_sinks:
                await sink.session_completed(session_id)  # ...and the worker is woken
        return count >= TEST_POLICY.max_declines

    await until(declines)
    debts_url = f"{billed.base_url}/v1/operator/billing/debts"
    async with billed.http.get(debts_url, headers=billed.headers("op", Role.OPERATOR)) as r:
        assert r.status == 200
        listed = (await r.json())["debts"]
    assert [(d["session_id"], d["amount"], d["currency"]) for d in listed] == [(session_id, "4.17", "EUR")]
    async with billed.http.get(debts_url, headers=billed.headers("hank")) as r:
        assert (r.status, r.content_type) == (403, "application/problem+json")
    async with billed.http.get(debts_url + "?limit=0", headers=billed.headers("op", Role.OPERATOR)) as r:
        assert r.status == 400
    async with billed.http.get(
        f"{billed.base_url}/v1/operator/billing/reconciliation", headers=billed.headers("op", Role.OPERATOR)
    ) as r:
        result = await r.json()
    assert result["balanced"] is True
    assert (result["outstanding"], result["debt"]) == ({"EUR": "4.17"}, {"EUR": "4.17"})
    assert Decimal(result["rated"]["EUR"]) == Decimal("4.17")


async def test_operators_add_promotions_and_drivers_enter_codes_that_discount_their_receipts(
    billed: BilledApi,
) -> None:
    database = billed.sessions.csms.database
    await seed_charger(database, "CP-P")
    await seed_driver(database, "ines")
    url = f"{billed.base_url}/v1/operator/billing/promotions"
    operator = billed.headers("op", Role.OPERATOR)
    body = {"promotion_id": "spring", "kind": "PERCENT", "amount": "20", "code": "spring26"}
    async with billed.http.post(url, json=body, headers=operator) as r:
        assert r.status == 201
        assert (await r.json())["cpo_id"] == "CPO1"
    async with billed.http.post(url, json=body, headers=operator) as r:
        assert (r.status, r.content_type) == (409, "application/problem+json")
    async with billed.http.post(url, json={"kind": "FIXED", "amount": 2}, headers=operator) as r:
        assert r.status == 400
        assert "needs a currency" in (await r.json())["detail"]
    async with billed.http.post(url, json=body, headers=billed.headers("ines")) as r:
        assert r.status == 403
    async with billed.http.get(url, headers=operator) as r:
        assert [p["promotion_id"] for p in (await r.json())["promotions"]] == ["spring"]

    codes = f"{billed.base_url}/v1/billing/promotion-codes"
    async with billed.http.post(codes, json={"code": "winter"}, headers=billed.headers("ines")) as r:
        assert r.status == 404
    async with billed.http.post(codes, json={}, headers=billed.headers("ines")) as r:
        assert r.status == 400
    async with billed.http.post(codes, json={"code": "Spring26"}, headers=billed.headers("ines")) as r:
        assert r.status == 201
        assert (await r.json())["promotion_id"] == "spring"

    # A session started after the code was entered: 10 kWh, 60 min, no idle: 0.50 + 3.00 = 3.50
    # excl. VAT, 4.165 incl.; 20 % off: 2.80 excl., 3.332 incl. -> 3.33.
    session_id = await completed_session(
        database, charger_id="CP-P", driver_id="ines", energy_wh=10_000, start=datetime.now(UTC)
    )
    for sink in billed.sessions.completion_sinks:
        await sink.session_completed(session_id)

    async def receipt() -> Any:
        async with billed.http.get(
            f"{billed.base_url}/v1/sessions/{session_id}/receipt", headers=billed.headers("ines")
        ) as r:
            return await r.json() if r.status == 200 else None

    found = await until(receipt)
    assert found["total_incl_vat"] == "3.33"
    assert [line["kind"] for line in found["lines"]] == ["flat", "energy", "discount"]
    assert found["promotion"]["code"] == "SPRING26"
