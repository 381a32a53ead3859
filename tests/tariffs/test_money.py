"""Rounding per currency: half-up to the ISO 4217 minor unit, only at the edge."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tariffs.money import minor_units, round_money, round_quantity


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        ("5.125", "EUR", "5.13"),  # half-up, not banker's rounding (OCPI example: 5.125 -> 5.13)
        ("4.997", "eur", "5.00"),
        ("1234.5", "JPY", "1235"),
        ("1.2345", "KWD", "1.235"),
        ("0.004999", "EUR", "0.00"),
    ],
)
def test_money_is_rounded_half_up_to_the_minor_unit(amount: str, currency: str, rounded: str) -> None:
    result = round_money(Decimal(amount), currency)
    assert result == Decimal(rounded)
    assert result.as_tuple().exponent == -minor_units(currency)


def test_quantities_keep_four_decimals() -> None:
    assert round_quantity(Decimal("1.09194444")) == Decimal("1.0919")
    assert round_quantity(Decimal("0.00005")) == Decimal("0.0001")
