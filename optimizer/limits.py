"""Time-varying site limits and prices laid out on the period grid of a solve."""

from __future__ import annotations

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


def base_load_kw(site: Site, start: datetime, period_s: int, periods: int) -> FloatArray:
    """The non-EV load forecast on the solve's grid [kW] (zero where none is known)."""
    out = np.zeros(periods, dtype=np.float64)
    if not site.base_load_kw or site.base_load_start is None:
        return out
    offset = round((start - site.base_load_start).total_seconds() / period_s)
    forecast = np.asarray(site.base_load_kw, dtype=np.float64)
    for t in range(periods):
        k = offset + t
        if 0 <= k < forecast.size:
            out[t] = forecast[k]
        elif k >= forecast.size:
            out[t] = forecast[-1]
    return out


def price_per_kwh(site: Site, start: datetime, period_s: int, periods: int) -> FloatArray:
    """Energy price per period [currency/kWh], averaged over price changes inside a period."""
    out = np.zeros(periods, dtype=np.float64)
    if not site.prices:
        return out
    prices = sorted(site.prices, key=lambda p: p.start)
    edges = [p.start for p in prices]
    for t in range(periods):
        t0 = start + timedelta(seconds=period_s * t)
        t1 = t0 + timedelta(seconds=period_s)
        total = 0.0
        for k, price in enumerate(prices):
            seg0 = max(t0, edges[k])
            seg1 = min(t1, edges[k + 1]) if k + 1 < len(edges) else t1
            if seg1 > seg0:
                total += price.price_per_kwh * (seg1 - seg0).total_seconds()
        before = t0 < edges[0]
        if before:  # before the first known price: assume the first price held
            total += prices[0].price_per_kwh * (min(t1, edges[0]) - t0).total_seconds()
        out[t] = total / period_s
    return out
