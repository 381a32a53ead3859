"""Membership tiers and promotions (our extension): percentage or fixed, date-valid, tier or code."""

from __future__ import annotations

from datetime import UTC, date
from zoneinfo import ZoneInfo

import pytest

from tariffs.cdr import CdrTotals
from tariffs.engine import price_session
from tariffs.errors import TariffError
from tariffs.model import DimensionType
from tariffs.promotions import Customer, DiscountKind, Promotion, apply_best_promotion, is_eligible
from tests.tariffs.builders import D, at, component, element, period, session, tariff

BERLIN = ZoneInfo("Europe/Berlin")


def _totals() -> CdrTotals:
    # 20 kWh x 0.50, 20 % VAT: 10.00 excl, 12.00 incl; starts 2024-01-31T23:30Z = 1 Feb 00:30 Berlin.
    t = tariff(element(component(DimensionType.ENERGY, "0.50", vat="20")))
    s = session("2024-01-31T23:30", "2024-02-01T00:30", period("2024-01-31T23:30", energy="20"))
    return price_session(t, s, UTC)


def test_percentage_for_a_tier() -> None:
    gold = Promotion("gold", DiscountKind.PERCENT, D(10), tier="gold")
    result = apply_best_promotion(_totals(), [gold], Customer(tier="gold"), BERLIN)
    assert (result.after.excl_vat, result.after.incl_vat) == (D("9.00"), D("10.80"))
    assert apply_best_promotion(_totals(), [gold], Customer(tier="silver"), BERLIN).promotion is None


def test_fixed_amount_for_a_code_scales_vat_and_never_goes_below_zero() -> None:
    code = Promotion("welcome", DiscountKind.FIXED, D("2.50"), code="WELCOME", currency="EUR")
    result = apply_best_promotion(_totals(), [code], Customer(codes=frozenset({" welcome "})), BERLIN)
    assert (result.discount.excl_vat, result.discount.incl_vat) == (D("2.50"), D("3.00"))
    huge = Promotion("huge", DiscountKind.FIXED, D(50), currency="EUR")
    assert apply_best_promotion(_totals(), [huge], Customer(), BERLIN).after.excl_vat == 0
    other_currency = Promotion("chf", DiscountKind.FIXED, D(5), currency="CHF")
    assert apply_best_promotion(_totals(), [other_currency], Customer(), BERLIN).discount.excl_vat == 0


def test_validity_dates_are_local_and_until_is_exclusive() -> None:
    february = Promotion(
        "feb", DiscountKind.PERCENT, D(5), valid_from=date(2024, 2, 1), valid_until=date(2024, 3, 1)
    )
    january = Promotion(
        "jan", DiscountKind.PERCENT, D(5), valid_from=date(2024, 1, 1), valid_until=date(2024, 2, 1)
    )
    start = at("2024-01-31T23:30")
    assert is_eligible(february, Customer(), start, BERLIN)  # 1 Feb in Berlin
    assert not is_eligible(january, Customer(), start, BERLIN)
    assert is_eligible(january, Customer(), start, UTC)  # still 31 Jan in UTC


def test_the_single_best_promotion_applies() -> None:
    five = Promotion("five", DiscountKind.PERCENT, D(5))
    two_euro = Promotion("two", DiscountKind.FIXED, D(2), currency="EUR")
    result = apply_best_promotion(_totals(), [five, two_euro], Customer(), BERLIN)
    assert result.promotion is two_euro  # 2.00 beats 0.50
    assert result.after.excl_vat == D("8.00")


def test_invalid_promotions_are_refused() -> None:
    with pytest.raises(TariffError, match="cannot exceed 100"):
        Promotion("x", DiscountKind.PERCENT, D(120))
    with pytest.raises(TariffError, match="needs a currency"):
        Promotion("x", DiscountKind.FIXED, D(1))
