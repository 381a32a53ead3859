"""Draw a run: per-EVSE power stacked, station power against the limit and caps, price.

Uses matplotlib's Agg canvas directly (no pyplot, no global backend state).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fairwatt.simulation.engine import SimulationResult
from fairwatt.simulation.errors import SimulationError


def plot_run(result: SimulationResult, path: str | Path, *, dpi: int = 120) -> None:
    """Write the run's plot as a PNG to ``path`` (local time on the x axis)."""
    tz = result.station.time_zone
    hours = result.period_s / 3600.0
    times = np.arange(result.periods + 1, dtype=np.float64) * hours  # hours from the start
    used = [i for i in range(len(result.evse_ids)) if result.power_kw[i].any()]

    figure = Figure(figsize=(12, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    if used:
        stacked = np.concatenate([result.power_kw[used], result.power_kw[used][:, -1:]], axis=1)
        ax.stackplot(times, stacked, step="post", linewidth=0, alpha=0.75)
    total = np.append(result.station_power_kw, result.station_power_kw[-1])
    limit = np.append(result.limit_kw, result.limit_kw[-1])
    ax.step(times, total, where="post", color="black", linewidth=1.2, label="station power")
    ax.step(times, limit, where="post", color="tab:red", linewidth=1.5, label="limit (caps, base load)")
    ax.axhline(result.site.grid_limit_kw, color="tab:red", linestyle=":", linewidth=1, label="grid limit")
    for k, cap in enumerate(result.site.caps):
        begin = (cap.start - result.start).total_seconds() / 3600.0
        end = (cap.end - result.start).total_seconds() / 3600.0
        ax.axvspan(begin, end, color="tab:orange", alpha=0.15, label="peak event" if k == 0 else None)
    ax.set_ylabel("power [kW]")
    ax.set_ylim(0, max(float(limit.max()), float(total.max()), result.site.grid_limit_kw) * 1.1)
    ax.set_xlim(float(times[0]), float(times[-1]))
    ticks = _local_ticks(result)
    ax.set_xticks(
        [t * hours for t in ticks],
        [result.period_start(t).astimezone(tz).strftime("%m-%d\n%H:%M") for t in ticks],
    )
    ax.set_xlabel(f"local time ({tz.key})")

    prices = np.append(result.price_per_kwh, result.price_per_kwh[-1])
    price_ax = ax.twinx()
    price_ax.step(times, prices, where="post", color="tab:blue", linestyle="--", linewidth=1, label="price")
    price_ax.set_ylabel(f"price [{result.station.prices.currency}/kWh]")
    price_ax.set_ylim(0, float(prices.max()) * 1.3 if prices.max() > 0 else 1.0)

    handles, labels = ax.get_legend_handles_labels()
    price_handles, price_labels = price_ax.get_legend_handles_labels()
    ax.legend(handles + price_handles, labels + price_labels, loc="upper left", fontsize="small")
    first, last = result.days[0].isoformat(), result.days[-1].isoformat()
    span = first if first == last else f"{first} to {last}"
    ax.set_title(
        f"{result.station.station_id}: {result.algorithm}, {span} ({len(used)} EVSEs in use, stacked)"
    )
    try:
        figure.savefig(str(path), dpi=dpi, format="png")
    except OSError as exc:
        raise SimulationError(f"cannot write the plot {path}: {exc.strerror or exc}") from None


def _local_ticks(result: SimulationResult) -> list[int]:
    """Periods starting on a round local hour, about ten of them (local midnights on long runs)."""
    span_h = result.periods * result.period_s / 3600.0
    every_h = next((h for h in (1, 2, 3, 6, 12, 24, 48, 168) if span_h / h <= 10), 336)
    tz = result.station.time_zone
    ticks: list[int] = []
    for t in range(result.periods + 1):
        local = result.period_start(t).astimezone(tz)
        hour_of_week = local.weekday() * 24 + local.hour if every_h > 24 else local.hour
        if local.minute == 0 and local.second == 0 and hour_of_week % every_h == 0:
            ticks.append(t)
    return ticks
