"""The meter series against the real PostgreSQL: partitions, batched COPY, range queries, shutdown."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import pytest_asyncio
from aiohttp import web
from ocpp.v16 import call

from csms.domain.events import MeterSample
from csms.errors import StorageError
from csms.server import CSMS, create_app
from csms.storage.chargers import ChargerRecord
from csms.storage.meter_series import MeterSeries, SeriesBackend, partition_name
from tests.csms.chargers import Charger16, connected
from tests.csms.conftest import ADMIN_DSN, make_settings

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 3, 1, 23, 58, tzinfo=UTC)


def sample(
    charger_id: str,
    at: datetime,
    value: float,
    *,
    transaction_id: str | None = "T1",
    measurand: str = "Energy",
) -> MeterSample:
    return MeterSample(
        charger_id=charger_id,
        evse_id=1,
        transaction_id=transaction_id,
        sampled_at=at,
        measurand=measurand,
        value=value,
        unit="Wh",
        phase=None,
        location=None,
        context="Sample.Periodic",
    )


@pytest_asyncio.fixture
async def series(database_dsn: str) -> AsyncIterator[MeterSeries]:
    """An open series whose writer flushes on size (3) or on demand, never on a short interval."""
    opened = MeterSeries(database_dsn, batch_size=3, flush_interval_s=3600, prefer_timescaledb=False)
    await opened.open()
    writer = asyncio.create_task(opened.run())
    try:
        yield opened
    finally:
        await opened.flush()
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await opened.close()


async def test_partitions_are_created_ahead_and_on_demand(series: MeterSeries) -> None:
    assert series.backend is SeriesBackend.PARTITIONED
    today = datetime.now(UTC).date()
    existing = set(await series.partitions())
    assert {partition_name(today), partition_name(today + timedelta(days=1))} <= existing
    charger = f"CP-{uuid.uuid4().hex[:8]}"
    # Two minutes either side of midnight: two days, each in its own partition.
    series.record(sample(charger, T0, 100.0))
    series.record(sample(charger, T0 + timedelta(minutes=4), 140.0))
    await series.flush()
    assert {partition_name(T0.date()), partition_name(T0.date() + timedelta(days=1))} <= set(
        await series.partitions()
    )
    stored = await series.charger_samples(charger, T0, T0 + timedelta(hours=1))
    assert [(s.sampled_at, s.value) for s in stored] == [(T0, 100.0), (T0 + timedelta(minutes=4), 140.0)]


async def test_a_full_batch_is_written_without_a_flush(series: MeterSeries) -> None:
    charger = f"CP-{uuid.uuid4().hex[:8]}"
    before = series.written
    for minute in range(3):
        series.record(sample(charger, T0 + timedelta(minutes=minute), float(minute)))
    async with asyncio.timeout(30):  # a safety net, not a timing assertion
        await series.wait_written(before + 3)
    assert len(await series.charger_samples(charger, T0, T0 + timedelta(hours=1))) == 3


async def test_queries_select_charger_transaction_and_half_open_range(series: MeterSeries) -> None:
    charger, other = f"CP-{uuid.uuid4().hex[:8]}", f"CP-{uuid.uuid4().hex[:8]}"
    series.record(sample(charger, T0, 1.0, transaction_id="T1"))
    series.record(sample(charger, T0 + timedelta(minutes=1), 2.0, transaction_id="T2"))
    series.record(sample(charger, T0 + timedelta(minutes=2), 3.0, transaction_id="T2", measurand="Power"))
    series.record(sample(other, T0 + timedelta(minutes=1), 9.0, transaction_id="T2"))
    await series.flush()
    end = T0 + timedelta(minutes=2)
    assert [s.value for s in await series.charger_samples(charger, T0, end)] == [1.0, 2.0]
    assert [s.value for s in await series.charger_samples(charger, T0, end + timedelta(seconds=1))] == [
        1.0,
        2.0,
        3.0,
    ]
    assert [s.value for s in await series.charger_samples(charger, T0, end, measurand="Energy")] == [1.0, 2.0]
    in_t2 = await series.transaction_samples(charger, "T2", T0, T0 + timedelta(hours=1))
    assert [(s.value, s.measurand) for s in in_t2] == [(2.0, "Energy"), (3.0, "Power")]
    first = in_t2[0]
    assert first.sampled_at.tzinfo is UTC
    assert (first.phase, first.location, first.context) == (None, None, "Sample.Periodic")
    with pytest.raises(StorageError):
        await series.charger_samples(charger, datetime(2026, 3, 1), end)


async def test_a_table_created_as_partitions_stays_partitioned(
    series: MeterSeries, database_dsn: str
) -> None:
    again = MeterSeries(database_dsn, prefer_timescaledb=True)
    try:
        assert await again.open() is SeriesBackend.PARTITIONED
    finally:
        await again.close()


async def test_hypertable_when_timescaledb_is_available() -> None:
    async with await psycopg.AsyncConnection.connect(ADMIN_DSN) as admin:
        cursor = await admin.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        available = await cursor.fetchone() is not None
    if not available:
        pytest.skip("the timescaledb extension is not installed on this PostgreSQL")
    name = f"fairwatt_series_test_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(ADMIN_DSN, autocommit=True) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        hyper = MeterSeries(f"postgresql://postgres@127.0.0.1:5432/{name}", flush_interval_s=3600)
        assert await hyper.open() is SeriesBackend.HYPERTABLE
        writer = asyncio.create_task(hyper.run())
        hyper.record(sample("CP-HYPER", T0, 5.0))
        await hyper.flush()
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        assert [s.value for s in await hyper.charger_samples("CP-HYPER", T0, T0 + timedelta(days=1))] == [5.0]
        await hyper.close()
    finally:
        async with await psycopg.AsyncConnection.connect(ADMIN_DSN, autocommit=True) as admin:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_a_clean_stop_stores_every_queued_sample(database_dsn: str) -> None:
    """MeterValues from a charger reach the series on shutdown although the interval never ended."""
    app = create_app(make_settings(database_dsn, meter_series_flush_interval_s=3600.0))
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    runtime = app[CSMS]
    charger = f"CP-{uuid.uuid4().hex[:8]}"
    await runtime.chargers.save(ChargerRecord(charger))
    try:
        async with connected(Charger16, f"ws://127.0.0.1:{port}/ocpp/{charger}", charger, "ocpp1.6") as cp:
            await cp.call(
                call.BootNotification(charge_point_vendor="V", charge_point_model="M"), suppress=False
            )
            await cp.call(
                call.MeterValues(
                    connector_id=1,
                    meter_value=[
                        {
                            "timestamp": (T0 + timedelta(seconds=n)).isoformat(),
                            "sampledValue": [
                                {"value": str(1000 + n), "measurand": "Energy.Active.Import.Register"}
                            ],
                        }
                        for n in range(5)
                    ],
                ),
                suppress=False,
            )
        assert runtime.meter_series.written == 0
    finally:
        await runner.cleanup()
    reader = MeterSeries(database_dsn)
    await reader.open()
    try:
        stored = await reader.charger_samples(charger, T0, T0 + timedelta(minutes=1))
    finally:
        await reader.close()
    assert [s.value for s in stored] == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0]


async def test_the_writer_reconnects_after_losing_its_connection(series: MeterSeries) -> None:
    charger = f"CP-{uuid.uuid4().hex[:8]}"
    series.record(sample(charger, T0, 1.0))
    await series.flush()
    writer = series._writer
    assert writer is not None
    async with await psycopg.AsyncConnection.connect(ADMIN_DSN, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (writer.info.backend_pid,))
    series.record(sample(charger, T0 + timedelta(minutes=1), 2.0))
    await series.flush()
    stored = await series.charger_samples(charger, T0, T0 + timedelta(hours=1))
    assert [s.value for s in stored] == [1.0, 2.0]
    assert series._writer is not writer
