"""Transactions, 2.0.1 transaction events and meter samples, written before the charger is answered.

Replays are idempotent: a 1.6 StartTransaction for the same charger, connector and start time
returns the transaction id first assigned; a 2.0.1 TransactionEvent whose ``seqNo`` is already
stored changes nothing; meter samples are unique per charger, EVSE, time, measurand, phase and
location.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.domain.events import (
    IdToken,
    MeterSample,
    TransactionEnded,
    TransactionEventReceived,
    TransactionStarted,
)
from csms.errors import StorageError
from csms.storage.database import Database


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    charger_id: str
    transaction_id: str
    ocpp_version: str
    evse_id: int | None
    id_token: str | None
    meter_start_wh: float | None
    meter_stop_wh: float | None
    started_at: datetime | None
    ended_at: datetime | None
    stop_reason: str | None
    charging_state: str | None


@dataclass(frozen=True, slots=True)
class FinishedTransaction:
    """A transaction that ended: where, when, and the energy it took [Wh] (``None`` when unmetered)."""

    charger_id: str
    evse_id: int
    started_at: datetime
    ended_at: datetime
    energy_wh: float | None


# The energy of a finished transaction: its meter readings at start and stop, else the spread of its
# energy register samples (a 2.0.1 charger may report neither reading in its Started/Ended events).
_FINISHED_SINCE = """
    SELECT t.charger_id, t.evse_id, t.started_at, t.ended_at,
           COALESCE(t.meter_stop_wh - t.meter_start_wh,
                    (SELECT max(m.value * CASE WHEN m.unit = 'kWh' THEN 1000 ELSE 1 END)
                          - min(m.value * CASE WHEN m.unit = 'kWh' THEN 1000 ELSE 1 END)
                     FROM meter_samples m
                     WHERE m.charger_id = t.charger_id AND m.transaction_id = t.transaction_id
                       AND m.measurand = 'Energy.Active.Import.Register' AND m.phase = '')) AS energy_wh
    FROM transactions t
    WHERE t.ended_at >= $1 AND t.started_at IS NOT NULL AND t.evse_id IS NOT NULL
      AND t.charger_id = ANY($2::text[])
    ORDER BY t.started_at"""


@dataclass(frozen=True, slots=True)
class StartOutcome:
    transaction_id: str
    replayed: bool


_INSERT_SAMPLES = """
    INSERT INTO meter_samples (charger_id, evse_id, transaction_id, sampled_at, measurand, phase, location,
                               context, value, unit)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT DO NOTHING"""


# A transaction's samples kept on EVSE 0 (its first events named none) moved to its EVSE; one that
# the EVSE has already (same time, measurand, phase, location) stays where it is.
_SAMPLES_TO_EVSE = """
    UPDATE meter_samples m SET evse_id = $3
    WHERE m.charger_id = $1 AND m.transaction_id = $2 AND m.evse_id = 0
      AND NOT EXISTS (SELECT FROM meter_samples o
                      WHERE o.charger_id = m.charger_id AND o.evse_id = $3 AND o.sampled_at = m.sampled_at
                        AND o.measurand = m.measurand AND o.phase = m.phase AND o.location = m.location)"""


class TransactionRepository:
    """Reads and writes ``transactions``, ``transaction_events`` and ``meter_samples``."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def start_v16(self, started: TransactionStarted) -> StartOutcome:
        """Store a 1.6 StartTransaction and assign its integer transaction id (idempotent)."""
        async with self._database.pool.acquire() as connection, connection.transaction():
            existing = await _find_v16(connection, started)
            if existing is not None:
                return StartOutcome(existing, replayed=True)
            number = await connection.fetchval("SELECT nextval('transactions_id_seq')")
            inserted = await connection.fetchval(
                """INSERT INTO transactions (id, charger_id, ocpp_version, transaction_id, evse_id,
                       connector_id, id_token, meter_start_wh, started_at, start_message_id, reservation_id)
                   VALUES ($1, $2, '1.6', $3, $4, $5, $6, $7, $8, $9, $10)
                   ON CONFLICT DO NOTHING RETURNING transaction_id""",
                number,
                started.charger_id,
                str(number),
                started.evse_id,
                started.connector_id,
                started.id_token.value if started.id_token else None,
                started.meter_start_wh,
                started.started_at,
                started.message_id,
                started.reservation_id,
            )
            if inserted is not None:
                return StartOutcome(str(inserted), replayed=False)
        # A concurrent replay won the insert: read its id outside the failed transaction.
        async with self._database.pool.acquire() as connection:
            existing = await _find_v16(connection, started)
        if existing is None:
            raise StorageError(f"charger {started.charger_id}: transaction start neither inserted nor found")
        return StartOutcome(existing, replayed=True)

    async def end_v16(self, ended: TransactionEnded, samples: Sequence[MeterSample]) -> bool:
        """Close a 1.6 transaction with its transaction data; ``False`` when the id is unknown."""
        async with self._database.pool.acquire() as connection, connection.transaction():
            found = await connection.fetchval(
                """UPDATE transactions SET ended_at = COALESCE(ended_at, $3),
                       meter_stop_wh = COALESCE(meter_stop_wh, $4), stop_reason = COALESCE(stop_reason, $5),
                       updated_at = now()
                   WHERE charger_id = $1 AND transaction_id = $2 RETURNING true""",
                ended.charger_id,
                ended.transaction_id,
                ended.ended_at,
                ended.meter_stop_wh,
                ended.reason,
            )
            await _insert_samples(connection, samples)
        return bool(found)

    async def add_samples(self, samples: Sequence[MeterSample]) -> None:
        """Store meter samples (duplicates are ignored)."""
        if not samples:
            return
        async with self._database.pool.acquire() as connection:
            await _insert_samples(connection, samples)

    async def apply_event_v201(
        self,
        event: TransactionEventReceived,
        started: TransactionStarted | None,
        ended: TransactionEnded | None,
        samples: Sequence[MeterSample],
        evse_id: int | None,
        *,
        authorized_by: IdToken | None = None,
    ) -> bool:
        """Store one 2.0.1 TransactionEvent atomically; ``False`` when its seqNo was already stored.

        ``authorized_by`` (the idToken of a Started or Updated event) becomes the transaction's token
        unless it has one: a station that starts on plug-in sends it later (E02, triggerReason
        Authorized). A transaction whose events named no EVSE takes the first one named (its samples
        too); one never seen Started takes its start from the Ended event (``began_at``,
        ``meter_start_wh``), and a Started event arriving after that still sets the earlier start."""
        async with self._database.pool.acquire() as connection, connection.transaction():
            fresh = await connection.fetchval(
                """INSERT INTO transaction_events (charger_id, transaction_id, seq_no, event_type,
                       trigger_reason, offline, occurred_at, message_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING true""",
                event.charger_id,
                event.transaction_id,
                event.seq_no,
                event.event_type,
                event.trigger_reason,
                event.offline,
                event.at,
                event.message_id,
            )
            if not fresh:
                return False
            before = await connection.fetchrow(
                """WITH before AS (
                       SELECT evse_id FROM transactions WHERE charger_id = $1 AND transaction_id = $2)
                   INSERT INTO transactions (charger_id, ocpp_version, transaction_id, evse_id,
                       charging_state, offline, id_token, id_token_type)
                   VALUES ($1, '2.0.1', $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (charger_id, transaction_id) DO UPDATE SET
                       evse_id = COALESCE(transactions.evse_id, EXCLUDED.evse_id),
                       charging_state = COALESCE(EXCLUDED.charging_state, transactions.charging_state),
                       offline = transactions.offline OR EXCLUDED.offline,
                       id_token_type = CASE WHEN transactions.id_token IS NULL
                           THEN EXCLUDED.id_token_type ELSE transactions.id_token_type END,
                       id_token = COALESCE(transactions.id_token, EXCLUDED.id_token), updated_at = now()
                   RETURNING EXISTS (SELECT FROM before) AS existed,
                       (SELECT evse_id FROM before) AS evse_id""",
                event.charger_id,
                event.transaction_id,
                evse_id,
                event.charging_state,
                event.offline,
                authorized_by.value if authorized_by else None,
                authorized_by.token_type if authorized_by else None,
            )
            if before["existed"] and before["evse_id"] is None and evse_id:
                # the first event named no EVSE (E01/E02 require it, chargers omit it): its samples
                # were kept on EVSE 0 and now join the EVSE this event names
                await connection.execute(_SAMPLES_TO_EVSE, event.charger_id, event.transaction_id, evse_id)
            if started is not None:
                await connection.execute(
                    """UPDATE transactions SET started_at = LEAST(started_at, $3),
                           connector_id = COALESCE(connector_id, $4), id_token = COALESCE(id_token, $5),
                           id_token_type = COALESCE(id_token_type, $6),
                           meter_start_wh = COALESCE(meter_start_wh, $7),
                           start_message_id = COALESCE(start_message_id, $8),
                           remote_start_id = COALESCE(remote_start_id, $9),
                           reservation_id = COALESCE(reservation_id, $10)
                       WHERE charger_id = $1 AND transaction_id = $2""",
                    started.charger_id,
                    event.transaction_id,
                    started.started_at,
                    started.connector_id,
                    started.id_token.value if started.id_token else None,
                    started.id_token.token_type if started.id_token else None,
                    started.meter_start_wh,
                    started.message_id,
                    started.remote_start_id,
                    started.reservation_id,
                )
            if ended is not None:
                # a transaction never seen Started begins where the Ended event says it did
                await connection.execute(
                    """UPDATE transactions SET ended_at = COALESCE(ended_at, $3),
                           meter_stop_wh = COALESCE(meter_stop_wh, $4),
                           stop_reason = COALESCE(stop_reason, $5),
                           started_at = COALESCE(started_at, $6),
                           meter_start_wh = COALESCE(meter_start_wh, $7)
                       WHERE charger_id = $1 AND transaction_id = $2""",
                    ended.charger_id,
                    event.transaction_id,
                    ended.ended_at,
                    ended.meter_stop_wh,
                    ended.reason,
                    ended.began_at,
                    ended.meter_start_wh,
                )
            await _insert_samples(connection, samples)
        return True

    async def get(self, charger_id: str, transaction_id: str) -> TransactionRecord | None:
        """One transaction, ``None`` when unknown."""
        async with self._database.pool.acquire() as connection:
            row = await connection.fetchrow(
                "SELECT * FROM transactions WHERE charger_id = $1 AND transaction_id = $2",
                charger_id,
                transaction_id,
            )
        return None if row is None else _transaction(row)

    async def open_on(self, charger_ids: Sequence[str]) -> list[TransactionRecord]:
        """The transactions of ``charger_ids`` that started (with a known EVSE) and have not ended,
        oldest start first."""
        async with self._database.pool.acquire() as connection:
            rows = await connection.fetch(
                """SELECT * FROM transactions
                   WHERE charger_id = ANY($1::text[]) AND started_at IS NOT NULL AND ended_at IS NULL
                     AND evse_id IS NOT NULL
                   ORDER BY started_at, charger_id, transaction_id""",
                list(charger_ids),
            )
        return [_transaction(row) for row in rows]

    async def finished_since(self, since: datetime, charger_ids: Sequence[str]) -> list[FinishedTransaction]:
        """The transactions of ``charger_ids`` that ended at or after ``since``, oldest start first."""
        async with self._database.pool.acquire() as connection:
            rows = await connection.fetch(_FINISHED_SINCE, since, list(charger_ids))
        return [FinishedTransaction(**dict(row)) for row in rows]  # the query selects exactly its fields

    async def samples(self, charger_id: str, transaction_id: str) -> list[MeterSample]:
        """The meter samples of one transaction, oldest first."""
        async with self._database.pool.acquire() as connection:
            rows = await connection.fetch(
                """SELECT * FROM meter_samples WHERE charger_id = $1 AND transaction_id = $2
                   ORDER BY sampled_at, measurand, phase, location""",
                charger_id,
                transaction_id,
            )
        return [_sample(row) for row in rows]

    async def latest_energy(self, charger_id: str, transaction_id: str) -> MeterSample | None:
        """The transaction's latest energy register reading of the whole EVSE (no phase, at the
        outlet or no location given), ``None`` when it has none."""
        async with self._database.pool.acquire() as connection:
            row = await connection.fetchrow(
                """SELECT * FROM meter_samples WHERE charger_id = $1 AND transaction_id = $2
                       AND measurand = 'Energy.Active.Import.Register' AND phase = ''
                       AND location IN ('', 'Outlet')
                   ORDER BY sampled_at DESC LIMIT 1""",
                charger_id,
                transaction_id,
            )
        return None if row is None else _sample(row)


