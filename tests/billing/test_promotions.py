"""Promotions in billing: stored per operator, a membership tier's or an entered code's discount on the
receipt as its own line, one promotion at most, and the discounted amount is what is captured."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from billing.corrections import correct_session
from billing.promotions import PromotionError, PromotionStore, parse_promotion
from billing.queries import ReceiptStore, reconcile
from billing.rater import Rater
from billing.stripe import StripeGateway
from csms.storage.database import Database
from sessions.tariff_store import TariffStore
from tariffs.promotions import DiscountKind, Promotion
from tests.billing.conftest import GatewayProcess
from tests.billing.helpers import START, completed_session, make_worker, seed_charger, seed_driver

# SIMPLE_TARIFF on 20 kWh with 20 idle minutes: 0.50 + 6.00 + 2.00 = 8.50 excl., 10.115 incl. 19 % VAT.
SAMPLES = [(10, 5_000.0), (40, 20_000.0), (50, 20_000.0)]
GOLD = Promotion("gold-10", DiscountKind.PERCENT, Decimal(10), tier="gold")
WELCOME = Promotion("welcome", DiscountKind.FIXED, Decimal("2.00"), code="Welcome", currency="EUR")


async def rate_one(database: Database, driver_id: str, charger_id: str = "CP-PROMO") -> str:
    session_id = await completed_session(
        database, charger_id=charger_id, driver_id=driver_id, energy_wh=20_000, minutes=60, samples=SAMPLES
    )
    assert await Rater(database, TariffStore(database)).rate_batch() == 1
    return session_id


async def receipt(database: Database, session_id: str) -> dict[str, object]:
    found = await ReceiptStore(database).receipt_json(session_id)
    assert found is not None
    return found


async def set_tier(database: Database, driver_id: str, tier: str) -> None:
    await database.pool.execute("UPDATE drivers SET tier = $2 WHERE driver_id = $1", driver_id, tier)


@pytest.mark.asyncio
async def test_a_tier_discount_is_its_own_receipt_line_and_what_is_captured(
    database: Database, gateway: GatewayProcess
) -> None:
    await seed_charger(database, "CP-PROMO")
    await seed_charger(database, "CP-PLAIN")
    await seed_driver(database, "gilda")
    await set_tier(database, "gilda", "gold")
    await seed_driver(database, "plain")
    store = PromotionStore(database)
    await store.add(GOLD, cpo_id="CPO1")
    await store.add(Promotion("other-cpo", DiscountKind.PERCENT, Decimal(50)), cpo_id="CPO2")
    await store.add(
        Promotion("expired", DiscountKind.PERCENT, Decimal(50), valid_until=date(2026, 3, 1)), cpo_id=None
    )

    gold_session = await rate_one(database, "gilda")
    plain_session = await rate_one(database, "plain", "CP-PLAIN")

    gold = await receipt(database, gold_session)
    lines = gold["lines"]
    assert isinstance(lines, list)
    discount = [line for line in lines if line["kind"] == "discount"]
    assert discount == [
        {
            "kind": "discount",
            "description": "Promotion gold-10 (10 %, gold members)",
            "quantity": "1",
            "unit": "session",
            "unit_price": None,
            "vat_percent": "19",
            "amount_excl_vat": "-0.85",
            "vat_amount": "-0.17",
            "amount_incl_vat": "-1.02",
        }
    ]
    # 9.1035 incl. VAT after 10 % off 10.115; the energy line still bills every kWh once.
    assert (gold["total_excl_vat"], gold["total_incl_vat"]) == ("7.65", "9.10")
    assert next(line for line in lines if line["kind"] == "energy")["quantity"] == "20.0000"
    assert gold["promotion"] == {
        "promotion_id": "gold-10",
        "kind": "PERCENT",
        "amount": "10",
        "tier": "gold",
        "code": None,
    }
    plain = await receipt(database, plain_session)
    assert plain["total_incl_vat"] == "10.12"
    assert "promotion" not in plain
    row = await database.pool.fetchrow(
        """SELECT promotion_id, discount_incl_vat, total_incl_vat FROM billing_ratings
           WHERE session_id = $1::uuid""",
        gold_session,
    )
    assert (row["promotion_id"], row["discount_incl_vat"], row["total_incl_vat"]) == (
        "gold-10",
        Decimal("1.02"),
        Decimal("9.10"),
    )

    stripe = StripeGateway(gateway.url, "sk_test_x", timeout_s=2)
    try:
        progress = await make_worker(database, stripe).run_once()
        assert progress.settled == 2
    finally:
        await stripe.close()
    movements = await gateway.movements_by_session()
    assert [m["amount"] for m in movements[gold_session]] == [910]
    assert [m["amount"] for m in movements[plain_session]] == [1012]
    result = await reconcile(database)
    assert result.balanced
    assert result.rated == {"EUR": Decimal("19.22")} == result.captured


@pytest.mark.asyncio
async def test_an_entered_code_discounts_sessions_started_after_it_and_the_best_promotion_wins(
    database: Database,
) -> None:
    await seed_charger(database, "CP-PROMO")
    await seed_driver(database, "cody")
    await set_tier(database, "cody", "gold")
    store = PromotionStore(database)
    await store.add(GOLD, cpo_id="CPO1")
    await store.add(WELCOME, cpo_id="CPO1")
    with pytest.raises(PromotionError, match="already exists"):
        await store.add(Promotion("again", DiscountKind.PERCENT, Decimal(5), code="WELCOME"), cpo_id="CPO1")
    with pytest.raises(PromotionError, match="no valid promotion"):
        await store.redeem("cody", "NOPE", now=START)

    # Entered after the first session started: that one gets only the tier's 10 %.
    first = await rate_one(database, "cody")
    assert (
        await store.redeem("cody", "  welcome ", now=START + timedelta(minutes=1))
    ).promotion_id == "welcome"
    assert (await receipt(database, first))["total_incl_vat"] == "9.10"

    second_id = await completed_session(
        database,
        charger_id="CP-PROMO",
        driver_id="cody",
        energy_wh=20_000,
        minutes=60,
        samples=SAMPLES,
        start=START + timedelta(hours=2),
    )
    assert await Rater(database, TariffStore(database)).rate_batch() == 1
    second = await receipt(database, second_id)
    # 2.00 off excl. VAT saves more than 10 % (0.85); 8.50 -> 6.50 excl., 10.115 -> 7.735 incl.
    lines = second["lines"]
    assert isinstance(lines, list)
    discount = next(line for line in lines if line["kind"] == "discount")
    assert discount["description"] == "Promotion welcome (2.00 EUR, code WELCOME)"
    assert (discount["amount_excl_vat"], discount["amount_incl_vat"]) == ("-2.00", "-2.38")
    assert (second["total_excl_vat"], second["total_incl_vat"]) == ("6.50", "7.74")
    assert sum(Decimal(str(line["amount_incl_vat"])) for line in lines) == Decimal("7.74")

    # A correction re-rates with the same promotion: credit note of 7.74, new receipt discounted too.
    corrected = await correct_session(
        database, TariffStore(database), second_id, reason="meter", meter_stop_wh=1_000_000.0 + 10_000
    )
    assert any(item.kind == "discount" for item in corrected.items)
    # 10 kWh, and the register never settles at the corrected reading, so no idle time: 0.50 + 3.00 - 2.00.
    assert corrected.total_excl_vat == Decimal("1.50")
    assert (await reconcile(database)).balanced


def test_a_promotion_from_json_is_checked_with_plain_reasons() -> None:
    promotion = parse_promotion(
        {"promotion_id": "p", "kind": "percent", "amount": "15", "tier": "silver", "valid_from": "2026-01-01"}
    )
    assert (promotion.kind, promotion.amount, promotion.valid_from) == (
        DiscountKind.PERCENT,
        Decimal(15),
        date(2026, 1, 1),
    )
    for body, reason in (
        ({"kind": "HALF", "amount": 1}, "PERCENT or FIXED"),
        ({"kind": "PERCENT", "amount": "lots"}, "decimal number"),
        ({"kind": "PERCENT", "amount": 120}, "cannot exceed 100"),
        ({"kind": "FIXED", "amount": 2}, "needs a currency"),
        ({"kind": "PERCENT", "amount": 5, "valid_until": "soon"}, "valid_until must be a date"),
        ({"kind": "PERCENT", "amount": 5, "colour": "red"}, "unknown field"),
    ):
        with pytest.raises(PromotionError, match=reason):
            parse_promotion(body)
