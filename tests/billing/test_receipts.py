"""Receipt contents (JSON and HTML), and corrections: a credit note plus a new receipt, never an edit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from billing.corrections import correct_session
from billing.queries import ReceiptStore, reconcile
from billing.rater import receipt_of
from billing.rating import CompletedSession, rate
from billing.receipts import Station, render_html
from billing.stripe import StripeGateway
from csms.storage.database import Database
from sessions.tariff_store import TariffStore
from tariffs.ocpi import parse_tariff
from tests.billing.conftest import GatewayProcess
from tests.billing.helpers import completed_session, make_due, make_worker, seed_charger, seed_driver

START = datetime(2026, 7, 1, 6, 30, tzinfo=UTC)  # 08:30 in Berlin (CEST)

TARIFF = parse_tariff(
    {
        "id": "RCPT",
        "currency": "EUR",
        "min_price": {"excl_vat": 10.00},
        "elements": [
            {
                "price_components": [
                    {"type": "FLAT", "price": 1.00, "vat": 19, "step_size": 1},
                    {"type": "ENERGY", "price": 0.35, "vat": 19, "step_size": 1},
                    {"type": "TIME", "price": 1.20, "vat": 19, "step_size": 60},
                    {"type": "PARKING_TIME", "price": 6.00, "vat": 7, "step_size": 60},
                ]
            }
        ],
    }
)


def test_receipt_shows_energy_duration_idle_each_component_vat_total_station_and_local_times() -> None:
    completed = CompletedSession(
        "3f0c", "d1", "CP<9>", START, START + timedelta(minutes=45), 0.0, 12_345.0, "Europe/Berlin"
    )
    totals = rate(completed, TARIFF, charging_end=START + timedelta(minutes=30))
    station = Station("CP<9>", 2, "ST-1", "Market <Square>", "Hauptstr. 1")
    receipt = receipt_of(completed, totals, station, revision=1, issued_at=START + timedelta(hours=1))
    body = receipt.body

    assert (body["energy_kwh"], body["duration_s"], body["idle_s"]) == ("12.345", 2700, 900)
    assert (body["started_at"], body["ended_at"]) == (
        "2026-07-01T08:30:00+02:00",
        "2026-07-01T09:15:00+02:00",
    )
    assert body["station"] == {
        "station_id": "ST-1",
        "name": "Market <Square>",
        "address": "Hauptstr. 1",
        "charger_id": "CP<9>",
        "evse_id": 2,
    }
    lines = {line["kind"]: line for line in body["lines"]}
    # 1.00 + 12.345 kWh * 0.35 + 0.5 h * 1.20 + 0.25 h * 6.00 = 7.42075 excl. < 10.00 minimum; incl.
    # VAT 8.6506925 scales in proportion to 11.6574 -> 11.66, so the adjustment is 2.58 / 3.01.
    assert {k: (v["quantity"], v["amount_excl_vat"], v["amount_incl_vat"]) for k, v in lines.items()} == {
        "flat": ("1.0000", "1.00", "1.19"),
        "energy": ("12.3450", "4.32", "5.14"),
        "time": ("0.5000", "0.60", "0.71"),
        "parking_time": ("0.2500", "1.50", "1.61"),
        "adjustment": ("1", "2.58", "3.01"),
    }
    assert lines["adjustment"]["description"] == "Minimum session price"
    assert (body["total_excl_vat"], body["total_vat"], body["total_incl_vat"]) == ("10.00", "1.66", "11.66")
    assert sum(Decimal(v["amount_incl_vat"]) for v in body["lines"]) == Decimal(body["total_incl_vat"])
    assert {(v["vat_percent"], v["vat"]) for v in body["vat_breakdown"]} == {
        ("19", "1.12"),
        ("7", "0.11"),
        (None, "0.43"),
    }

    page = render_html(body)
    for shown in (
        "12.345 kWh",
        "0:45:00",
        "idle time 0:15:00",
        "2026-07-01T08:30:00+02:00",
        "Europe/Berlin",
        "Minimum session price",
        "Total: 11.66 EUR",
        "VAT: 1.66 EUR",
        "Market &lt;Square&gt;",
    ):
        assert shown in page, shown
    assert "<Square>" not in page


@pytest.mark.asyncio
async def test_a_correction_is_a_credit_note_plus_a_new_receipt_and_refunds_the_difference(
    database: Database, gateway: GatewayProcess
) -> None:
    await seed_charger(database, "CP-R")
    await seed_driver(database, "finn")
    session_id = await completed_session(
        database, charger_id="CP-R", driver_id="finn", energy_wh=20_000, minutes=60
    )
    stripe = StripeGateway(gateway.url, "sk_test_x", timeout_s=2)
    try:
        worker = make_worker(database, stripe)
        await worker.run_once()
        receipts = ReceiptStore(database)
        first = await receipts.receipt_json(session_id)
        assert first is not None
        assert first["total_incl_vat"] == "7.74"  # 0.50 + 20 kWh * 0.30, + 19 %

        new = await correct_session(
            database,
            TariffStore(database),
            session_id,
            reason="meter misread: 15 kWh",
            meter_stop_wh=1_015_000.0,
        )
        assert (new.revision, new.total_incl_vat) == (2, Decimal("5.95"))
        documents = await receipts.documents(session_id)
        assert [(d["document_id"][:2], d["revision"], d["total_incl_vat"]) for d in documents] == [
            ("RC", 1, "7.74"),
            ("RC", 2, "5.95"),
            ("CN", 2, "-7.74"),
        ]
        assert documents[2]["replaces"] == first["document_id"] == documents[1]["replaces"]
        current = await receipts.receipt_json(session_id)
        assert current is not None
        assert current["reason"] == "meter misread: 15 kWh"
        assert [line["description"] for line in current["lines"]][-1] == "Rounding"  # 0.60 + 5.36 -> 5.95

        with pytest.raises(asyncpg.RaiseError, match="immutable"):
            await database.pool.execute("UPDATE billing_documents SET total_incl_vat = 0")
        with pytest.raises(asyncpg.RaiseError, match="immutable"):
            await database.pool.execute("DELETE FROM billing_line_items")

        await make_due(database)
        await worker.run_once()
        refunds = list((await gateway.state())["refunds"].values())
        assert [(r["amount"], r["status"]) for r in refunds] == [(179, "succeeded")]
        result = await reconcile(database)
        assert result.balanced
        assert result.rated == {"EUR": Decimal("5.95")} == result.captured
    finally:
        await stripe.close()


@pytest.mark.asyncio
async def test_a_correction_of_a_session_left_as_debt_lowers_the_debt(
    database: Database, gateway: GatewayProcess
) -> None:
    await seed_charger(database, "CP-RD")
    await seed_driver(database, "kim", token="pm_card_chargeDeclined")
    session_id = await completed_session(
        database, charger_id="CP-RD", driver_id="kim", energy_wh=20_000, minutes=60
    )
    stripe = StripeGateway(gateway.url, "sk_test_x", timeout_s=2)
    try:
        worker = make_worker(database, stripe)
        for _ in range(3):
            await worker.run_once()
            await make_due(database)
        await correct_session(
            database, TariffStore(database), session_id, reason="goodwill: 15 kWh", meter_stop_wh=1_015_000.0
        )
        await worker.run_once()
    finally:
        await stripe.close()
    states = [
        r["state"] for r in await database.pool.fetch("SELECT state FROM billing_payments ORDER BY revision")
    ]
    assert states == ["debt", "debt"]
    result = await reconcile(database)
    assert result.balanced
    assert result.debt == {"EUR": Decimal("5.95")} == result.outstanding == result.rated
    assert (await gateway.state())["refunds"] == {}
