"""The solver's shortcuts compute exactly what their plain versions do (they exist for speed only)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from optimizer import ActiveSession, Network, Policy, StationSnapshot
from optimizer import lp as lp_model
from optimizer.limits import price_per_kwh
from optimizer.problem import prepare
from optimizer.types import PricePeriod
from tests.optimizer.caltech import caltech_evses, caltech_site

NOW = datetime(2019, 3, 5, 8, 0, tzinfo=UTC)


def snapshot(expected_on_shared_evse: bool = False) -> StationSnapshot:
    evses = caltech_evses()
    sessions = [
        ActiveSession(
            f"s{i}", e.evse_id, NOW - timedelta(minutes=10), NOW + timedelta(hours=2 + i % 5), 8.0 + i
        )
        for i, e in enumerate(evses[:20])
    ]
    if expected_on_shared_evse:  # two expected cars on an EVSE a car present is on
        later = NOW + timedelta(hours=1)
        sessions += [
            ActiveSession(
                f"x{k}", evses[0].evse_id, later, later + timedelta(hours=2), 5.0, forecast_weight=0.5
            )
            for k in range(2)
        ]
    prices = tuple(PricePeriod(NOW + timedelta(hours=h), 0.1 + 0.07 * (h % 3)) for h in range(26))
    site = replace(caltech_site(60.0), prices=prices)
    return StationSnapshot("caltech", NOW, site, evses, tuple(sessions), Policy(horizon_periods=288))


def test_currents_per_evse_add_up_like_add_at_also_on_shared_evses() -> None:
    for shared in (False, True):
        problem = prepare(snapshot(expected_on_shared_evse=shared))
        current = np.random.default_rng(0).uniform(0.0, 32.0, (problem.sessions, problem.periods))
        reference = np.zeros((len(problem.network.evse_ids), problem.periods))
        np.add.at(reference, problem.cols, current)
        assert np.array_equal(problem.per_evse(current), reference)


def test_price_per_period_is_the_same_as_one_period_at_a_time() -> None:
    rng = np.random.default_rng(1)
    site = caltech_site(60.0)
    for _ in range(200):
        starts = rng.integers(-3 * 3600, 30 * 3600, int(rng.integers(1, 12)))
        prices = tuple(
            PricePeriod(NOW + timedelta(seconds=int(s)), float(rng.uniform(-0.1, 0.5))) for s in starts
        )
        priced = replace(site, prices=prices)
        assert np.array_equal(price_per_kwh(priced, NOW, 300, 96), _price_reference(prices, 300, 96))


def _price_reference(prices: tuple[PricePeriod, ...], period_s: int, periods: int) -> np.ndarray:
    """Each period's price: the overlaps of the prices in force, added price by price, over its length."""
    ordered = sorted(prices, key=lambda p: p.start)
    out = np.zeros(periods)
    for t in range(periods):
        t0, t1 = NOW + timedelta(seconds=t * period_s), NOW + timedelta(seconds=(t + 1) * period_s)
        total = 0.0
        for k, price in enumerate(ordered):
            end = ordered[k + 1].start if k + 1 < len(ordered) else None
            lo, hi = max(t0, price.start), t1 if end is None else min(t1, end)
            if hi > lo:
                total += price.price_per_kwh * ((hi - lo).total_seconds())
        if t0 < ordered[0].start:  # before the first price: the first price held
            total += ordered[0].price_per_kwh * (min(t1, ordered[0].start) - t0).total_seconds()
        out[t] = total / period_s
    return out


def test_a_network_linearises_once_per_tolerance_and_stacks_its_rows_read_only() -> None:
    snap = snapshot()
    network = Network.build(snap.site, snap.evses)
    rows = network.linear_rows(0.002)
    assert network.linear_rows(0.002) is rows
    assert network.linear_rows(0.001) is not rows
    fresh = Network.build(snap.site, snap.evses).linearise(0.002)
    assert np.array_equal(rows.matrix, fresh.matrix)
    assert np.array_equal(rows.bound, fresh.bound)
    stacked = network.limit_rows(0.002)
    assert network.limit_rows(0.002) is stacked
    assert np.array_equal(stacked.coef, np.vstack([fresh.matrix, network.power_coef]))
    assert not stacked.coef.flags.writeable


def test_the_highs_lp_is_built_once_and_describes_the_columns() -> None:
    model = lp_model.build(prepare(snapshot()))
    lp = model.lp
    assert model.lp is lp  # costs set on it stay set (the CLI's --export-lp does so)
    columns = model.columns
    assert (lp.num_col_, lp.num_row_) == (columns.num_col, columns.num_row)
    assert np.array_equal(np.array(lp.a_matrix_.start_), columns.start)
    assert np.array_equal(np.array(lp.a_matrix_.index_), columns.index)
    assert np.array_equal(np.array(lp.a_matrix_.value_), columns.value)
    assert np.array_equal(np.array(lp.col_upper_), columns.col_upper)
    assert np.array_equal(np.array(lp.row_lower_), columns.row_lower)
