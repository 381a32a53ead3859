"""Meter values as a time series in PostgreSQL, written in batches with COPY through psycopg 3.

The table ``meter_series`` is a TimescaleDB hypertable (one-day chunks) when
``CREATE EXTENSION IF NOT EXISTS timescaledb`` succeeds, and otherwise a native table
range-partitioned by UTC day: partitions for today and ``partition_days_ahead`` days are created
when the series opens, and any other day's partition is created on demand before a batch that
needs it is copied in. A table created one way keeps being used that way.

Writing: the charging service publishes every stored :class:`MeterSample` to its subscribers;
:meth:`MeterSeries.on_event` queues it without blocking, and :meth:`MeterSeries.run` (a task the
app owns) copies queued samples in whenever ``batch_size`` are waiting or ``flush_interval_s`` has
passed since the oldest one was queued, and at once when :meth:`flush` is called. The app calls
:meth:`flush` on shutdown before cancelling its tasks, so a clean stop loses nothing.

What a crash can lose: the samples still queued in memory (at most ``flush_interval_s`` worth,
or ``batch_size`` samples), a batch that failed ``write_attempts`` times, and samples dropped
because the queue was full (counted in ``dropped``). That is acceptable because the series is
for charts and the solver's history, not for billing: every sample was first stored row by row in
``meter_samples`` by the transaction repository before the charger was answered, and the
transactions' ``meter_start_wh``/``meter_stop_wh`` in PostgreSQL stay the authoritative readings
a session is rated on. The series is append-only: a 1.6 MeterValues the charger retransmits may
appear twice here (``meter_samples`` is unique per sample).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from typing import Any

import psycopg
from psycopg import sql

from csms.domain.events import DomainEvent, MeterSample
from csms.errors import StorageError
from csms.storage.transactions import sample_row

logger = logging.getLogger(__name__)

TABLE = "meter_series"
_SCHEMA_LOCK_KEY = 0x6D65746572736572  # "meterser"

_COLUMNS = (
    "charger_id",
    "evse_id",
    "transaction_id",
    "sampled_at",
    "measurand",
    "phase",
    "location",
    "context",
    "value",
    "unit",
)
_COPY_TYPES = ("text", "int4", "text", "timestamptz", "text", "text", "text", "text", "float8", "text")

_COLUMN_DEFINITIONS = """
    charger_id     text NOT NULL,
    evse_id        integer NOT NULL,
    transaction_id text,
    sampled_at     timestamptz NOT NULL,
    measurand      text NOT NULL,
    phase          text NOT NULL DEFAULT '',
    location       text NOT NULL DEFAULT '',
    context        text,
    value          double precision NOT NULL,
    unit           text NOT NULL"""


class SeriesBackend(Enum):
    """How ``meter_series`` is stored."""

    HYPERTABLE = "timescaledb hypertable"
    PARTITIONED = "native daily partitions"


def partition_name(day: date) -> str:
    """The name of the partition holding ``day`` (UTC)."""
    return f"{TABLE}_p{day:%Y%m%d}"


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


class MeterSeries:
    """The meter series of one database: schema, batched writer and range queries."""

    def __init__(
        self,
        dsn: str,
        *,
        batch_size: int = 1000,
        flush_interval_s: float = 2.0,
        max_queued: int = 200_000,
        partition_days_ahead: int = 2,
        prefer_timescaledb: bool = True,
        write_attempts: int = 3,
    ) -> None:
        if batch_size <= 0 or flush_interval_s <= 0 or write_attempts <= 0:
            raise StorageError("batch_size, flush_interval_s and write_attempts must be positive")
        self._dsn = dsn
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_queued = max_queued
        self._pending: list[MeterSample] = []
        self._has_samples = asyncio.Event()
        self._send_now = asyncio.Event()
        self._progress = asyncio.Condition()
        self._recorded = 0
        self._handled = 0
        self._taken = 0
        self._flush_through = 0
        self._running = False
        self._partition_days_ahead = partition_days_ahead
        self._prefer_timescaledb = prefer_timescaledb
        self._write_attempts = write_attempts
        self._writer: psycopg.AsyncConnection[Any] | None = None
        self._reader: psycopg.AsyncConnection[Any] | None = None
        self._reader_lock = asyncio.Lock()
        self._known_days: set[date] = set()
        self.backend: SeriesBackend | None = None
        self.written = 0
        self.dropped = 0

    # ---- lifetime -------------------------------------------------------------------------------

    async def open(self) -> SeriesBackend:
        """Connect, create the table if needed and return how it is stored."""
        self._writer = await self._connect()
        self._reader = await self._connect()
        self.backend = await self._ensure_table(self._writer)
        if self.backend is SeriesBackend.PARTITIONED:
            today = datetime.now(UTC).date()
            await self._ensure_partitions(
                self._writer, [today + timedelta(days=n) for n in range(self._partition_days_ahead + 1)]
            )
        logger.info("meter series stored as %s", self.backend.value)
        return self.backend

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        connection = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        await connection.execute("SET TIME ZONE 'UTC'")
        return connection

    async def _usable(self, connection: psycopg.AsyncConnection[Any] | None) -> psycopg.AsyncConnection[Any]:
        """``connection``, or a new one when it broke (a restarted server, a killed backend)."""
        if connection is None:
            raise StorageError("meter series is not open")
        if not connection.broken:
            return connection
        logger.warning("meter series: connection lost, reconnecting")
        await connection.close()
        return await self._connect()

    async def close(self) -> None:
        """Close both connections (call :meth:`flush` first to store what is queued)."""
        for connection in (self._writer, self._reader):
            if connection is not None:
                await connection.close()
        self._writer = self._reader = None

    # ---- schema ---------------------------------------------------------------------------------

    async def _ensure_table(self, connection: psycopg.AsyncConnection[Any]) -> SeriesBackend:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            existing = await _existing_backend(connection)
            if existing is not None:
                return existing
            if self._prefer_timescaledb and await _create_timescaledb(connection):
                await connection.execute(
                    sql.SQL("CREATE TABLE {} ({})").format(
                        sql.Identifier(TABLE), sql.SQL(_COLUMN_DEFINITIONS)
                    )
                )
                await connection.execute(
                    "SELECT create_hypertable(%s, 'sampled_at', chunk_time_interval => interval '1 day')",
                    (TABLE,),
                )
                backend = SeriesBackend.HYPERTABLE
            else:
                await connection.execute(
                    sql.SQL("CREATE TABLE {} ({}) PARTITION BY RANGE (sampled_at)").format(
                        sql.Identifier(TABLE), sql.SQL(_COLUMN_DEFINITIONS)
                    )
                )
                backend = SeriesBackend.PARTITIONED
            await connection.execute(
                sql.SQL("CREATE INDEX {} ON {} (charger_id, sampled_at)").format(
                    sql.Identifier(f"{TABLE}_charger_time"), sql.Identifier(TABLE)
                )
            )
            await connection.execute(
                sql.SQL("CREATE INDEX {} ON {} (charger_id, transaction_id, sampled_at)").format(
                    sql.Identifier(f"{TABLE}_transaction_time"), sql.Identifier(TABLE)
                )
            )
            return backend

    async def _ensure_partitions(
        self, connection: psycopg.AsyncConnection[Any], days: Iterable[date]
    ) -> None:
        missing = sorted(set(days) - self._known_days)
        if not missing:
            return
        async with connection.transaction():
            # Several nodes may create the same day at once: serialise on the schema lock.
            await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            for day in missing:
                await connection.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
                    ).format(
                        sql.Identifier(partition_name(day)),
                        sql.Identifier(TABLE),
                        sql.Literal(_day_start(day)),
                        sql.Literal(_day_start(day + timedelta(days=1))),
                    )
                )
        self._known_days.update(missing)

    async def partitions(self) -> list[str]:
        """The names of the existing daily partitions, oldest first (empty for a hypertable)."""
        rows = await self._fetch(
            """SELECT c.relname FROM pg_inherits i
                   JOIN pg_class c ON c.oid = i.inhrelid
                   JOIN pg_class p ON p.oid = i.inhparent
               WHERE p.relname = %s ORDER BY c.relname""",
            (TABLE,),
        )
        return [str(row[0]) for row in rows]

    # ---- writing --------------------------------------------------------------------------------

    async def on_event(self, event: DomainEvent) -> None:
        """A :class:`ChargingService` listener: queue meter samples, ignore other events."""
        if isinstance(event, MeterSample):
            self.record(event)

    def record(self, sample: MeterSample) -> None:
        """Queue ``sample`` without blocking; when the queue is full it is dropped and counted."""
        if len(self._pending) >= self._max_queued:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                logger.warning(
                    "charger %s: meter series queue full, %d dropped", sample.charger_id, self.dropped
                )
            return
        self._pending.append(sample)
        self._recorded += 1
        self._has_samples.set()
        if len(self._pending) >= self._batch_size:
            self._send_now.set()

    async def flush(self) -> None:
        """Ask the writer to store what is queued now, and return once it is handled."""
        target = self._recorded
        self._flush_through = max(self._flush_through, target)
        self._send_now.set()
        async with self._progress:
            # A writer that is not running (never started, or ended) cannot store anything more.
            await self._progress.wait_for(lambda: self._handled >= target or not self._running)

    async def wait_written(self, count: int) -> None:
        """Return once at least ``count`` samples have been stored since the series was created."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.written >= count)

    async def run(self) -> None:
        """Copy queued samples in batches until cancelled."""
        self._running = True
        try:
            await self._write_batches()
        finally:
            async with self._progress:
                self._running = False
                self._progress.notify_all()

    async def _write_batches(self) -> None:
        while True:
            await self._has_samples.wait()
            # The first sample of a batch starts the interval; a full batch or a flush cuts it short.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval_s):
                    await self._send_now.wait()
            batch = self._pending[: self._batch_size]
            del self._pending[: self._batch_size]
            self._taken += len(batch)
            # Keep going without waiting while a full batch is queued or a flush wants more.
            if len(self._pending) < self._batch_size and self._taken >= self._flush_through:
                self._send_now.clear()
            if not self._pending:
                self._has_samples.clear()
            stored = await self._write_with_retries(batch)
            async with self._progress:
                self._handled += len(batch)
                self.written += len(batch) if stored else 0
                self._progress.notify_all()

    async def _write_with_retries(self, batch: list[MeterSample]) -> bool:
        """Store ``batch``, retrying a failed write; ``False`` when it was given up."""
        for attempt in range(1, self._write_attempts + 1):
            try:
                await self._write(batch)
            except psycopg.Error:
                if attempt == self._write_attempts:
                    logger.exception("meter series: %d samples could not be stored, dropped", len(batch))
                    return False
                logger.warning("meter series: write failed (attempt %d), retrying", attempt, exc_info=True)
                await asyncio.sleep(0.5 * attempt)  # back-off before retrying, not synchronisation
            else:
                return True
        return False

    async def _write(self, batch: list[MeterSample]) -> None:
        connection = self._writer = await self._usable(self._writer)
        if self.backend is SeriesBackend.PARTITIONED:
            await self._ensure_partitions(connection, {s.sampled_at.astimezone(UTC).date() for s in batch})
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(TABLE), sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
        )
        async with connection.transaction(), connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
            copy.set_types(list(_COPY_TYPES))
            for s in batch:
                await copy.write_row(sample_row(s))

    # ---- queries --------------------------------------------------------------------------------

    async def charger_samples(
        self, charger_id: str, start: datetime, end: datetime, *, measurand: str | None = None
    ) -> list[MeterSample]:
        """A charger's samples with ``start <= sampled_at < end``, oldest first."""
        return await self._select(
            "charger_id = %s AND sampled_at >= %s AND sampled_at < %s"
            + (" AND measurand = %s" if measurand is not None else ""),
            (charger_id, start, end, *((measurand,) if measurand is not None else ())),
        )

    async def transaction_samples(
        self, charger_id: str, transaction_id: str, start: datetime, end: datetime
    ) -> list[MeterSample]:
        """A transaction's samples with ``start <= sampled_at < end``, oldest first."""
        return await self._select(
            "charger_id = %s AND transaction_id = %s AND sampled_at >= %s AND sampled_at < %s",
            (charger_id, transaction_id, start, end),
        )

    async def _select(self, where: str, parameters: tuple[Any, ...]) -> list[MeterSample]:
        _check_aware(*(p for p in parameters if isinstance(p, datetime)))
        query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY sampled_at, evse_id, measurand, phase").format(
            sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)), sql.Identifier(TABLE), sql.SQL(where)
        )
        rows = await self._fetch(query, parameters)
        return [
            MeterSample(
                charger_id=row[0],
                evse_id=row[1],
                transaction_id=row[2],
                sampled_at=row[3].astimezone(UTC),
                measurand=row[4],
                phase=row[5] or None,
                location=row[6] or None,
                context=row[7],
                value=row[8],
                unit=row[9],
            )
            for row in rows
        ]

    async def _fetch(self, query: str | sql.Composed, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with self._reader_lock:
            self._reader = reader = await self._usable(self._reader)
            async with reader.cursor() as cursor:
                await cursor.execute(query, parameters)
                return list(await cursor.fetchall())


def _check_aware(*moments: datetime) -> None:
    for moment in moments:
        if moment.tzinfo is None:
            raise StorageError(f"naive datetime {moment.isoformat()}: meter series times are UTC-aware")


async def _existing_backend(connection: psycopg.AsyncConnection[Any]) -> SeriesBackend | None:
    cursor = await connection.execute(
        """SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relname = %s AND n.nspname = current_schema()""",
        (TABLE,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return SeriesBackend.PARTITIONED if row[0] == "p" else SeriesBackend.HYPERTABLE


async def _create_timescaledb(connection: psycopg.AsyncConnection[Any]) -> bool:
    """Whether the timescaledb extension is (now) installed; a failure leaves the transaction usable."""
    try:
        async with connection.transaction():  # a savepoint: the outer transaction survives a failure
            await connection.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        logger.info("timescaledb not available (%s): using native partitions", str(exc).strip())
        return False
    return True
