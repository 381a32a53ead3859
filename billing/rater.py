"""Rating completed sessions exactly once: claim, price, and store rating + receipt + debit together.

A batch of sessions is claimed from ``billing_rating_queue`` (a trigger fills it in the transaction
that completes a session, see ``migrations/0002``) with ``FOR UPDATE SKIP LOCKED`` (several nodes'
workers take disjoint batches); each is priced with the tariff
version in force when it started, and for each the rating, its receipt (revision 1) with line
items, the ``charge`` ledger entry and the payment row (state ``rated``) are written in the same
transaction, which also takes the session off the queue. The session id is the key of all of them,
so a session is rated once however often its completion is reported. A session that cannot be rated
(no tariff, bad readings) stays queued with its error and is tried again after ``retry_s``; it is
never skipped for good.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.documents import Document, LedgerEntry, book, document_id, insert_documents
from billing.electrical import CURRENT_MEASURAND, NO_SAMPLES, POWER_MEASURAND, Electrical, electrical_of
from billing.errors import RatingError
from billing.idle import charging_ended_at, register_wh
from billing.promotions import Eligibility, eligibility
from billing.rating import CompletedSession, idle_seconds, rate
from billing.receipts import Station, document_body, line_items
from sessions.tariff_store import TariffStore
from tariffs.cdr import CdrTotals
from tariffs.errors import TariffError
from tariffs.model import Tariff, TariffVersions
from tariffs.ocpi import cdr_totals_to_ocpi
from tariffs.promotions import DiscountedTotal, apply_best_promotion

logger = logging.getLogger(__name__)

ENERGY_REGISTER = "Energy.Active.Import.Register"

_SELECT = """
SELECT cs.session_id::text AS session_id, cs.driver_id, cs.charger_id, cs.evse_id, cs.started_at,
       cs.ended_at, cs.meter_start_wh, cs.meter_stop_wh,
       -- The station's zone: a session reported only when it ended, before its charger had a
       -- tariff, was stored with 'UTC'; prices by time of day and the receipt are local.
       coalesce(s.time_zone, cs.time_zone) AS time_zone, cs.tariff_id,
       cs.transaction_id,
       coalesce(cs.payment_method_id,
                (SELECT pm.payment_method_id FROM payment_methods pm
                 WHERE pm.driver_id = cs.driver_id AND pm.is_default LIMIT 1)) AS payment_method_id,
       c.station_id, c.cpo_id, s.name AS station_name, s.address AS station_address,
       d.tier AS driver_tier
FROM charging_sessions cs
LEFT JOIN chargers c ON c.charger_id = cs.charger_id
LEFT JOIN drivers d ON d.driver_id = cs.driver_id
LEFT JOIN stations s ON s.station_id = c.station_id
"""
_CLAIM = (
    _SELECT
    + """JOIN billing_rating_queue q ON q.session_id = cs.session_id
WHERE q.next_attempt_at <= now()
ORDER BY q.next_attempt_at
LIMIT $1
FOR UPDATE OF q SKIP LOCKED
"""
)
SESSION_BY_ID = _SELECT + "WHERE cs.session_id = $1"
"""A completed session's row as the rater reads it (corrections re-read it)."""


@dataclass(frozen=True, slots=True)
class Rated:
    """One rated session, ready to be stored."""

    session: CompletedSession
    tariff: Tariff
    totals: CdrTotals
    receipt: Document
    payment_method_id: str | None
    discounted: DiscountedTotal | None = None


def completed_session(row: Any) -> CompletedSession:
    """A claimed row as a :class:`CompletedSession` (readings must be there)."""
    if row["started_at"] is None or row["ended_at"] is None:
        raise RatingError(f"session {row['session_id']} has no start or end time")
    if row["meter_start_wh"] is None or row["meter_stop_wh"] is None:
        raise RatingError(f"session {row['session_id']} has no start or final meter reading")
    if not (math.isfinite(row["meter_start_wh"]) and math.isfinite(row["meter_stop_wh"])):
        # A NaN or infinite reading (a float column accepts them) is this session's problem: left
        # unchecked it raised out of the batch and stopped billing for every session.
        raise RatingError(
            f"session {row['session_id']} has an impossible meter reading: "
            f"{row['meter_start_wh']} -> {row['meter_stop_wh']} Wh"
        )
    return CompletedSession(
        session_id=row["session_id"],
        driver_id=row["driver_id"],
        charger_id=row["charger_id"],
        started_at=row["started_at"].astimezone(UTC),
        ended_at=row["ended_at"].astimezone(UTC),
        meter_start_wh=float(row["meter_start_wh"]),
        meter_stop_wh=float(row["meter_stop_wh"]),
        time_zone=row["time_zone"] or "UTC",
        payment_method_id=row["payment_method_id"],
        tariff_id=row["tariff_id"],
    )


