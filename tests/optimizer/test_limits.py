"""Prices and base load laid out on the solve's period grid: hand-checked values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from optimizer import FeederNode, PricePeriod, Site
from optimizer.limits import base_load_kw, price_per_kwh

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def site(**kw: object) -> Site:
    return Site(grid_limit_kw=50.0, root=FeederNode("root"), **kw)  # type: ignore[arg-type]


def test_prices_are_averaged_over_a_change_inside_a_period() -> None:
    # 15-minute periods; 0.10 until 08:20, 0.40 from then: period 1 (08:15-08:30) is
    # 5 min at 0.10 and 10 min at 0.40 -> 0.30; the last price holds to the horizon's end
    prices = (PricePeriod(START, 0.10), PricePeriod(START + timedelta(minutes=20), 0.40))
    out = price_per_kwh(site(prices=prices), START, 900, 4)
    assert np.allclose(out, [0.10, 0.30, 0.40, 0.40], rtol=0, atol=1e-12)


def test_before_the_first_price_the_first_price_holds_and_order_does_not_matter() -> None:
    # given out of order, first known from 08:30: periods before it take 0.25
    prices = (PricePeriod(START + timedelta(hours=1), 0.05), PricePeriod(START + timedelta(minutes=30), 0.25))
    out = price_per_kwh(site(prices=prices), START, 900, 6)
    assert np.allclose(out, [0.25, 0.25, 0.25, 0.25, 0.05, 0.05], rtol=0, atol=1e-12)


def test_prices_that_started_before_the_solve_and_no_prices() -> None:
    prices = (PricePeriod(START - timedelta(hours=3), 0.2), PricePeriod(START + timedelta(minutes=7.5), 0.1))
    # period 0 is half 0.2, half 0.1
    assert np.allclose(price_per_kwh(site(prices=prices), START, 900, 2), [0.15, 0.1], rtol=0, atol=1e-12)
    assert not price_per_kwh(site(), START, 900, 3).any()


def test_base_load_is_zero_before_its_forecast_and_holds_its_last_value_after() -> None:
    forecast = site(base_load_kw=(1.0, 2.0, 3.0), base_load_start=START + timedelta(minutes=30))
    out = base_load_kw(forecast, START, 900, 7)
    assert out.tolist() == [0.0, 0.0, 1.0, 2.0, 3.0, 3.0, 3.0]
    later = base_load_kw(forecast, START + timedelta(hours=1), 900, 2)
    assert later.tolist() == [3.0, 3.0]
    assert not base_load_kw(site(), START, 900, 3).any()
