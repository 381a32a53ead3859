"""Time-varying site limits and prices laid out on the period grid of a solve."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from optimizer.types import FloatArray, Site


def period_starts(start: datetime, period_s: int, periods: int) -> list[datetime]:
    return [start + timedelta(seconds=period_s * t) for t in range(periods)]


def power_limit_kw(site: Site, start: datetime, period_s: int, periods: int) -> FloatArray:
    """Import available to EVs per period [kW]: grid limit lowered by caps, minus base load.

    A cap applies to a period when the two overlap at all (conservative). Never negative.
    """
    limit = np.full(periods, site.grid_limit_kw, dtype=np.float64)
    period = timedelta(seconds=period_s)
    for cap in site.caps:
        first = int(np.floor((cap.start - start) / period))
        last = int(np.ceil((cap.end - start) / period))
        lo, hi = max(first, 0), min(last, periods)
        if lo < hi:
            limit[lo:hi] = np.minimum(limit[lo:hi], cap.cap_kw(site.grid_limit_kw))
    return np.maximum(limit - base_load_kw(site, start, period_s, periods), 0.0)


def evse_cap_a(
    site: Site, evse_ids: Sequence[str], start: datetime, period_s: int, periods: int
) -> FloatArray:
    """Per EVSE of ``evse_ids`` and period, the lowest :class:`EvseCap` in force [A] (inf: none).

    A cap applies to a period when the two overlap at all (conservative), as for site caps.
    """
    out = np.full((len(evse_ids), periods), np.inf)
    if not site.evse_caps:
        return out
    row = {evse_id: i for i, evse_id in enumerate(evse_ids)}
    period = timedelta(seconds=period_s)
    for cap in site.evse_caps:
        i = row.get(cap.evse_id)
        if i is None:
            continue
        lo = max(int(np.floor((cap.start - start) / period)), 0)
        hi = periods if cap.end is None else min(int(np.ceil((cap.end - start) / period)), periods)
        if lo < hi:
            out[i, lo:hi] = np.minimum(out[i, lo:hi], max(cap.max_current_a, 0.0))
    return out


def base_load_kw(site: Site, start: datetime, period_s: int, periods: int) -> FloatArray:
    """The non-EV load forecast on the solve's grid [kW] (zero where none is known)."""
    out = np.zeros(periods, dtype=np.float64)
    if not site.base_load_kw or site.base_load_start is None:
        return out
    offset = round((start - site.base_load_start).total_seconds() / period_s)
    forecast = np.asarray(site.base_load_kw, dtype=np.float64)
    k = offset + np.arange(periods)
    # before the forecast starts: zero; past its end: its last value holds
    inside = k >= 0
    out[inside] = forecast[np.minimum(k[inside], forecast.size - 1)]
    return out


def price_per_kwh(site: Site, start: datetime, period_s: int, periods: int) -> FloatArray:
    """Energy price per period [currency/kWh], averaged over price changes inside a period."""
    out = np.zeros(periods, dtype=np.float64)
    if not site.prices:
        return out
    prices = sorted(site.prices, key=lambda p: p.start)
    # all times as whole microseconds from ``start`` (exact, like timedelta arithmetic)
    edges_us = np.array([_micros(p.start - start) for p in prices], dtype=np.int64)
    t0 = np.arange(periods, dtype=np.int64) * (period_s * 1_000_000)
    t1 = t0 + period_s * 1_000_000
    # each price's overlap with each period it touches (price by price, so a period's overlaps
    # add up in the same order as one period at a time)
    end_us = np.append(edges_us[1:], np.iinfo(np.int64).max)  # the last price holds to the end
    lo = np.searchsorted(t1, edges_us, side="right")  # first period ending after each edge
    hi = np.searchsorted(t0, end_us, side="left")
    count = np.maximum(hi - lo, 0)
    which = np.repeat(np.arange(len(prices)), count)
    period = np.arange(which.size) - np.repeat(np.cumsum(count) - count - lo, count)
    seg0 = np.maximum(t0[period], edges_us[which])
    seg1 = np.minimum(t1[period], end_us[which])
    value = np.array([p.price_per_kwh for p in prices], dtype=np.float64)
    overlap_s = np.maximum(seg1 - seg0, 0) / 1e6
    total = np.bincount(period, weights=value[which] * overlap_s, minlength=periods).astype(np.float64)
    # before the first known price: assume the first price held
    before = t0 < edges_us[0]
    overlap = np.minimum(t1[before], edges_us[0]) - t0[before]
    total[before] += prices[0].price_per_kwh * (overlap / 1e6)
    out[:] = total / period_s
    return out


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