def receipt_of(
    session: CompletedSession,
    totals: CdrTotals,
    station: Station,
    *,
    revision: int,
    issued_at: datetime,
    reason: str | None = None,
    replaces: str | None = None,
    discounted: DiscountedTotal | None = None,
) -> Document:
    """The receipt document of rated ``totals`` (less the promotion in ``discounted``, if any)."""
    items = tuple(line_items(totals, discounted))
    promotion = None if discounted is None else discounted.promotion
    applied = None
    if promotion is not None and any(item.kind == "discount" for item in items):
        applied = {
            "promotion_id": promotion.promotion_id,
            "kind": promotion.kind.value,
            "amount": str(promotion.amount),
            "tier": promotion.tier,
            "code": promotion.code,
        }
    doc_id = document_id("receipt", session.session_id, revision)
    body = document_body(
        document_id=doc_id,
        kind="receipt",
        session_id=session.session_id,
        revision=revision,
        currency=totals.currency,
        items=items,
        station=station,
        started_at=session.started_at,
        ended_at=session.ended_at,
        zone=session.zone(),
        time_zone=session.time_zone,
        energy_wh=totals.total_energy_kwh * 1000,
        idle_s=idle_seconds(totals),
        issued_at=issued_at,
        tariff_id=session.tariff_id,
        reason=reason,
        replaces=replaces,
        promotion=applied,
    )
    return Document(doc_id, session.session_id, revision, "receipt", totals.currency, items, body, reason)


class Rater:
    """Claims and rates batches of completed sessions (one per :meth:`rate_batch` call)."""

    def __init__(self, database: Any, tariffs: TariffStore, *, retry_s: float = 300.0) -> None:
        self._database = database
        self._tariffs = tariffs
        self._retry_s = retry_s

    async def rate_batch(self, limit: int = 500) -> int:
        """Rate up to ``limit`` sessions in one transaction; the number rated (failures excluded)."""
        async with self._database.pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(_CLAIM, limit)
            if not rows:
                return 0
            # Defence in depth: a session rated by another node must not be rated again even if it
            # were queued twice; under our lock a fresh statement sees every committed rating.
            done = await connection.fetch(
                """SELECT session_id::text AS session_id FROM billing_ratings
                   WHERE session_id = ANY($1::uuid[])""",
                [uuid.UUID(row["session_id"]) for row in rows],
            )
            if done:
                rated_elsewhere = {row["session_id"] for row in done}
                rows = [row for row in rows if row["session_id"] not in rated_elsewhere]
                await _dequeue(connection, rated_elsewhere)
            samples = await register_readings(connection, rows)
            electrical = await electrical_readings(connection, rows)
            promotions = await eligibility(connection, rows)
            cache: dict[str, tuple[TariffVersions, str] | None] = {}
            rated: list[Rated] = []
            failures: list[tuple[str, str]] = []
            now = datetime.now(UTC)
            for row in rows:
                try:
                    rated.append(
                        await self._rate_row(
                            row,
                            samples.get(row["session_id"], []),
                            electrical.get(row["session_id"], NO_SAMPLES),
                            promotions,
                            cache,
                            now,
                        )
                    )
                except (RatingError, TariffError) as exc:
                    failures.append((row["session_id"], str(exc)))
                except (ArithmeticError, ValueError) as exc:
                    # Bad data in one session (a reading or tariff value the arithmetic refuses)
                    # must not roll back and block the whole batch on every node: it waits queued.
                    logger.warning("session %s: rating failed", row["session_id"], exc_info=True)
                    failures.append((row["session_id"], f"{type(exc).__name__}: {exc}"))
            await _store(connection, rated)
            if failures:
                for session_id, error in failures:
                    logger.warning("session %s cannot be rated yet: %s", session_id, error)
                await connection.executemany(
                    """UPDATE billing_rating_queue SET attempts = attempts + 1, last_error = $2,
                           next_attempt_at = now() + $3 * interval '1 second'
                       WHERE session_id = $1""",
                    [(uuid.UUID(s), e, self._retry_s) for s, e in failures],
                )
            return len(rated)

    async def _versions(
        self, row: Any, cache: dict[str, tuple[TariffVersions, str] | None]
    ) -> tuple[TariffVersions, str]:
        key = f"t:{row['tariff_id']}" if row["tariff_id"] else f"c:{row['charger_id']}"
        if key not in cache:
            if row["tariff_id"]:
                versions = await self._tariffs.versions(row["tariff_id"], fresh=True)
                cache[key] = None if versions is None else (versions, row["tariff_id"])
            else:
                priced = await self._tariffs.for_charger(row["charger_id"], fresh=True)
                cache[key] = None if priced is None else (priced.versions, priced.tariff_id)
        found = cache[key]
        if found is None:
            raise RatingError(f"no tariff for session {row['session_id']} at charger {row['charger_id']}")
        return found

    async def _rate_row(
        self,
        row: Any,
        samples: Sequence[tuple[datetime, float]],
        electrical: Electrical,
        promotions: Eligibility,
        cache: dict[str, tuple[TariffVersions, str] | None],
        now: datetime,
    ) -> Rated:
        session = completed_session(row)
        versions, tariff_id = await self._versions(row, cache)
        tariff = versions.in_force_at(session.started_at)
        if session.tariff_id is None:
            session = replace(session, tariff_id=tariff_id)
        charging_end = charging_ended_at(
            samples,
            started_at=session.started_at,
            ended_at=session.ended_at,
            meter_stop_wh=session.meter_stop_wh,
        )
        totals = rate(session, tariff, charging_end=charging_end, samples=samples, electrical=electrical)
        station = Station(
            row["charger_id"], row["evse_id"], row["station_id"], row["station_name"], row["station_address"]
        )
        discounted = discount_for(row, session, totals, promotions)
        receipt = receipt_of(session, totals, station, revision=1, issued_at=now, discounted=discounted)
        return Rated(session, tariff, totals, receipt, row["payment_method_id"], discounted)


