"""Which promotions exist and who holds which code; applying the best one when a session is rated.

Pricing the discount is ``tariffs.promotions`` (pure): one promotion at most, the one that saves
the driver most, taken off the final session price. This module stores promotions
(``billing_promotions``: per CPO or for all, a tier, a code, percent or fixed, valid dates) and
the codes drivers entered in their account (``billing_redeemed_codes``); the driver's
membership tier is ``drivers.tier``. A code counts for sessions started at or after the driver
entered it.

Where a session's code comes from (decision): the driver enters it in their account
(:meth:`PromotionStore.redeem`, ``POST /v1/billing/promotion-codes``), not in the start request, so
the sessions API and its contract stay as they are and a code entered once holds for every session
in its validity, as a membership would.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from billing.errors import BillingError
from tariffs.errors import TariffError
from tariffs.promotions import Customer, DiscountKind, Promotion


class PromotionError(BillingError):
    """A promotion that cannot be stored or a code that cannot be redeemed."""


def normalised_code(code: str) -> str:
    return code.strip().upper()


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The promotions and customers of a batch of sessions being rated."""

    promotions_by_cpo: dict[str | None, tuple[Promotion, ...]] = field(default_factory=dict)
    codes_by_driver: dict[str, tuple[tuple[str, datetime], ...]] = field(default_factory=dict)

    def promotions_for(self, cpo_id: str | None) -> tuple[Promotion, ...]:
        """Promotions on a charger of ``cpo_id``: the CPO's own and those for every operator."""
        own = self.promotions_by_cpo.get(cpo_id, ()) if cpo_id is not None else ()
        return own + self.promotions_by_cpo.get(None, ())

    def customer(self, driver_id: str | None, tier: str | None, started_at: datetime) -> Customer:
        codes = self.codes_by_driver.get(driver_id, ()) if driver_id is not None else ()
        return Customer(tier=tier, codes=frozenset(code for code, at in codes if at <= started_at))


NO_PROMOTIONS = Eligibility()


def promotion_of(row: Any) -> Promotion:
    """A ``billing_promotions`` row as a :class:`Promotion`."""
    return Promotion(
        promotion_id=row["promotion_id"],
        kind=DiscountKind(row["kind"]),
        amount=Decimal(row["amount"]),
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        tier=row["tier"],
        code=row["code"],
        currency=row["currency"],
    )


async def eligibility(connection: Any, rows: Sequence[Any]) -> Eligibility:
    """Promotions of the sessions' CPOs and the codes their drivers entered (two queries)."""
    cpos = sorted({row["cpo_id"] for row in rows if row["cpo_id"] is not None})
    drivers = sorted({row["driver_id"] for row in rows if row["driver_id"] is not None})
    promotions: dict[str | None, list[Promotion]] = {}
    for row in await connection.fetch(
        """SELECT * FROM billing_promotions WHERE cpo_id IS NULL OR cpo_id = ANY($1::text[])
           ORDER BY promotion_id""",
        cpos,
    ):
        promotions.setdefault(row["cpo_id"], []).append(promotion_of(row))
    codes: dict[str, list[tuple[str, datetime]]] = {}
    if drivers:
        for row in await connection.fetch(
            """SELECT driver_id, code, redeemed_at FROM billing_redeemed_codes
               WHERE driver_id = ANY($1::text[])""",
            drivers,
        ):
            codes.setdefault(row["driver_id"], []).append((row["code"], row["redeemed_at"]))
    return Eligibility(
        {cpo: tuple(found) for cpo, found in promotions.items()},
        {driver: tuple(found) for driver, found in codes.items()},
    )


class PromotionStore:
    """Operators add promotions; drivers enter codes."""

    def __init__(self, database: Any) -> None:
        self._database = database

    async def add(self, promotion: Promotion, *, cpo_id: str | None) -> None:
        """Store ``promotion`` (its id and, per operator, its code must be new)."""
        stored = await self._database.pool.fetchval(
            """INSERT INTO billing_promotions (promotion_id, cpo_id, kind, amount, currency, tier, code,
                   valid_from, valid_until)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT DO NOTHING RETURNING promotion_id""",
            promotion.promotion_id,
            cpo_id,
            promotion.kind.value,
            promotion.amount,
            promotion.currency,
            promotion.tier,
            None if promotion.code is None else normalised_code(promotion.code),
            promotion.valid_from,
            promotion.valid_until,
        )
        if stored is None:
            raise PromotionError(f"promotion {promotion.promotion_id!r} or its code already exists")

    async def list(self, cpo_id: str | None) -> list[tuple[str | None, Promotion]]:
        rows = await self._database.pool.fetch(
            """SELECT * FROM billing_promotions WHERE cpo_id IS NOT DISTINCT FROM $1 OR cpo_id IS NULL
               ORDER BY promotion_id""",
            cpo_id,
        )
        return [(row["cpo_id"], promotion_of(row)) for row in rows]

    async def redeem(self, driver_id: str, code: str, *, now: datetime | None = None) -> Promotion:
        """Enter ``code`` in the driver's account; the promotion it names (its first entry counts)."""
        wanted = normalised_code(code)
        if not wanted:
            raise PromotionError("the code is empty")
        at = now or datetime.now(UTC)
        async with self._database.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                """SELECT p.* FROM billing_promotions p JOIN drivers d ON d.driver_id = $1
                   WHERE upper(p.code) = $2 AND (p.cpo_id IS NULL OR p.cpo_id = d.cpo_id)
                     AND (p.valid_until IS NULL OR p.valid_until > $3::date)
                   ORDER BY p.cpo_id NULLS LAST LIMIT 1""",
                driver_id,
                wanted,
                at.date(),
            )
            if row is None:
                raise PromotionError(f"no valid promotion has the code {code.strip()[:40]!r}")
            await connection.execute(
                """INSERT INTO billing_redeemed_codes (driver_id, code, redeemed_at) VALUES ($1, $2, $3)
                   ON CONFLICT (driver_id, code) DO NOTHING""",
                driver_id,
                wanted,
                at,
            )
            return promotion_of(row)


def parse_promotion(body: dict[str, Any]) -> Promotion:
    """A promotion from its JSON (the operator API); ``PromotionError`` with a plain reason."""
    known = {"promotion_id", "kind", "amount", "currency", "tier", "code", "valid_from", "valid_until"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise PromotionError(f"unknown field(s): {', '.join(unknown)}")
    promotion_id = body.get("promotion_id") or f"promo-{uuid.uuid4().hex[:12]}"
    try:
        kind = DiscountKind(str(body.get("kind", "")).upper())
    except ValueError:
        raise PromotionError("kind must be PERCENT or FIXED") from None
    try:
        amount = Decimal(str(body.get("amount")))
    except ArithmeticError:
        raise PromotionError("amount must be a decimal number") from None
    if not amount.is_finite():
        raise PromotionError("amount must be a decimal number")

    def text(name: str) -> str | None:
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 64):
            raise PromotionError(f"{name} must be a non-empty string of at most 64 characters")
        return value

    def day(name: str) -> date | None:
        value = body.get(name)
        if value is None:
            return None
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise PromotionError(f"{name} must be a date (YYYY-MM-DD), got {str(value)[:40]!r}") from None

    currency = text("currency")
    try:
        return Promotion(
            promotion_id=str(promotion_id),
            kind=kind,
            amount=amount,
            valid_from=day("valid_from"),
            valid_until=day("valid_until"),
            tier=text("tier"),
            code=text("code"),
            currency=None if currency is None else currency.upper(),
        )
    except TariffError as exc:
        raise PromotionError(str(exc)) from None
