"""Rows for the billing tests, inserted directly (the schema is the contract with sessions/)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.gateway import PaymentGateway
from billing.holds import GatewayHolds
from billing.payments import Checkpoint, PaymentPolicy, PaymentSettler
from billing.rater import Rater
from billing.stripe import StripeGateway
from billing.worker import BillingWorker
from csms.storage.database import Database
from sessions.tariff_store import TariffStore

START = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # a Monday, 17:00 in Berlin

# 0.50 flat, 0.30 EUR/kWh, 6.00 EUR per idle hour (per started minute), all + 19 % VAT.
SIMPLE_TARIFF: dict[str, Any] = {
    "id": "SIMPLE",
    "currency": "EUR",
    "start_date_time": "2020-01-01T00:00:00Z",
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": 0.50, "vat": 19, "step_size": 1},
                {"type": "ENERGY", "price": 0.30, "vat": 19, "step_size": 1},
                {"type": "PARKING_TIME", "price": 6.00, "vat": 19, "step_size": 60},
            ]
        }
    ],
}

TEST_POLICY = PaymentPolicy(
    max_declines=3, decline_backoff_s=60, unknown_backoff_s=1, unknown_backoff_max_s=5, lease_s=30
)


async def seed_charger(
    database: Database,
    charger_id: str,
    *,
    tariff: dict[str, Any] = SIMPLE_TARIFF,
    time_zone: str = "Europe/Berlin",
    cpo_id: str = "CPO1",
) -> None:
    pool = database.pool
    station_id = f"ST-{charger_id}"
    await pool.execute(
        """INSERT INTO stations (station_id, cpo_id, name, time_zone, address)
           VALUES ($1, $2, $3, $4, 'Hauptstr. 1, Berlin') ON CONFLICT DO NOTHING""",
        station_id,
        cpo_id,
        f"Station <{charger_id}>",
        time_zone,
    )
    await pool.execute(
        "INSERT INTO chargers (charger_id, station_id, cpo_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        charger_id,
        station_id,
        cpo_id,
    )
    store = TariffStore(database)
    if await store.versions(tariff["id"], fresh=True) is None:
        await store.publish(tariff, cpo_id=cpo_id, created_by="test")
    await store.assign("charger", charger_id, tariff["id"])


async def seed_driver(database: Database, driver_id: str, token: str = "pm_card_visa") -> str:
    """A driver with one default payment method (only the provider's token); its id."""
    await database.pool.execute(
        "INSERT INTO drivers (driver_id, cpo_id) VALUES ($1, 'CPO1') ON CONFLICT DO NOTHING", driver_id
    )
    payment_method_id = f"pmid-{driver_id}"
    await database.pool.execute(
        """INSERT INTO payment_methods (payment_method_id, driver_id, provider, provider_token, is_default)
           VALUES ($1, $2, 'stripe', $3, true)
           ON CONFLICT (payment_method_id) DO UPDATE SET provider_token = excluded.provider_token""",
        payment_method_id,
        driver_id,
        token,
    )
    return payment_method_id


async def completed_session(
    database: Database,
    *,
    charger_id: str,
    driver_id: str,
    energy_wh: float = 20_000.0,
    minutes: float = 60.0,
    start: datetime = START,
    meter_start_wh: float = 1_000_000.0,
    tariff_id: str | None = None,
    time_zone: str = "Europe/Berlin",
    samples: Sequence[tuple[float, float]] = (),
    state: str = "COMPLETED",
    session_id: str | None = None,
) -> str:
    """A COMPLETED ``charging_sessions`` row; ``samples`` are (minutes after start, Wh since start)."""
    session_id = session_id or str(uuid.uuid4())
    transaction_id = f"tx-{session_id[:8]}"
    await database.pool.execute(
        """INSERT INTO charging_sessions (session_id, driver_id, charger_id, evse_id, connector_id, state,
               origin, payment_method_id, transaction_id, tariff_id, time_zone, meter_start_wh, meter_stop_wh,
               started_at, ended_at)
           VALUES ($1, $2, $3, 1, 1, $4, 'app', $5, $6, $7, $8, $9, $10, $11, $12)""",
        uuid.UUID(session_id),
        driver_id,
        charger_id,
        state,
        f"pmid-{driver_id}",
        transaction_id,
        tariff_id,
        time_zone,
        meter_start_wh,
        meter_start_wh + energy_wh,
        start,
        start + timedelta(minutes=minutes),
    )
    for offset_min, wh in samples:
        await database.pool.execute(
            """INSERT INTO meter_samples (charger_id, evse_id, transaction_id, sampled_at, measurand,
                   value, unit)
               VALUES ($1, 1, $2, $3, 'Energy.Active.Import.Register', $4, 'Wh')""",
            charger_id,
            transaction_id,
            start + timedelta(minutes=offset_min),
            meter_start_wh + wh,
        )
    return session_id


def make_worker(
    database: Database,
    gateway: PaymentGateway,
    *,
    checkpoint: Checkpoint | None = None,
    policy: PaymentPolicy = TEST_POLICY,
) -> BillingWorker:
    return BillingWorker(
        Rater(database, TariffStore(database)),
        PaymentSettler(database, gateway, policy, checkpoint=checkpoint),
        poll_interval_s=0.05,
        holds=GatewayHolds(database, gateway, amount=Decimal("50.00"), currency="EUR"),
    )


async def make_due(database: Database) -> None:
    """Let every wait (lease, backoff) end now: what the passing of time does, without sleeping."""
    await database.pool.execute(
        """UPDATE billing_payments SET next_attempt_at = now()
           WHERE state IN ('rated', 'capture_pending', 'retrying')"""
    )


async def payment_states(database: Database) -> dict[str, str]:
    rows = await database.pool.fetch(
        "SELECT session_id::text AS s, state FROM billing_payments WHERE revision = 1"
    )
    return {row["s"]: row["state"] for row in rows}


def eur(text: str) -> Decimal:
    return Decimal(text)


@asynccontextmanager
async def stripe_client(base_url: str, *, timeout_s: float) -> AsyncIterator[StripeGateway]:
    """The Stripe adapter on ``base_url`` (the local test gateway), closed afterwards."""
    client = StripeGateway(base_url, "sk_test_x", timeout_s=timeout_s)
    try:
        yield client
    finally:
        await client.close()
