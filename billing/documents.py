"""Writing a rated session's immutable documents and its ledger entries (one transaction's part).

Used by the rater (revision 1) and by corrections (credit note + new receipt). Every insert is
keyed: a document by ``(session_id, revision, kind)``, a ledger entry by its ``entry_key``, so a
replayed step cannot book anything twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.receipts import LineItem


@dataclass(frozen=True, slots=True)
class Document:
    """A receipt or credit note ready to be stored."""

    document_id: str
    session_id: str
    revision: int
    kind: str
    currency: str
    items: tuple[LineItem, ...]
    body: dict[str, Any]
    reason: str | None = None

    @property
    def total_excl_vat(self) -> Decimal:
        return sum((i.amount_excl_vat for i in self.items), Decimal(0))

    @property
    def total_incl_vat(self) -> Decimal:
        return sum((i.amount_incl_vat for i in self.items), Decimal(0))


def document_id(kind: str, session_id: str, revision: int) -> str:
    """``RC-<session>-<revision>`` for a receipt, ``CN-...`` for a credit note."""
    return f"{'RC' if kind == 'receipt' else 'CN'}-{session_id}-{revision}"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    entry_key: str
    driver_id: str | None
    session_id: str
    revision: int
    account: str
    kind: str
    currency: str
    amount: Decimal


async def insert_documents(connection: Any, documents: Sequence[Document]) -> None:
    """Store documents and their lines (``executemany``: one round trip per table)."""
    if not documents:
        return
    await connection.executemany(
        """INSERT INTO billing_documents (document_id, session_id, revision, kind, currency,
               total_excl_vat, total_incl_vat, reason, body)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        [
            (
                d.document_id,
                uuid.UUID(d.session_id),
                d.revision,
                d.kind,
                d.currency,
                d.total_excl_vat,
                d.total_incl_vat,
                d.reason,
                d.body,
            )
            for d in documents
        ],
    )
    await connection.executemany(
        """INSERT INTO billing_line_items (document_id, position, kind, description, quantity, unit,
               unit_price, vat_percent, amount_excl_vat, amount_incl_vat)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        [
            (
                d.document_id,
                position,
                i.kind,
                i.description,
                i.quantity,
                i.unit,
                i.unit_price,
                i.vat_percent,
                i.amount_excl_vat,
                i.amount_incl_vat,
            )
            for d in documents
            for position, i in enumerate(d.items, start=1)
        ],
    )


async def book(connection: Any, entries: Sequence[LedgerEntry], at: datetime | None = None) -> None:
    """Book ledger entries; an entry whose key is already booked is skipped (replay-safe)."""
    if not entries:
        return
    await connection.executemany(
        """INSERT INTO billing_ledger (entry_key, driver_id, session_id, revision, account, kind,
               currency, amount, booked_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()))
           ON CONFLICT (entry_key) DO NOTHING""",
        [
            (
                e.entry_key,
                e.driver_id,
                uuid.UUID(e.session_id),
                e.revision,
                e.account,
                e.kind,
                e.currency,
                e.amount,
                at,
            )
            for e in entries
        ],
    )


async def stored_items(connection: Any, document_id_: str) -> tuple[LineItem, ...]:
    """The line items of a stored document, in order."""
    rows = await connection.fetch(
        "SELECT * FROM billing_line_items WHERE document_id = $1 ORDER BY position", document_id_
    )
    return tuple(
        LineItem(
            r["kind"],
            r["description"],
            r["quantity"],
            r["unit"],
            r["unit_price"],
            r["vat_percent"],
            r["amount_excl_vat"],
            r["amount_incl_vat"],
        )
        for r in rows
    )
