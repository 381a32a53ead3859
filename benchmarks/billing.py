"""Billing benchmark (issue 5): rate 100,000 completed sessions, then reconcile them.

``python -m benchmarks billing --sessions 100000 --workers 2 --capture 2000``

- A throw-away PostgreSQL database gets every migration (csms, sessions, billing), 100 chargers at
  10 stations (Europe/Berlin), one time-of-use tariff with a flat fee, two energy windows, charging
  time after 3 h and idle time (so most sessions are split into several charging periods), 1,000
  drivers with a payment method, and ``--sessions`` COMPLETED sessions over 30 days, inserted with
  COPY (5-60 kWh, 20 min-6 h; half carry ``tariff_id``, half resolve it through the charger).
- Anchor, same run: the pure pricing of the same sessions in memory (billing's splitter and the
  tariffs engine, no database) - what rating would cost without storage.
- Rating: ``--workers`` :class:`billing.rater.Rater` loops claiming batches of ``--batch`` with
  ``SKIP LOCKED`` until nothing is left; each batch stores ratings, receipts with line items, ledger
  entries and payment rows in one transaction. Then one more pass must find nothing (rated once).
- Capture: the first ``--capture`` payments are settled through the local test gateway process
  (``python -m billing.test_gateway``) over HTTP, with the Stripe-style adapter.
- Reconciliation (:func:`billing.queries.reconcile`) over every session: rated = captured +
  outstanding per currency, ledger balance = outstanding per session, and the gateway's money
  movements = the ledger's payments.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg

from billing.gateway import from_minor
from billing.payments import PaymentPolicy, PaymentSettler
from billing.queries import reconcile
from billing.rater import Rater
from billing.rating import CompletedSession, rate
from billing.stripe import StripeGateway
from csms.storage.database import Database
from sessions.tariff_store import TariffStore
from tariffs.ocpi import parse_tariff

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
ORIGIN = datetime(2026, 1, 5, tzinfo=UTC)
TARIFF: dict[str, Any] = {
    "id": "BENCH-TOU",
    "currency": "EUR",
    "start_date_time": "2025-01-01T00:00:00Z",
    "min_price": {"excl_vat": 1.00},
    "elements": [
        {"price_components": [{"type": "FLAT", "price": 0.50, "vat": 19, "step_size": 1}]},
        {
            "price_components": [{"type": "ENERGY", "price": 0.45, "vat": 19, "step_size": 100}],
            "restrictions": {"start_time": "17:00", "end_time": "21:00"},
        },
        {
            "price_components": [{"type": "TIME", "price": 3.00, "vat": 19, "step_size": 60}],
            "restrictions": {"min_duration": 10800},
        },
        {
            "price_components": [
                {"type": "ENERGY", "price": 0.32, "vat": 19, "step_size": 100},
                {"type": "PARKING_TIME", "price": 6.00, "vat": 19, "step_size": 300},
            ]
        },
    ],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", type=int, default=100_000, help="completed sessions to rate")
    parser.add_argument("--workers", type=int, default=2, help="concurrent rating loops (SKIP LOCKED)")
    parser.add_argument("--batch", type=int, default=500, help="sessions per rating transaction")
    parser.add_argument("--capture", type=int, default=2_000, help="payments settled at the test gateway")
    parser.add_argument("--anchor", type=int, default=20_000, help="sessions priced in memory as the anchor")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep-database", action="store_true", help="do not drop the database")


def _sessions(count: int, seed: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        start = ORIGIN + timedelta(seconds=rng.randrange(30 * 86400))
        minutes = rng.randint(20, 360)
        energy_wh = float(rng.randint(5_000, 60_000))
        meter_start = float(rng.randint(0, 10_000_000))
        charger = f"CP{i % 100:03d}"
        driver = f"driver{i % 1000:04d}"
        rows.append(
            (
                uuid.UUID(int=rng.getrandbits(128)),
                driver,
                charger,
                1,
                1,
                "COMPLETED",
                "app",
                f"pm-{driver}",
                f"tx{i}",
                TARIFF["id"] if i % 2 == 0 else None,
                "Europe/Berlin",
                meter_start,
                meter_start + energy_wh,
                start,
                start + timedelta(minutes=minutes),
            )
        )
    return rows


_COLUMNS = (
    "session_id",
    "driver_id",
    "charger_id",
    "evse_id",
    "connector_id",
    "state",
    "origin",
    "payment_method_id",
    "transaction_id",
    "tariff_id",
    "time_zone",
    "meter_start_wh",
    "meter_stop_wh",
    "started_at",
    "ended_at",
)


async def _seed(database: Database, rows: list[tuple[Any, ...]]) -> float:
    pool = database.pool
    await pool.executemany(
        "INSERT INTO stations (station_id, name, time_zone, cpo_id) VALUES ($1, $2, 'Europe/Berlin', 'CPO')",
        [(f"ST{s}", f"Station {s}") for s in range(10)],
    )
    await pool.executemany(
        "INSERT INTO chargers (charger_id, station_id, cpo_id) VALUES ($1, $2, 'CPO')",
        [(f"CP{c:03d}", f"ST{c % 10}") for c in range(100)],
    )
    store = TariffStore(database)
    await store.publish(TARIFF, cpo_id="CPO", created_by="benchmark")
    for s in range(10):
        await store.assign("station", f"ST{s}", TARIFF["id"])
    await pool.executemany(
        "INSERT INTO drivers (driver_id) VALUES ($1)", [(f"driver{d:04d}",) for d in range(1000)]
    )
    await pool.executemany(
        """INSERT INTO payment_methods (payment_method_id, driver_id, provider_token)
           VALUES ($1, $2, 'pm_card_visa')""",
        [(f"pm-driver{d:04d}", f"driver{d:04d}") for d in range(1000)],
    )
    began = time.perf_counter()
    async with pool.acquire() as connection:
        await connection.copy_records_to_table("charging_sessions", records=rows, columns=_COLUMNS)
    return time.perf_counter() - began


def _anchor(rows: list[tuple[Any, ...]]) -> float:
    """Sessions per second priced in memory: billing's splitter + the engine, no database."""
    tariff = parse_tariff(TARIFF)
    began = time.perf_counter()
    for row in rows:
        session = CompletedSession(
            str(row[0]), row[1], row[2], row[13], row[14], row[11], row[12], row[10], row[7], row[9]
        )
        rate(session, tariff, charging_end=None)
    return len(rows) / (time.perf_counter() - began)


