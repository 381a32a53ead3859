"""The payment hold placed before a remote start (:class:`sessions.ports.PaymentHolds`).

A manual-capture PaymentIntent of ``hold_amount`` under the key ``hold:<session_id>``; billing
captures the final amount from it when the session is rated and releases the rest. When the
provider's answer is lost (timeout / 5xx) the request is sent once more under the same key to
learn the outcome; if it stays unknown the start is refused ("try again"): a hold that was in
fact placed is never captured and the provider lets it lapse. Only the provider's token of the
payment method is read, never card data.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

from billing.errors import IdempotencyConflictError, OutcomeUnknownError, PaymentDeclinedError
from billing.gateway import PaymentGateway, PaymentIntent, from_minor, to_minor

logger = logging.getLogger(__name__)


class GatewayHolds:
    """Places holds through a :class:`PaymentGateway` and records them in ``billing_holds``."""

    def __init__(self, database: Any, gateway: PaymentGateway, *, amount: Decimal, currency: str) -> None:
        self._database = database
        self._gateway = gateway
        self._amount = amount
        self._currency = currency.upper()

    async def authorize(self, session_id: str, driver_id: str, payment_method_id: str) -> str | None:
        """``None`` when the hold is placed, else why not (shown to the driver)."""
        token = await self._database.pool.fetchval(
            "SELECT provider_token FROM payment_methods WHERE payment_method_id = $1 AND driver_id = $2",
            payment_method_id,
            driver_id,
        )
        if token is None:
            return "unknown payment method"
        intent: PaymentIntent | None = None
        detail: str | None = None
        for _ in range(2):
            try:
                intent = await self._gateway.authorize(
                    idempotency_key=f"hold:{session_id}",
                    payment_token=token,
                    amount_minor=to_minor(self._amount, self._currency),
                    currency=self._currency,
                    metadata={"session_id": session_id, "driver_id": driver_id},
                )
                break
            except OutcomeUnknownError as exc:
                detail = f"payment provider unavailable: {exc}"
            except PaymentDeclinedError as exc:
                detail = f"payment declined: {exc.code}"
                break
            except IdempotencyConflictError as exc:
                logger.error("session %s: hold key reused with other parameters: %s", session_id, exc)
                detail = "payment hold could not be placed"
                break
        status = (
            "authorized"
            if intent is not None
            else ("declined" if detail and "declined" in detail else "failed")
        )
        await self._database.pool.execute(
            """INSERT INTO billing_holds (session_id, driver_id, payment_method_id, intent_id, amount,
                   currency, status, detail)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (session_id) DO UPDATE SET intent_id = excluded.intent_id,
                   amount = excluded.amount, status = excluded.status, detail = excluded.detail,
                   updated_at = now()""",
            uuid.UUID(session_id),
            driver_id,
            payment_method_id,
            None if intent is None else intent.intent_id,
            self._amount if intent is None else from_minor(intent.amount_minor, self._currency),
            self._currency,
            status,
            detail,
        )
        if intent is None:
            logger.info("session %s: no payment hold: %s", session_id, detail)
            return detail or "payment hold could not be placed"
        return None

    async def release_abandoned(self, limit: int = 50) -> int:
        """Release the holds of sessions that FAILED (the charger never started): the driver's funds
        are not blocked until the hold lapses. Idempotent (``release:<session_id>``); the number released."""
        rows = await self._database.pool.fetch(
            """SELECT h.session_id::text AS session_id, h.intent_id FROM billing_holds h
               JOIN charging_sessions cs ON cs.session_id = h.session_id
               WHERE h.status = 'authorized' AND cs.state = 'FAILED' LIMIT $1""",
            limit,
        )
        released = 0
        for row in rows:
            try:
                await self._gateway.release(
                    idempotency_key=f"release:{row['session_id']}", intent_id=row["intent_id"]
                )
            except OutcomeUnknownError as exc:
                logger.warning("session %s: hold not released yet: %s", row["session_id"], exc)
                continue
            except PaymentDeclinedError as exc:  # already cancelled or lapsed at the provider
                logger.info("session %s: hold already gone: %s", row["session_id"], exc)
            await self._database.pool.execute(
                "UPDATE billing_holds SET status = 'released', updated_at = now() WHERE session_id = $1",
                uuid.UUID(row["session_id"]),
            )
            released += 1
        return released