def _transaction(row: Any) -> TransactionRecord:
    return TransactionRecord(
        charger_id=row["charger_id"],
        transaction_id=row["transaction_id"],
        ocpp_version=row["ocpp_version"],
        evse_id=row["evse_id"],
        id_token=row["id_token"],
        meter_start_wh=row["meter_start_wh"],
        meter_stop_wh=row["meter_stop_wh"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        stop_reason=row["stop_reason"],
        charging_state=row["charging_state"],
    )


def _sample(row: Any) -> MeterSample:
    return MeterSample(
        charger_id=row["charger_id"],
        evse_id=row["evse_id"],
        transaction_id=row["transaction_id"],
        sampled_at=row["sampled_at"],
        measurand=row["measurand"],
        value=row["value"],
        unit=row["unit"],
        phase=row["phase"] or None,
        location=row["location"] or None,
        context=row["context"],
    )


async def _find_v16(connection: Any, started: TransactionStarted) -> str | None:
    found: Any = await connection.fetchval(
        """SELECT transaction_id FROM transactions
           WHERE charger_id = $1 AND ocpp_version = '1.6' AND evse_id = $2 AND started_at = $3""",
        started.charger_id,
        started.evse_id,
        started.started_at,
    )
    return None if found is None else str(found)


def sample_row(s: MeterSample) -> tuple[Any, ...]:
    """A meter sample as the column tuple both sample tables take (missing phase/location as '')."""
    return (
        s.charger_id,
        s.evse_id,
        s.transaction_id,
        s.sampled_at,
        s.measurand,
        s.phase or "",
        s.location or "",
        s.context,
        s.value,
        s.unit,
    )


async def _insert_samples(connection: Any, samples: Sequence[MeterSample]) -> None:
    if samples:
        await connection.executemany(_INSERT_SAMPLES, [sample_row(s) for s in samples])
