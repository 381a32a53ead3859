"""Read side of billing: receipts as served, operator views (debts), and the reconciliation check.

Reconciliation, per currency: the net amount rated (receipts minus credit notes) must equal what
was collected (payments minus refunds, as booked) plus what is outstanding (the payment rows not
captured, debts included); and the ledger's balance per session must equal that session's
outstanding amount. Both are computed from different tables, so a lost or doubled booking shows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing.receipts import render_html


def _uuid(session_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(session_id)
    except ValueError:
        return None


class ReceiptStore:
    """:class:`sessions.ports.ReceiptProvider`: the session's current receipt (latest revision)."""

    def __init__(self, database: Any) -> None:
        self._database = database

    async def receipt_json(self, session_id: str) -> dict[str, Any] | None:
        key = _uuid(session_id)
        if key is None:
            return None
        row = await self._database.pool.fetchrow(
            """SELECT d.body,
                      (SELECT json_agg(json_build_object('revision', p.revision, 'state', p.state,
                                                         'amount', p.amount::text))
                       FROM billing_payments p WHERE p.session_id = d.session_id)::jsonb AS payments
               FROM billing_documents d
               WHERE d.session_id = $1 AND d.kind = 'receipt' ORDER BY d.revision DESC LIMIT 1""",
            key,
        )
        if row is None:
            return None
        body: dict[str, Any] = dict(row["body"])
        body["payment"] = row["payments"] or []
        return body

    async def receipt_html(self, session_id: str) -> str | None:
        body = await self.receipt_json(session_id)
        return None if body is None else render_html(body)

    async def documents(self, session_id: str) -> list[dict[str, Any]]:
        """Every receipt and credit note of a session, oldest first."""
        key = _uuid(session_id)
        if key is None:
            return []
        rows = await self._database.pool.fetch(
            "SELECT body FROM billing_documents WHERE session_id = $1 ORDER BY revision, kind DESC", key
        )
        return [dict(row["body"]) for row in rows]


async def debts(database: Any, cpo_id: str | None, *, limit: int = 100) -> list[dict[str, Any]]:
    """Payments given up after their retries (state ``debt``), newest first; ``cpo_id`` scopes them
    to that operator's chargers (``None``: every operator)."""
    rows = await database.pool.fetch(
        """SELECT p.session_id::text AS session_id, p.revision, p.driver_id, p.amount, p.currency, p.declines,
                  p.last_error, p.updated_at, r.charger_id
           FROM billing_payments p
           JOIN billing_ratings r ON r.session_id = p.session_id
           LEFT JOIN chargers c ON c.charger_id = r.charger_id
           WHERE p.state = 'debt' AND ($1::text IS NULL OR c.cpo_id = $1)
           ORDER BY p.updated_at DESC LIMIT $2""",
        cpo_id,
        limit,
    )
    return [
        {
            "session_id": row["session_id"],
            "revision": row["revision"],
            "driver_id": row["driver_id"],
            "charger_id": row["charger_id"],
            "amount": str(row["amount"]),
            "currency": row["currency"],
            "declines": row["declines"],
            "last_error": row["last_error"],
            "since": row["updated_at"].isoformat(),
        }
        for row in rows
    ]


@dataclass
class Reconciliation:
    """Totals per currency and the sessions whose ledger does not match their payments."""

    rated: dict[str, Decimal] = field(default_factory=dict)
    captured: dict[str, Decimal] = field(default_factory=dict)
    outstanding: dict[str, Decimal] = field(default_factory=dict)
    debt: dict[str, Decimal] = field(default_factory=dict)
    mismatched_sessions: list[str] = field(default_factory=list)
    sessions: int = 0

    @property
    def balanced(self) -> bool:
        currencies = set(self.rated) | set(self.captured) | set(self.outstanding)
        return not self.mismatched_sessions and all(
            self.rated.get(c, Decimal(0))
            == self.captured.get(c, Decimal(0)) + self.outstanding.get(c, Decimal(0))
            for c in currencies
        )


async def reconcile(database: Any) -> Reconciliation:
    """Check rated = captured + outstanding per currency, and ledger balance = outstanding per session."""
    result = Reconciliation()
    async with database.pool.acquire() as connection:
        for row in await connection.fetch(
            """SELECT currency, sum(total_incl_vat) AS net  -- credit notes are negative
               FROM billing_documents GROUP BY currency"""
        ):
            result.rated[row["currency"]] = row["net"]
        for row in await connection.fetch(
            """SELECT currency, -sum(amount) AS collected FROM billing_ledger
               WHERE kind IN ('payment', 'refund') GROUP BY currency"""
        ):
            result.captured[row["currency"]] = row["collected"]
        for row in await connection.fetch(
            """SELECT currency, sum(amount) FILTER (WHERE state <> 'captured') AS outstanding,
                      sum(amount) FILTER (WHERE state = 'debt') AS debt
               FROM billing_payments GROUP BY currency"""
        ):
            result.outstanding[row["currency"]] = row["outstanding"] or Decimal(0)
            result.debt[row["currency"]] = row["debt"] or Decimal(0)
        mismatched = await connection.fetch(
            """WITH owed AS (
                   SELECT session_id, sum(amount) FILTER (WHERE state <> 'captured') AS outstanding,
                          sum(coalesce(captured_amount, 0)) AS captured
                   FROM billing_payments GROUP BY session_id),
               booked AS (
                   SELECT session_id, sum(amount) AS balance,
                          -sum(amount) FILTER (WHERE kind IN ('payment', 'refund')) AS collected
                   FROM billing_ledger GROUP BY session_id)
               SELECT coalesce(o.session_id, b.session_id)::text AS session_id
               FROM owed o FULL JOIN booked b ON b.session_id = o.session_id
               WHERE coalesce(o.outstanding, 0) <> coalesce(b.balance, 0)
                  OR coalesce(o.captured, 0) <> coalesce(b.collected, 0)"""
        )
        result.mismatched_sessions = [row["session_id"] for row in mismatched]
        result.sessions = await connection.fetchval("SELECT count(*) FROM billing_ratings")
    return result
