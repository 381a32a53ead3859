"""Power and current restrictions in billing: periods get MIN/MAX_POWER and MIN/MAX_CURRENT from the
charger's samples and are split where the power or current crosses a tariff threshold."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.electrical import NO_SAMPLES, electrical_of
from billing.rater import Rater
from billing.rating import charging_periods, rate
from csms.storage.database import Database
from sessions.tariff_store import TariffStore
from tariffs.cdr import CdrDimension
from tariffs.ocpi import parse_tariff
from tests.billing.helpers import START, completed_session, seed_charger, seed_driver
from tests.billing.test_rating import session

# OCPI's example shape: a higher price per kWh at 50 kW and above.
FAST: dict[str, Any] = {
    "id": "FAST",
    "currency": "EUR",
    "start_date_time": "2020-01-01T00:00:00Z",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": 0.59, "step_size": 1}],
            "restrictions": {"min_power": 50},
        },
        {"price_components": [{"type": "ENERGY", "price": 0.39, "step_size": 1}]},
    ],
}
# Below 16 A (all phases together) energy is cheaper.
SLOW_CURRENT = parse_tariff(
    {
        "id": "AMPS",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [{"type": "ENERGY", "price": 0.20, "step_size": 1}],
                "restrictions": {"max_current": 16},
            },
            {"price_components": [{"type": "ENERGY", "price": 0.40, "step_size": 1}]},
        ],
    }
)


def power(minute: float, watts: float, phase: str = "") -> tuple[datetime, str, str, float, str]:
    return (START + timedelta(minutes=minute), "Power.Active.Import", phase, watts, "W")


def amps(minute: float, value: float, phase: str) -> tuple[datetime, str, str, float, str]:
    return (START + timedelta(minutes=minute), "Current.Import", phase, value, "A")


def test_a_period_above_the_power_threshold_is_priced_by_the_fast_element() -> None:
    # 60 kW for 20 min, then 40 kW: 30 kWh over the hour, spread linearly (no register samples).
    electrical = electrical_of([power(0, 60_000), power(10, 55_000), power(20, 40_000), power(45, 30_000)])
    tariff = parse_tariff(FAST)
    periods = charging_periods(
        session(minutes=60, energy_wh=30_000), tariff, charging_end=None, electrical=electrical
    )
    # Split only where 50 kW is crossed (at 20 min), not at the other samples.
    assert [p.start_utc for p in periods.charging_periods] == [START, START + timedelta(minutes=20)]
    first, second = (p.dimensions for p in periods.charging_periods)
    assert (first[CdrDimension.MIN_POWER], first[CdrDimension.MAX_POWER]) == (Decimal(55), Decimal(60))
    assert (second[CdrDimension.MIN_POWER], second[CdrDimension.MAX_POWER]) == (Decimal(30), Decimal(40))
    totals = rate(session(minutes=60, energy_wh=30_000), tariff, charging_end=None, electrical=electrical)
    # 10 kWh at 0.59 above 50 kW, 20 kWh at 0.39 below.
    assert totals.total_energy_cost.excl_vat == Decimal("5.90") + Decimal("7.80")
    assert totals.total_energy_kwh == Decimal(30)


def test_a_current_restriction_sums_the_phases_and_splits_where_it_is_crossed() -> None:
    # 3 x 5 A = 15 A (below 16 A) for 30 min, then 3 x 10 A = 30 A.
    rows = [amps(0, 5, p) for p in ("L1", "L2", "L3")] + [amps(30, 10, p) for p in ("L1", "L2", "L3")]
    totals = rate(
        session(minutes=60, energy_wh=20_000), SLOW_CURRENT, charging_end=None, electrical=electrical_of(rows)
    )
    assert [p.dimensions[CdrDimension.MAX_CURRENT] for p in totals.charging_periods] == [
        Decimal(15),
        Decimal(30),
    ]
    assert totals.total_energy_cost.excl_vat == Decimal("2.00") + Decimal("4.00")


def test_idle_periods_carry_no_power_and_kw_samples_are_read_as_kw() -> None:
    electrical = electrical_of([(START, "Power.Active.Import", "", 60.0, "kW")])
    totals = rate(
        session(minutes=60, energy_wh=30_000),
        parse_tariff(FAST),
        charging_end=START + timedelta(minutes=30),
        electrical=electrical,
    )
    charging, idle = totals.charging_periods
    assert charging.dimensions[CdrDimension.MAX_POWER] == Decimal(60)
    assert CdrDimension.MAX_POWER not in idle.dimensions
    assert totals.total_energy_cost.excl_vat == Decimal(30) * Decimal("0.59")


def test_without_samples_power_restricted_elements_never_apply() -> None:
    tariff = parse_tariff(FAST)
    totals = rate(session(minutes=60, energy_wh=30_000), tariff, charging_end=None, electrical=NO_SAMPLES)
    assert len(totals.charging_periods) == 1
    assert CdrDimension.MAX_POWER not in totals.charging_periods[0].dimensions
    assert totals.total_energy_cost.excl_vat == Decimal(30) * Decimal("0.39")


@pytest.mark.asyncio
async def test_the_rater_reads_power_samples_of_the_sessions_evse_and_transaction(database: Database) -> None:
    await seed_charger(database, "CP-KW", tariff=FAST)
    await seed_driver(database, "pat")
    session_id = await completed_session(
        database, charger_id="CP-KW", driver_id="pat", energy_wh=30_000, minutes=60, samples=[(20, 10_000)]
    )
    transaction_id = f"tx-{session_id[:8]}"
    for evse_id, minute, watts in ((1, 0, 60_000), (1, 20, 40_000), (2, 0, 10_000)):
        await database.pool.execute(
            """INSERT INTO meter_samples (charger_id, evse_id, transaction_id, sampled_at, measurand,
                   value, unit)
               VALUES ('CP-KW', $1, $2, $3, 'Power.Active.Import', $4, 'W')""",
            evse_id,
            transaction_id,
            START + timedelta(minutes=minute),
            watts,
        )
    assert await Rater(database, TariffStore(database)).rate_batch() == 1
    row = await database.pool.fetchrow(
        "SELECT total_excl_vat, cdr FROM billing_ratings WHERE session_id = $1::uuid", session_id
    )
    assert row["total_excl_vat"] == Decimal("13.70")  # 10 kWh at 0.59 + 20 kWh at 0.39


@given(
    watts=st.lists(st.integers(min_value=0, max_value=150_000), min_size=1, max_size=12),
    thresholds_kw=st.lists(st.integers(min_value=1, max_value=150), min_size=1, max_size=3),
    idle_minutes=st.integers(min_value=0, max_value=59),
)
def test_every_period_lies_on_one_side_of_every_threshold_and_energy_is_counted_once(
    watts: list[int], thresholds_kw: list[int], idle_minutes: int
) -> None:
    elements: list[dict[str, Any]] = [
        {
            "price_components": [{"type": "ENERGY", "price": 0.1 * (i + 2), "step_size": 1}],
            "restrictions": {"min_power": kw},
        }
        for i, kw in enumerate(thresholds_kw)
    ]
    elements.append({"price_components": [{"type": "ENERGY", "price": 0.10, "step_size": 1}]})
    tariff = parse_tariff({"id": "P", "currency": "EUR", "elements": elements})
    electrical = electrical_of([power(5 * i + 1, w) for i, w in enumerate(watts)])
    charged = session(minutes=60, energy_wh=25_000)
    end = START + timedelta(minutes=60 - idle_minutes)
    periods = charging_periods(charged, tariff, charging_end=end, electrical=electrical).charging_periods
    assert sum((p.dimensions.get(CdrDimension.ENERGY, Decimal(0)) for p in periods), Decimal(0)) == Decimal(
        25
    )
    for period in periods:
        if period.start_utc >= end:
            assert CdrDimension.MIN_POWER not in period.dimensions
            continue
        low, high = period.dimensions[CdrDimension.MIN_POWER], period.dimensions[CdrDimension.MAX_POWER]
        assert all((low >= kw) == (high >= kw) for kw in thresholds_kw)
