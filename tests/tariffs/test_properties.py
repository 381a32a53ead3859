"""Property: with a linear tariff, where a session's periods are split does not change its price.

Linear: no step_size (0), no min/max price, no restrictions, so every dimension is priced at one
rate. Splitting a period at any instant (into two periods whose volumes add up to the original's)
must give exactly the same totals. Instants are whole multiples of 36 s, so hours have two exact
decimals and all arithmetic is exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tariffs.cdr import CdrDimension, ChargingPeriod, Session
from tariffs.engine import price_session
from tariffs.model import DimensionType, PriceComponent, Tariff, TariffElement

UNIT_S = 36  # 0.01 h
HOURS_PER_UNIT = Decimal("0.01")
START = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)

prices = st.decimals(min_value=0, max_value=10, places=2)
vats = st.one_of(st.none(), st.sampled_from([Decimal(0), Decimal(7), Decimal(19), Decimal("20.5")]))


@st.composite
def linear_tariffs(draw: st.DrawFn) -> Tariff:
    components = tuple(
        PriceComponent(dimension, draw(prices), 0, draw(vats))
        for dimension in (
            DimensionType.FLAT,
            DimensionType.ENERGY,
            DimensionType.TIME,
            DimensionType.PARKING_TIME,
        )
    )
    return Tariff(tariff_id="LIN", currency="EUR", elements=(TariffElement(components),))


# A period: (length in 36 s units, charging?, energy in Wh).
period_specs = st.lists(
    st.tuples(
        st.integers(min_value=2, max_value=300), st.booleans(), st.integers(min_value=0, max_value=60_000)
    ),
    min_size=1,
    max_size=5,
)


def _period(start: datetime, units: int, charging: bool, energy_wh: int) -> ChargingPeriod:
    hours = units * HOURS_PER_UNIT
    if charging:
        dimensions = {CdrDimension.ENERGY: Decimal(energy_wh) / 1000, CdrDimension.TIME: hours}
    else:
        dimensions = {CdrDimension.PARKING_TIME: hours}
    return ChargingPeriod(start, dimensions)


def _session(specs: list[tuple[int, bool, int]]) -> Session:
    periods, start = [], START
    for units, charging, energy_wh in specs:
        periods.append(_period(start, units, charging, energy_wh))
        start += timedelta(seconds=units * UNIT_S)
    return Session(START, tuple(periods), start)


@given(linear_tariffs(), period_specs, st.data())
def test_splitting_a_period_at_any_instant_keeps_the_totals(
    tariff: Tariff, specs: list[tuple[int, bool, int]], data: st.DataObject
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(specs) - 1), label="period")
    units, charging, energy_wh = specs[index]
    cut = data.draw(st.integers(min_value=1, max_value=units - 1), label="cut")
    first_wh = data.draw(st.integers(min_value=0, max_value=energy_wh), label="energy before the cut")
    split = [
        *specs[:index],
        (cut, charging, first_wh),
        (units - cut, charging, energy_wh - first_wh),
        *specs[index + 1 :],
    ]

    whole = price_session(tariff, _session(specs), UTC)
    parts = price_session(tariff, _session(split), UTC)

    assert parts.total_cost == whole.total_cost
    assert (
        parts.total_energy_cost,
        parts.total_time_cost,
        parts.total_parking_cost,
        parts.total_fixed_cost,
    ) == (
        whole.total_energy_cost,
        whole.total_time_cost,
        whole.total_parking_cost,
        whole.total_fixed_cost,
    )
    assert (parts.total_energy_kwh, parts.total_time_h, parts.total_parking_time_h) == (
        whole.total_energy_kwh,
        whole.total_time_h,
        whole.total_parking_time_h,
    )
