"""Membership tiers and promotions: our extension on top of OCPI (OCPI has no discounts).

A promotion takes a percentage or a fixed amount off a priced session's total. It is valid
between two local dates (from inclusive, until exclusive, judged on the session's start), and may
be limited to a membership tier, to holders of a promotion code, or both (all conditions must
hold; neither: for everyone). Rules, chosen to be predictable for drivers and operators:

* Discounts apply to the final session price, after the tariff's min/max price: the published
  tariff is what everyone pays, a promotion is a reduction of that.
* At most one promotion applies: the one that saves the driver most (ties: the first given).
  Promotions do not stack.
* A fixed discount is an amount excl. VAT in the tariff's currency; incl. VAT shrinks in the same
  proportion (the session's own VAT mix). Nothing goes below zero.
* Amounts stay exact; round at the edge with ``tariffs.money``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal

from tariffs.cdr import CdrTotals, CostPart
from tariffs.errors import TariffError

_HUNDRED = Decimal(100)


class DiscountKind(enum.Enum):
    PERCENT = "PERCENT"
    FIXED = "FIXED"


@dataclass(frozen=True)
class Promotion:
    """A discount: ``amount`` is a percentage (PERCENT, 0-100) or money excl. VAT (FIXED)."""

    promotion_id: str
    kind: DiscountKind
    amount: Decimal
    valid_from: date | None = None
    valid_until: date | None = None
    tier: str | None = None
    code: str | None = None
    currency: str | None = None

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise TariffError(f"promotion {self.promotion_id}: amount cannot be negative")
        if self.kind is DiscountKind.PERCENT and self.amount > _HUNDRED:
            raise TariffError(f"promotion {self.promotion_id}: a percentage cannot exceed 100")
        if self.kind is DiscountKind.FIXED and self.currency is None:
            raise TariffError(f"promotion {self.promotion_id}: a fixed discount needs a currency")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise TariffError(f"promotion {self.promotion_id}: valid_until must be after valid_from")


@dataclass(frozen=True)
class Customer:
    """What makes a driver eligible: a membership tier and the promotion codes they entered."""

    tier: str | None = None
    codes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DiscountedTotal:
    """A session total before and after the best promotion (``promotion`` None: none applied)."""

    before: CostPart
    discount: CostPart
    after: CostPart
    promotion: Promotion | None


def _normalised(code: str) -> str:
    return code.strip().upper()


def is_eligible(
    promotion: Promotion, customer: Customer, session_start_utc: datetime, time_zone: tzinfo
) -> bool:
    """Whether ``promotion`` applies to ``customer`` for a session starting at ``session_start_utc``."""
    local_date = session_start_utc.astimezone(time_zone).date()
    if promotion.valid_from is not None and local_date < promotion.valid_from:
        return False
    if promotion.valid_until is not None and local_date >= promotion.valid_until:
        return False
    if promotion.tier is not None and promotion.tier != customer.tier:
        return False
    return promotion.code is None or _normalised(promotion.code) in {_normalised(c) for c in customer.codes}


def discount_of(promotion: Promotion, total: CostPart, currency: str) -> CostPart:
    """What ``promotion`` takes off ``total`` (never more than the total)."""
    if promotion.kind is DiscountKind.PERCENT:
        share = promotion.amount / _HUNDRED
        return CostPart(total.excl_vat * share, total.incl_vat * share)
    if promotion.currency is not None and promotion.currency.upper() != currency.upper():
        return CostPart()
    excl = min(promotion.amount, total.excl_vat)
    if total.excl_vat == 0:
        return CostPart(Decimal(0), min(promotion.amount, total.incl_vat))
    return CostPart(excl, total.incl_vat * excl / total.excl_vat)


def apply_best_promotion(
    totals: CdrTotals, promotions: Iterable[Promotion], customer: Customer, time_zone: tzinfo
) -> DiscountedTotal:
    """The session total with the single most favourable eligible promotion taken off."""
    before = totals.total_cost
    best: Promotion | None = None
    best_discount = CostPart()
    for promotion in promotions:
        if not is_eligible(promotion, customer, totals.start_utc, time_zone):
            continue
        discount = discount_of(promotion, before, totals.currency)
        saves_more = (discount.excl_vat, discount.incl_vat) > (best_discount.excl_vat, best_discount.incl_vat)
        if best is None or saves_more:
            best, best_discount = promotion, discount
    after = CostPart(before.excl_vat - best_discount.excl_vat, before.incl_vat - best_discount.incl_vat)
    return DiscountedTotal(before=before, discount=best_discount, after=after, promotion=best)