def discount_for(
    row: Any, session: CompletedSession, totals: CdrTotals, promotions: Eligibility
) -> DiscountedTotal | None:
    """The best promotion for the session's driver (tier, codes) on its CPO's chargers; None: none."""
    offered = promotions.promotions_for(row["cpo_id"])
    if not offered:
        return None
    customer = promotions.customer(session.driver_id, row["driver_tier"], session.started_at)
    discounted = apply_best_promotion(totals, offered, customer, session.zone())
    return discounted if discounted.promotion is not None else None


async def register_readings(connection: Any, rows: Sequence[Any]) -> dict[str, list[tuple[datetime, float]]]:
    """Energy register readings per session: meter samples, else progress events (see billing.idle)."""
    by_transaction = {
        (row["charger_id"], row["transaction_id"]): row["session_id"] for row in rows if row["transaction_id"]
    }
    found: dict[str, list[tuple[datetime, float]]] = {}
    if by_transaction:
        samples = await connection.fetch(
            """SELECT m.charger_id, m.transaction_id, m.sampled_at, m.value, m.unit
               FROM meter_samples m
               JOIN unnest($1::text[], $2::text[]) AS k(charger_id, transaction_id)
                 ON m.charger_id = k.charger_id AND m.transaction_id = k.transaction_id
               WHERE m.measurand = $3 AND m.phase = ''""",
            [key[0] for key in by_transaction],
            [key[1] for key in by_transaction],
            ENERGY_REGISTER,
        )
        for s in samples:
            session_id = by_transaction[(s["charger_id"], s["transaction_id"])]
            reading_wh = register_wh(s["value"], s["unit"])
            if math.isfinite(reading_wh):  # a NaN/inf sample says nothing about the energy
                found.setdefault(session_id, []).append((s["sampled_at"], reading_wh))
    missing = {row["session_id"]: row for row in rows if row["session_id"] not in found}
    if missing:
        events = await connection.fetch(
            """SELECT session_id::text AS session_id, at, data FROM session_events
               WHERE session_id = ANY($1::uuid[]) AND kind = 'progress'""",
            [uuid.UUID(s) for s in missing],
        )
        for event in events:
            data = event["data"]
            row = missing[event["session_id"]]
            energy_kwh = data.get("energy_kwh") if isinstance(data, dict) else None
            if isinstance(energy_kwh, int | float) and row["meter_start_wh"] is not None:
                reading = float(row["meter_start_wh"]) + float(energy_kwh) * 1000.0
                found.setdefault(event["session_id"], []).append((event["at"], reading))
    return found


