"""Audit of billing's promise, every kWh billed exactly once and every amount stated right, against
the real PostgreSQL and the local test gateway: VAT per rate on receipts, currencies whose provider
unit is not the ISO minor unit, refunds after several corrections, provider answers that moved no
money, the tariff a corrected receipt names, and one session's bad data not stopping the rest."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from billing.corrections import correct_session
from billing.gateway import IntentStatus, PaymentIntent, Refund
from billing.holds import GatewayHolds
from billing.queries import ReceiptStore, reconcile
from billing.rater import Rater, receipt_of
from billing.rating import CompletedSession, rate
from billing.receipts import Station
from billing.stripe import StripeGateway
from csms.storage.database import Database
from sessions.tariff_store import TariffStore
from tariffs.ocpi import parse_tariff
from tests.billing.conftest import GatewayProcess
from tests.billing.helpers import (
    SIMPLE_TARIFF,
    START,
    completed_session,
    make_due,
    make_worker,
    seed_charger,
    seed_driver,
    stripe_client,
)

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def stripe(gateway: GatewayProcess) -> AsyncIterator[StripeGateway]:
    async with stripe_client(gateway.url, timeout_s=2) as client:
        yield client


def _tariff(tariff_id: str, currency: str, energy_price: float, vat: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": tariff_id,
        "currency": currency,
        "start_date_time": "2020-01-01T00:00:00Z",
        "elements": [
            {"price_components": [{"type": "ENERGY", "price": energy_price, "vat": vat, "step_size": 1}]}
        ],
        **extra,
    }


# ---- receipts: VAT per rate ------------------------------------------------------------------------


async def test_a_rounding_line_keeps_the_vat_breakdown_of_a_single_rate_receipt_exact() -> None:
    # 0.50 flat + 15 kWh * 0.30 = 5.00 net, + 19 % = 5.95; per line 0.60 + 5.36 = 5.96: a rounding line.
    session = CompletedSession(
        "audit-1", "d1", "CP-A", START, START + timedelta(hours=1), 0.0, 15_000.0, "Europe/Berlin"
    )
    tariff = parse_tariff(SIMPLE_TARIFF)
    totals = rate(session, tariff, charging_end=None)
    receipt = receipt_of(session, totals, Station("CP-A", 1), revision=1, issued_at=START)
    body = receipt.body

    assert [(line["kind"], line["amount_incl_vat"]) for line in body["lines"]] == [
        ("flat", "0.60"),
        ("energy", "5.36"),
        ("adjustment", "-0.01"),
    ]
    assert sum(Decimal(line["amount_incl_vat"]) for line in body["lines"]) == Decimal(body["total_incl_vat"])
    # One rate, one VAT amount: 19 % of 5.00 is 0.95, not 0.96 plus -0.01 "without a rate".
    assert body["vat_breakdown"] == [{"vat_percent": "19", "net": "5.00", "vat": "0.95"}]
    assert (body["total_excl_vat"], body["total_vat"], body["total_incl_vat"]) == ("5.00", "0.95", "5.95")


async def test_a_minimum_price_line_is_taxed_at_the_sessions_rate() -> None:
    tariff = parse_tariff(_tariff("MINP", "EUR", 0.40, 19, min_price={"excl_vat": 10.00}))
    session = CompletedSession(
        "audit-2", "d1", "CP-A", START, START + timedelta(hours=1), 0.0, 5_000.0, "Europe/Berlin"
    )
    receipt = receipt_of(
        session, rate(session, tariff, charging_end=None), Station("CP-A", 1), revision=1, issued_at=START
    )
    adjustment = receipt.body["lines"][-1]
    assert (adjustment["description"], adjustment["vat_percent"]) == ("Minimum session price", "19")
    assert receipt.body["vat_breakdown"] == [{"vat_percent": "19", "net": "10.00", "vat": "1.90"}]
    assert receipt.total_incl_vat == Decimal("11.90")


# ---- currencies: minor units at the provider --------------------------------------------------------


async def _bill_one(
    database: Database, stripe: StripeGateway, charger_id: str, tariff: dict[str, Any], driver_id: str
) -> str:
    await seed_charger(database, charger_id, tariff=tariff)
    await seed_driver(database, driver_id)
    session_id = await completed_session(
        database, charger_id=charger_id, driver_id=driver_id, energy_wh=20_000
    )
    await make_worker(database, stripe).run_once()
    return session_id


@pytest.mark.parametrize(
    ("currency", "price", "vat", "total", "sent"),
    [
        # 20 kWh * 45.5 = 910, + 10 % = 1001 yen, no decimals
        pytest.param("JPY", 45.5, 10, 1001, 1001, id="jpy-is-charged-in-whole-yen"),
        # Stripe keeps ISK two-decimal in its API (ISK 5 is amount=500); ISO 4217 and the receipt say 0.
        pytest.param("ISK", 50, 24, 1240, 124_000, id="isk-is-sent-in-its-two-decimal-api-unit"),
    ],
)
async def test_a_currency_without_decimals_is_billed_whole_and_sent_in_the_providers_unit(
    database: Database,
    gateway: GatewayProcess,
    stripe: StripeGateway,
    currency: str,
    price: float,
    vat: float,
    total: int,
    sent: int,
) -> None:
    tariff = _tariff(f"{currency}1", currency, price, vat)
    session_id = await _bill_one(database, stripe, f"CP-{currency}", tariff, f"driver-{currency.lower()}")
    receipt = await ReceiptStore(database).receipt_json(session_id)
    assert receipt is not None
    assert receipt["total_incl_vat"] == str(total)
    moved = (await gateway.movements_by_session())[session_id]
    assert [(m["amount"], m["currency"]) for m in moved] == [(sent, currency.lower())]
    row = await database.pool.fetchrow(
        "SELECT state, captured_amount FROM billing_payments WHERE session_id = $1", uuid.UUID(session_id)
    )
    assert (row["state"], row["captured_amount"]) == ("captured", Decimal(total))
    assert (await reconcile(database)).balanced


async def test_isk_holds_captures_and_refunds_convert_both_ways(
    stripe: StripeGateway, gateway: GatewayProcess
) -> None:
    held = await stripe.authorize(
        idempotency_key="hold:isk",
        payment_token="pm_card_visa",
        amount_minor=5000,
        currency="ISK",
        metadata={},
    )
    assert held.amount_minor == 5000
    captured = await stripe.capture(
        idempotency_key="capture:isk", intent_id=held.intent_id, amount_minor=4321, currency="ISK"
    )
    assert (captured.status, captured.amount_received_minor) == (IntentStatus.SUCCEEDED, 4321)
    refund = await stripe.refund(
        idempotency_key="refund:isk", intent_id=held.intent_id, amount_minor=321, currency="ISK"
    )
    assert refund.amount_minor == 321
    state = await gateway.state()
    assert state["intents"][held.intent_id]["amount_received"] == 432_100
    assert [r["amount"] for r in state["refunds"].values()] == [32_100]


# ---- refunds after several corrections ---------------------------------------------------------------


async def test_a_refund_larger_than_the_first_payment_is_split_over_the_sessions_payments(
    database: Database, gateway: GatewayProcess, stripe: StripeGateway
) -> None:
    await seed_charger(database, "CP-RF")
    await seed_driver(database, "ria")
    session_id = str(uuid.uuid4())
    holds = GatewayHolds(database, stripe, amount=Decimal("50.00"), currency="EUR")
    assert await holds.authorize(session_id, "ria", "pmid-ria") is None
    await completed_session(
        database, session_id=session_id, charger_id="CP-RF", driver_id="ria", energy_wh=20_000
    )
    worker = make_worker(database, stripe)
    tariffs = TariffStore(database)
    await worker.run_once()  # 7.74 captured from the hold
    await correct_session(database, tariffs, session_id, reason="meter: 40 kWh", meter_stop_wh=1_040_000.0)
    await make_due(database)
    await worker.run_once()  # +7.14 charged (14.88): a second intent
    await correct_session(database, tariffs, session_id, reason="meter: 5 kWh", meter_stop_wh=1_005_000.0)
    await make_due(database)
    # The first refund is made and its answer lost: the retry must replay it, not refund twice.
    await gateway.fault("refund", "fail_after", count=1)
    await worker.run_once()
    await make_due(database)
    await worker.run_once()

    states = await database.pool.fetch(
        "SELECT revision, amount, state, captured_amount FROM billing_payments ORDER BY revision"
    )
    assert [(r["revision"], r["amount"], r["state"], r["captured_amount"]) for r in states] == [
        (1, Decimal("7.74"), "captured", Decimal("7.74")),
        (2, Decimal("7.14"), "captured", Decimal("7.14")),
        (3, Decimal("-12.50"), "captured", Decimal("-12.50")),  # 2.38 is what 5 kWh cost
    ]
    state = await gateway.state()
    refunded: dict[str, int] = {}
    for refund in state["refunds"].values():
        refunded[refund["payment_intent"]] = refunded.get(refund["payment_intent"], 0) + refund["amount"]
    received = {
        i: intent["amount_received"] for i, intent in state["intents"].items() if intent["amount_received"]
    }
    assert sorted(received.values()) == [714, 774]
    assert sorted(refunded.values()) == [476, 774]  # each intent refunded at most what it collected
    assert all(refunded[i] <= received[i] for i in refunded)
    assert sum(received.values()) - sum(refunded.values()) == 238
    result = await reconcile(database)
    assert result.balanced, result
    assert result.rated == {"EUR": Decimal("2.38")} == result.captured


# ---- provider answers that moved no money ------------------------------------------------------------


@dataclass
class AnsweringGateway:
    """A payment gateway double whose off-session charges end in ``status`` (no money moved); it
    takes no hold and makes no refund (the other arguments are those of ``PaymentGateway``)."""

    status: IntentStatus
    charges: list[str] = field(default_factory=list)

    async def charge(
        self, *, idempotency_key: str, amount_minor: int, currency: str, **_: Any
    ) -> PaymentIntent:
        self.charges.append(idempotency_key)
        return PaymentIntent(f"pi_{len(self.charges)}", self.status, amount_minor, 0, currency)

    async def authorize(self, **_: Any) -> PaymentIntent:
        raise AssertionError("no hold in this test")

    capture = release = authorize

    async def refund(self, **_: Any) -> Refund:
        raise AssertionError("no refund in this test")


@pytest.mark.parametrize(
    ("status", "state", "retry_key"),
    [
        (IntentStatus.PROCESSING, "capture_pending", "charge:{}:1:0"),  # not final: same key again
        (IntentStatus.REQUIRES_ACTION, "retrying", "charge:{}:1:1"),  # needs the driver: a decline
    ],
)
async def test_a_charge_that_did_not_succeed_is_not_booked_as_paid(
    database: Database, status: IntentStatus, state: str, retry_key: str
) -> None:
    await seed_charger(database, "CP-P")
    await seed_driver(database, "pia")
    session_id = await completed_session(database, charger_id="CP-P", driver_id="pia")
    gateway = AnsweringGateway(status)
    worker = make_worker(database, gateway)
    await worker.run_once()

    row = await database.pool.fetchrow("SELECT state, captured_amount, last_error FROM billing_payments")
    assert row["state"] == state
    assert row["captured_amount"] is None
    assert status.value in row["last_error"]
    paid = await database.pool.fetchval("SELECT count(*) FROM billing_ledger WHERE kind = 'payment'")
    assert paid == 0
    result = await reconcile(database)
    assert result.balanced, result
    assert result.outstanding == {"EUR": Decimal("7.74")}

    await make_due(database)
    await worker.run_once()
    assert gateway.charges == [f"charge:{session_id}:1:0", retry_key.format(session_id)]


# ---- corrections: the tariff a receipt names ---------------------------------------------------------


async def test_a_correction_with_another_tariff_names_that_tariff(
    database: Database, gateway: GatewayProcess, stripe: StripeGateway
) -> None:
    await seed_charger(database, "CP-T")
    await seed_driver(database, "tom")
    session_id = await completed_session(database, charger_id="CP-T", driver_id="tom", energy_wh=20_000)
    await make_worker(database, stripe).run_once()
    cheaper = parse_tariff(_tariff("CHEAP", "EUR", 0.20, 19))

    receipt = await correct_session(
        database, TariffStore(database), session_id, reason="wrong tariff assigned", tariff=cheaper
    )

    assert receipt.total_incl_vat == Decimal("4.76")  # 20 kWh * 0.20 + 19 %
    assert receipt.body["tariff_id"] == "CHEAP"
    current = await ReceiptStore(database).receipt_json(session_id)
    assert current is not None
    assert current["tariff_id"] == "CHEAP"
    credit = [d for d in await ReceiptStore(database).documents(session_id) if d["kind"] == "credit_note"]
    assert [d["tariff_id"] for d in credit] == ["SIMPLE"]  # the credit note cancels what was billed
    rated = await database.pool.fetchval("SELECT tariff_id FROM billing_ratings")
    assert rated == "CHEAP"


# ---- exactly once, and one session's bad data ----------------------------------------------------------


async def test_an_impossible_reading_waits_queued_and_does_not_stop_the_others(database: Database) -> None:
    await seed_charger(database, "CP-N")
    await seed_driver(database, "nia")
    broken = await completed_session(database, charger_id="CP-N", driver_id="nia", energy_wh=float("nan"))
    noisy = await completed_session(
        database,
        charger_id="CP-N",
        driver_id="nia",
        start=START + timedelta(hours=2),
        samples=[(10, float("inf")), (30, 10_000)],
    )
    fine = await completed_session(
        database, charger_id="CP-N", driver_id="nia", start=START + timedelta(hours=4)
    )

    assert await Rater(database, TariffStore(database)).rate_batch() == 2

    rated = {r["s"] for r in await database.pool.fetch("SELECT session_id::text AS s FROM billing_ratings")}
    assert rated == {noisy, fine}
    queued = await database.pool.fetchrow(
        "SELECT session_id::text AS s, attempts, last_error FROM billing_rating_queue"
    )
    assert (queued["s"], queued["attempts"]) == (broken, 1)
    assert "impossible meter reading" in queued["last_error"]
    energy = await database.pool.fetchval(
        "SELECT energy_wh FROM billing_ratings WHERE session_id = $1", uuid.UUID(noisy)
    )
    assert energy == Decimal("20000.000")


async def test_a_meter_that_ran_backwards_is_not_billed_and_stays_queued(database: Database) -> None:
    await seed_charger(database, "CP-M")
    await seed_driver(database, "max")
    session_id = await completed_session(database, charger_id="CP-M", driver_id="max", energy_wh=-5_000)
    rater = Rater(database, TariffStore(database), retry_s=0)
    assert await rater.rate_batch() == 0
    assert await rater.rate_batch() == 0
    queued = await database.pool.fetchrow(
        "SELECT session_id::text AS s, attempts, last_error FROM billing_rating_queue"
    )
    assert (queued["s"], queued["attempts"]) == (session_id, 2)
    assert "below start" in queued["last_error"]
    assert await database.pool.fetchval("SELECT count(*) FROM billing_documents") == 0


async def test_a_completion_reported_again_after_rating_bills_nothing_twice(
    database: Database, gateway: GatewayProcess, stripe: StripeGateway
) -> None:
    await seed_charger(database, "CP-X")
    await seed_driver(database, "xia")
    session_id = await completed_session(database, charger_id="CP-X", driver_id="xia")
    worker = make_worker(database, stripe)
    await worker.run_once()
    # A replayed StopTransaction / Ended event completing it again (the trigger re-queues it), seen
    # by two nodes at once.
    await database.pool.execute("UPDATE charging_sessions SET state = 'STOPPING'")
    await database.pool.execute("UPDATE charging_sessions SET state = 'COMPLETED'")
    assert await database.pool.fetchval("SELECT count(*) FROM billing_rating_queue") == 1
    raters = [Rater(database, TariffStore(database)) for _ in range(2)]
    assert await asyncio.gather(*(r.rate_batch() for r in raters)) == [0, 0]
    await make_due(database)
    await worker.run_once()

    counts = await database.pool.fetchrow(
        """SELECT (SELECT count(*) FROM billing_ratings) AS ratings,
                  (SELECT count(*) FROM billing_documents) AS documents,
                  (SELECT count(*) FROM billing_payments) AS payments,
                  (SELECT count(*) FROM billing_ledger WHERE kind = 'charge') AS charges,
                  (SELECT count(*) FROM billing_rating_queue) AS queued"""
    )
    assert dict(counts) == {"ratings": 1, "documents": 1, "payments": 1, "charges": 1, "queued": 0}
    assert [m["amount"] for m in (await gateway.movements_by_session())[session_id]] == [774]


async def test_a_session_stored_in_utc_is_priced_and_shown_in_its_stations_local_time(
    database: Database,
) -> None:
    # Reported only when it ended, before the charger had a tariff: sessions/ stored it as 'UTC'.
    peak = {
        "id": "TOU",
        "currency": "EUR",
        "start_date_time": "2020-01-01T00:00:00Z",
        "elements": [
            {
                "price_components": [{"type": "ENERGY", "price": 0.50, "vat": 19, "step_size": 1}],
                "restrictions": {"start_time": "17:00", "end_time": "20:00"},
            },
            {"price_components": [{"type": "ENERGY", "price": 0.30, "vat": 19, "step_size": 1}]},
        ],
    }
    await seed_charger(database, "CP-Z", tariff=peak, time_zone="Europe/Berlin")
    await seed_driver(database, "zoe")
    session_id = await completed_session(
        database, charger_id="CP-Z", driver_id="zoe", energy_wh=20_000, time_zone="UTC"
    )  # 16:00-17:00 UTC is 17:00-18:00 in Berlin: peak

    assert await Rater(database, TariffStore(database)).rate_batch() == 1

    receipt = await ReceiptStore(database).receipt_json(session_id)
    assert receipt is not None
    assert (receipt["started_at"], receipt["time_zone"]) == ("2026-03-02T17:00:00+01:00", "Europe/Berlin")
    assert receipt["total_excl_vat"] == "10.00"  # 20 kWh at the peak price, not 6.00 off-peak
