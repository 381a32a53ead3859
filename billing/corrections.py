"""Corrections: a credit note cancelling the current receipt plus a new receipt, never an edit.

:func:`correct_session` re-rates a session with corrected inputs (a meter reading the charger
got wrong, a wrong end time, another tariff version), and in one transaction stores, under the
next revision: a credit note with the current receipt's lines negated, the new receipt, the
ledger's ``credit`` (minus the old total) and ``charge`` (plus the new total), and a payment row
for the difference: positive is charged, negative is refunded against the captured payment (or
lowers the debt when nothing was collected), zero settles at once. The worker settles it like
any other payment, after the earlier revisions are final.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.documents import Document, LedgerEntry, book, document_id, insert_documents, stored_items
from billing.electrical import NO_SAMPLES
from billing.errors import BillingError
from billing.idle import charging_ended_at
from billing.promotions import eligibility
from billing.rater import (
    SESSION_BY_ID,
    completed_session,
    discount_for,
    electrical_readings,
    receipt_of,
    register_readings,
)
from billing.rating import rate
from billing.receipts import Station, document_body
from sessions.tariff_store import TariffStore
from tariffs.model import Tariff


async def correct_session(
    database: Any,
    tariffs: TariffStore,
    session_id: str,
    *,
    reason: str,
    meter_stop_wh: float | None = None,
    meter_start_wh: float | None = None,
    ended_at: datetime | None = None,
    tariff: Tariff | None = None,
    now: datetime | None = None,
) -> Document:
    """Issue a credit note and a corrected receipt for a rated session; returns the new receipt."""
    if not reason.strip():
        raise BillingError("a correction needs a reason")
    issued_at = now or datetime.now(UTC)
    key = uuid.UUID(session_id)
    async with database.pool.acquire() as connection, connection.transaction():
        rating = await connection.fetchrow(
            "SELECT tariff_id, driver_id FROM billing_ratings WHERE session_id = $1 FOR UPDATE", key
        )
        if rating is None:
            raise BillingError(f"session {session_id} has not been rated; nothing to correct")
        current = await connection.fetchrow(
            """SELECT document_id, revision, currency, total_incl_vat, body FROM billing_documents
               WHERE session_id = $1 AND kind = 'receipt' ORDER BY revision DESC LIMIT 1""",
            key,
        )
        row = await connection.fetchrow(SESSION_BY_ID, key)
        session = completed_session(row)
        session = replace(
            session,
            tariff_id=rating["tariff_id"],
            meter_stop_wh=session.meter_stop_wh if meter_stop_wh is None else meter_stop_wh,
            meter_start_wh=session.meter_start_wh if meter_start_wh is None else meter_start_wh,
            ended_at=session.ended_at if ended_at is None else ended_at.astimezone(UTC),
        )
        if tariff is None:
            versions = await tariffs.versions(rating["tariff_id"], fresh=True)
            if versions is None:
                raise BillingError(f"tariff {rating['tariff_id']} of session {session_id} no longer exists")
            tariff = versions.in_force_at(session.started_at)
        # The receipt and the rating name the tariff this revision was priced with.
        session = replace(session, tariff_id=tariff.tariff_id)
        samples = (await register_readings(connection, [row])).get(session_id, [])
        charging_end = charging_ended_at(
            samples,
            started_at=session.started_at,
            ended_at=session.ended_at,
            meter_stop_wh=session.meter_stop_wh,
        )
        electrical = (await electrical_readings(connection, [row])).get(session_id, NO_SAMPLES)
        totals = rate(session, tariff, charging_end=charging_end, samples=samples, electrical=electrical)
        revision = current["revision"] + 1
        station = Station(
            row["charger_id"], row["evse_id"], row["station_id"], row["station_name"], row["station_address"]
        )
        receipt = receipt_of(
            session,
            totals,
            station,
            revision=revision,
            issued_at=issued_at,
            reason=reason,
            replaces=current["document_id"],
            discounted=discount_for(row, session, totals, await eligibility(connection, [row])),
        )
        credit_items = tuple(
            item.negated() for item in await stored_items(connection, current["document_id"])
        )
        old = current["body"]
        credit_id = document_id("credit_note", session_id, revision)
        credit_body = document_body(
            document_id=credit_id,
            kind="credit_note",
            session_id=session_id,
            revision=revision,
            currency=current["currency"],
            items=credit_items,
            station=station,
            started_at=session.started_at,
            ended_at=datetime.fromisoformat(old["ended_at"]).astimezone(UTC),
            zone=session.zone(),
            time_zone=session.time_zone,
            energy_wh=-Decimal(str(old["energy_kwh"])) * 1000,
            idle_s=-Decimal(str(old["idle_s"])),
            issued_at=issued_at,
            tariff_id=old.get("tariff_id"),
            reason=reason,
            replaces=current["document_id"],
        )
        credit = Document(
            credit_id,
            session_id,
            revision,
            "credit_note",
            current["currency"],
            credit_items,
            credit_body,
            reason,
        )
        await insert_documents(connection, [credit, receipt])
        await connection.execute(
            "UPDATE billing_ratings SET tariff_id = $2 WHERE session_id = $1", key, tariff.tariff_id
        )
        driver_id = rating["driver_id"]
        await book(
            connection,
            [
                LedgerEntry(
                    f"credit:{session_id}:{revision}",
                    driver_id,
                    session_id,
                    revision,
                    "receivable",
                    "credit",
                    credit.currency,
                    credit.total_incl_vat,
                ),
                LedgerEntry(
                    f"charge:{session_id}:{revision}",
                    driver_id,
                    session_id,
                    revision,
                    "receivable",
                    "charge",
                    receipt.currency,
                    receipt.total_incl_vat,
                ),
            ],
        )
        delta = receipt.total_incl_vat + credit.total_incl_vat
        if receipt.currency != credit.currency:
            raise BillingError("a correction cannot change the session's currency")
        await connection.execute(
            """INSERT INTO billing_payments (session_id, revision, driver_id, payment_method_id, currency,
                   amount, state, captured_amount)
               SELECT $1, $2, driver_id, payment_method_id, currency, $3, $4, $5
               FROM billing_payments WHERE session_id = $1 AND revision = 1""",
            key,
            revision,
            delta,
            "rated" if delta else "captured",
            None if delta else 0,
        )
        return receipt
