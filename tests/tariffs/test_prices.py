"""Prices at an instant: the driver's current price and the solver's time-of-use prices."""

from __future__ import annotations

from datetime import UTC, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from tariffs.engine import energy_price_per_kwh_at, energy_prices, prices_at
from tariffs.model import DayOfWeek, DimensionType, Restrictions
from tests.tariffs.builders import D, at, component, element, tariff

BERLIN = ZoneInfo("Europe/Berlin")
TOU = tariff(
    element(
        component(DimensionType.ENERGY, "0.20", vat="19"),
        restrictions=Restrictions(start_time=time(22), end_time=time(6)),
    ),
    element(
        component(DimensionType.ENERGY, "0.45", vat="19"),
        restrictions=Restrictions(
            days_of_week=frozenset({DayOfWeek.MONDAY}), start_time=time(17), end_time=time(20)
        ),
    ),
    element(component(DimensionType.ENERGY, "0.35", vat="19"), component(DimensionType.PARKING_TIME, "3.00")),
)


def test_energy_price_now_is_looked_up_in_local_time() -> None:
    assert energy_price_per_kwh_at(TOU, at("2024-01-15T21:30"), BERLIN) == D("0.20")  # 22:30 local
    assert energy_price_per_kwh_at(TOU, at("2024-01-15T21:30"), UTC) == D("0.35")  # 21:30 UTC
    assert energy_price_per_kwh_at(TOU, at("2024-01-15T16:00"), BERLIN) == D("0.45")  # Monday 17:00 local


def test_energy_price_with_vat_and_free_energy() -> None:
    assert energy_price_per_kwh_at(TOU, at("2024-01-16T12:00"), BERLIN, include_vat=True) == D("0.4165")
    parking_only = tariff(element(component(DimensionType.PARKING_TIME, "2.00")))
    assert energy_price_per_kwh_at(parking_only, at("2024-01-16T12:00"), BERLIN) == Decimal(0)


def test_energy_prices_over_a_horizon_follow_the_time_of_use_windows() -> None:
    # Monday 15 Jan 2024, from 15:00 Berlin (14:00Z) in 2-hour steps: 15, 17, 19, 21, 23, 01 local.
    prices = energy_prices(TOU, at("2024-01-15T14:00"), 7200, 6, BERLIN)
    assert prices == [D("0.35"), D("0.45"), D("0.45"), D("0.35"), D("0.20"), D("0.20")]


def test_prices_at_gives_every_priced_dimension() -> None:
    found = prices_at(TOU, at("2024-01-16T12:00"), BERLIN)
    assert set(found) == {DimensionType.ENERGY, DimensionType.PARKING_TIME}
    assert found[DimensionType.PARKING_TIME].price == D("3.00")


def test_weekday_is_the_local_one() -> None:
    saturday_nights = tariff(
        element(
            component(DimensionType.ENERGY, "0.15"),
            restrictions=Restrictions(days_of_week=frozenset({DayOfWeek.SATURDAY}), end_time=time(2)),
        ),
        element(component(DimensionType.ENERGY, "0.35")),
    )
    # Friday 19 Jan 2024 23:30Z is Saturday 00:30 in Berlin.
    assert energy_price_per_kwh_at(saturday_nights, at("2024-01-19T23:30"), BERLIN) == D("0.15")
    assert energy_price_per_kwh_at(saturday_nights, at("2024-01-19T23:30"), UTC) == D("0.35")
