"""Versioned tariffs in PostgreSQL: a new version applies to sessions that start after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.sessions.conftest import RunningApi


def _tariff(price_per_kwh: float) -> dict[str, Any]:
    return {
        "id": "standard",
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": price_per_kwh, "step_size": 1}]}],
    }


@pytest.mark.asyncio
async def test_charger_gets_its_stations_tariff_version_in_force(api: RunningApi) -> None:
    pool = api.csms.database.pool
    await pool.execute("INSERT INTO stations (station_id, time_zone) VALUES ('st-1', 'Europe/Berlin')")
    await pool.execute("INSERT INTO chargers (charger_id, station_id) VALUES ('cp-1', 'st-1')")
    store = api.sessions.tariffs
    assert await store.for_charger("cp-1") is None
    first_at = datetime(2026, 11, 1, 8, tzinfo=UTC)
    await store.publish(_tariff(0.30), cpo_id="cpo-a", created_by="alice", now=first_at)
    await store.assign("station", "st-1", "standard")
    await store.publish(_tariff(0.40), cpo_id="cpo-a", created_by="alice", now=first_at + timedelta(days=1))
    priced = await store.for_charger("cp-1", fresh=True)
    assert priced is not None
    assert priced.time_zone == "Europe/Berlin"
    before = priced.versions.in_force_at(first_at + timedelta(hours=1))
    after = priced.versions.in_force_at(first_at + timedelta(days=2))
    assert before.elements[0].price_components[0].price == Decimal("0.30")
    assert after.elements[0].price_components[0].price == Decimal("0.40")
    await store.publish({**_tariff(0.50), "id": "own"}, cpo_id="cpo-a", created_by=None, now=first_at)
    await store.assign("charger", "cp-1", "own")
    own = await store.for_charger("cp-1")
    assert own is not None
    assert own.tariff_id == "own"
