"""Money rounding per currency: the one explicit rule for turning exact amounts into payable ones.

Inside the engine every amount is an exact ``Decimal`` (no intermediate rounding). Amounts are
rounded only when they leave the core (a CDR, a receipt), to the currency's minor unit
(ISO 4217 exponent), half away from zero (``ROUND_HALF_UP``), which is what European VAT
law and OCPI's worked examples use (5.125 -> 5.13).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 minor units that differ from the common 2 decimals (the currencies operators meet).
_MINOR_UNITS: dict[str, int] = {
    "BHD": 3,
    "CLP": 0,
    "IQD": 3,
    "ISK": 0,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "PYG": 0,
    "TND": 3,
    "UGX": 0,
    "VND": 0,
    "XAF": 0,
    "XOF": 0,
}
_DEFAULT_MINOR_UNITS = 2


def minor_units(currency: str) -> int:
    """Number of decimals of ``currency`` (ISO 4217 code, e.g. ``EUR`` -> 2, ``JPY`` -> 0)."""
    return _MINOR_UNITS.get(currency.upper(), _DEFAULT_MINOR_UNITS)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half-up to the minor unit of ``currency`` (``Decimal('5.125')`` -> ``5.13``)."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def round_quantity(amount: Decimal, decimals: int = 4) -> Decimal:
    """A CDR quantity (kWh, hours) rounded half-up to ``decimals`` places (OCPI numbers carry 4)."""
    return amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