async def electrical_readings(connection: Any, rows: Sequence[Any]) -> dict[str, Electrical]:
    """Power and current samples per session (its EVSE and transaction; see billing.electrical)."""
    keys = {
        (row["charger_id"], row["evse_id"], row["transaction_id"]): row["session_id"]
        for row in rows
        if row["transaction_id"]
    }
    if not keys:
        return {}
    samples = await connection.fetch(
        """SELECT m.charger_id, m.evse_id, m.transaction_id, m.sampled_at, m.measurand, m.phase, m.value,
                  m.unit
           FROM meter_samples m
           JOIN unnest($1::text[], $2::int[], $3::text[]) AS k(charger_id, evse_id, transaction_id)
             ON m.charger_id = k.charger_id AND m.evse_id = k.evse_id
            AND m.transaction_id = k.transaction_id
           WHERE m.measurand = ANY($4::text[]) AND m.location IN ('', 'Outlet', 'Inlet')""",
        [key[0] for key in keys],
        [key[1] for key in keys],
        [key[2] for key in keys],
        [POWER_MEASURAND, CURRENT_MEASURAND],
    )
    by_session: dict[str, list[tuple[datetime, str, str, float, str]]] = {}
    for s in samples:
        session_id = keys[(s["charger_id"], s["evse_id"], s["transaction_id"])]
        by_session.setdefault(session_id, []).append(
            (s["sampled_at"], s["measurand"], s["phase"], s["value"], s["unit"])
        )
    return {session_id: electrical_of(found) for session_id, found in by_session.items()}


async def _store(connection: Any, rated: Sequence[Rated]) -> None:
    """Rating, receipt, charge entry and payment row of every rated session (same transaction)."""
    if not rated:
        return
    await connection.executemany(
        """INSERT INTO billing_ratings (session_id, driver_id, charger_id, tariff_id, currency, energy_wh,
               duration_s, idle_s, total_excl_vat, total_incl_vat, cdr, promotion_id, discount_incl_vat)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
        [
            (
                uuid.UUID(r.session.session_id),
                r.session.driver_id,
                r.session.charger_id,
                r.session.tariff_id,
                r.totals.currency,
                r.session.energy_wh,
                Decimal((r.session.ended_at - r.session.started_at).total_seconds()),
                idle_seconds(r.totals),
                r.receipt.total_excl_vat,
                r.receipt.total_incl_vat,
                _jsonable(cdr_totals_to_ocpi(r.totals)),
                *_applied(r.receipt),
            )
            for r in rated
        ],
    )
    await insert_documents(connection, [r.receipt for r in rated])
    await book(
        connection,
        [
            LedgerEntry(
                f"charge:{r.session.session_id}:1",
                r.session.driver_id,
                r.session.session_id,
                1,
                "receivable",
                "charge",
                r.receipt.currency,
                r.receipt.total_incl_vat,
            )
            for r in rated
        ],
    )
    await connection.executemany(
        """INSERT INTO billing_payments (session_id, revision, driver_id, payment_method_id, currency,
               amount, state)
           VALUES ($1, 1, $2, $3, $4, $5, 'rated')""",
        [
            (
                uuid.UUID(r.session.session_id),
                r.session.driver_id,
                r.payment_method_id,
                r.receipt.currency,
                r.receipt.total_incl_vat,
            )
            for r in rated
        ],
    )
    await _dequeue(connection, [r.session.session_id for r in rated])


def _applied(receipt: Document) -> tuple[str | None, Decimal]:
    """The promotion a receipt applied and what it took off incl. VAT (positive)."""
    promotion = receipt.body.get("promotion")
    discount = sum((i.amount_incl_vat for i in receipt.items if i.kind == "discount"), Decimal(0))
    return (None if promotion is None else promotion["promotion_id"]), -discount


async def _dequeue(connection: Any, session_ids: Iterable[str]) -> None:
    await connection.execute(
        "DELETE FROM billing_rating_queue WHERE session_id = ANY($1::uuid[])",
        [uuid.UUID(s) for s in session_ids],
    )


def _jsonable(value: Any) -> Any:
    """OCPI JSON with Decimal numbers as strings (exact; the jsonb codec uses json.dumps)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value