async def _rate_all(database: Database, workers: int, batch: int) -> tuple[int, float]:
    raters = [Rater(database, TariffStore(database)) for _ in range(workers)]

    async def loop(rater: Rater) -> int:
        total = 0
        while (rated := await rater.rate_batch(batch)) > 0:
            total += rated
        return total

    began = time.perf_counter()
    counts = await asyncio.gather(*(loop(r) for r in raters))
    return sum(counts), time.perf_counter() - began


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _capture(database: Database, count: int) -> tuple[int, float, Decimal]:
    """Settle ``count`` payments at a local test gateway process; (settled, seconds, moved there)."""
    if count <= 0:
        return 0, 0.0, Decimal(0)
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "billing.test_gateway", "--port", str(port)
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(url + "/_control/state"):
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            gateway = StripeGateway(url, "sk_test_bench", timeout_s=10)
            settler = PaymentSettler(database, gateway, PaymentPolicy(lease_s=60))
            began = time.perf_counter()
            settled = 0
            while settled < count:
                claimed = await settler.settle_batch(min(50, count - settled))
                if claimed == 0:
                    break
                settled += claimed
            elapsed = time.perf_counter() - began
            await gateway.close()
            async with http.get(url + "/_control/state") as response:
                state = await response.json()
        moved = sum((from_minor(m["amount"], "EUR") for m in state["movements"]), Decimal(0))
        return settled, elapsed, moved
    finally:
        process.kill()
        await process.wait()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    name = f"fairwatt_bench_billing_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database = Database(f"postgresql://postgres@127.0.0.1:5432/{name}", max_connections=args.workers + 2)
    database.add_migrations("sessions.migrations")
    database.add_migrations("billing.migrations")
    try:
        await database.open()
        rows = _sessions(args.sessions, args.seed)
        copy_s = await _seed(database, rows)
        print(f"inserted {len(rows)} completed sessions with COPY in {copy_s:.1f} s")
        anchor = _anchor(rows[: args.anchor])
        anchored = min(args.anchor, len(rows))
        print(f"anchor: pure pricing in memory {anchor:,.0f} sessions/s ({anchored} sessions)")
        rated, rate_s = await _rate_all(database, args.workers, args.batch)
        per_s = rated / rate_s if rate_s else 0.0
        print(
            f"rated {rated} sessions in {rate_s:.1f} s with {args.workers} worker(s), batch {args.batch}: "
            f"{per_s:,.0f} sessions/s ({per_s / anchor:.2f} x the in-memory anchor)"
        )
        again, _ = await _rate_all(database, 1, args.batch)
        periods = await database.pool.fetchval(
            "SELECT avg(jsonb_array_length(cdr->'charging_periods')) FROM billing_ratings"
        )
        lines = await database.pool.fetchval("SELECT count(*) FROM billing_line_items")
        print(
            f"second pass rated {again} (must be 0); {float(periods):.2f} charging periods and "
            f"{lines / max(rated, 1):.2f} receipt lines per session"
        )
        settled, capture_s, moved = await _capture(database, args.capture)
        if settled:
            speed = settled / capture_s
            print(f"captured {settled} payments at the test gateway in {capture_s:.1f} s: {speed:,.0f}/s")
        began = time.perf_counter()
        result = await reconcile(database)
        reconcile_s = time.perf_counter() - began
        gateway_agrees = moved == result.captured.get("EUR", Decimal(0))
        captured = result.captured.get("EUR", Decimal(0))
        print(
            f"reconciliation over {result.sessions} sessions in {reconcile_s:.2f} s: "
            f"rated {result.rated['EUR']} EUR = captured {captured} "
            f"+ outstanding {result.outstanding['EUR']}: "
            f"{'balanced' if result.balanced else 'NOT BALANCED'}; mismatched sessions "
            f"{len(result.mismatched_sessions)}; gateway movements {moved} EUR "
            f"{'=' if gateway_agrees else '!='} ledger payments"
        )
        return {
            "sessions": rated,
            "rate_per_s": per_s,
            "anchor_per_s": anchor,
            "second_pass": again,
            "captured": settled,
            "balanced": result.balanced and gateway_agrees and again == 0 and rated == args.sessions,
            "reconcile_s": reconcile_s,
        }
    finally:
        await database.close()
        if not args.keep_database:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def main(args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(run(args))
