"""What a run achieved, per local day and overall.

Session figures (energy % of requested, sessions served, fairness, profile changes)
count sessions by the local day they arrived; power figures (peak, cost, utilisation)
count the periods of that local day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from fairwatt.simulation.engine import SessionOutcome, SimulationResult
from optimizer.limits import base_load_kw
from optimizer.types import FloatArray

SERVED_SHARE = 0.99  # a session delivered at least this share of its request is fully served


@dataclass(frozen=True, slots=True)
class Metrics:
    """One row of the report. Ratios are ``None`` where nothing was there to measure."""

    label: str
    sessions: int
    requested_kwh: float
    delivered_kwh: float
    energy_delivered_pct: float | None
    sessions_served_pct: float | None
    peak_kw: float
    energy_kwh: float
    energy_cost: float
    cost_per_kwh: float | None
    jain_index: float | None
    max_utilisation: tuple[tuple[str, float], ...]
    profile_changes_per_session: float | None

    @property
    def worst_utilisation(self) -> float:
        return max((ratio for _, ratio in self.max_utilisation), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "sessions": self.sessions,
            "requested_kwh": round(self.requested_kwh, 3),
            "delivered_kwh": round(self.delivered_kwh, 3),
            "energy_delivered_pct": _round(self.energy_delivered_pct, 2),
            "sessions_served_pct": _round(self.sessions_served_pct, 2),
            "peak_kw": round(self.peak_kw, 3),
            "energy_kwh": round(self.energy_kwh, 3),
            "energy_cost": round(self.energy_cost, 4),
            "cost_per_kwh": _round(self.cost_per_kwh, 5),
            "jain_index": _round(self.jain_index, 4),
            "max_utilisation": {name: round(ratio, 3) for name, ratio in self.max_utilisation},
            "profile_changes_per_session": _round(self.profile_changes_per_session, 2),
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def share_served(outcome: SessionOutcome) -> float:
    """Delivered over requested, at most 1 (a request of 0 is fully served)."""
    requested = outcome.record.requested_energy_kwh
    if requested <= 0:
        return 1.0
    return min(outcome.delivered_kwh / requested, 1.0)


def jain_index(values: Sequence[float]) -> float | None:
    """Jain's fairness index ``(sum x)^2 / (n sum x^2)``: 1 when all equal, 1/n when one gets all."""
    if not values:
        return None
    x = np.asarray(values, dtype=np.float64)
    squares = float(np.sum(x * x))
    if squares == 0.0:
        return 1.0  # nobody got anything: equally (un)served
    return float(np.sum(x)) ** 2 / (x.size * squares)


def session_metrics(outcomes: Sequence[SessionOutcome]) -> dict[str, Any]:
    """The session half of a report row."""
    requested = sum(o.record.requested_energy_kwh for o in outcomes)
    delivered = sum(o.delivered_kwh for o in outcomes)
    shares = [share_served(o) for o in outcomes]
    n = len(outcomes)
    return {
        "sessions": n,
        "requested_kwh": requested,
        "delivered_kwh": delivered,
        "energy_delivered_pct": 100.0 * delivered / requested if requested > 0 else None,
        "sessions_served_pct": 100.0 * sum(s >= SERVED_SHARE for s in shares) / n if n else None,
        "jain_index": jain_index(shares),
        "profile_changes_per_session": sum(o.profile_changes for o in outcomes) / n if n else None,
    }


def period_metrics(result: SimulationResult, mask: FloatArray | np.ndarray[Any, Any]) -> dict[str, Any]:
    """The power half of a report row, over the periods where ``mask`` is true."""
    power_kw = result.station_power_kw[mask]
    energy_kwh = power_kw * (result.period_s / 3600.0)
    total_kwh = float(energy_kwh.sum())
    cost = float(np.sum(energy_kwh * result.price_per_kwh[mask]))
    utilisation = np.nan_to_num(result.utilisation[:, mask], nan=0.0)
    worst = utilisation.max(axis=1) if utilisation.shape[1] else np.zeros(len(result.constraint_names))
    return {
        "peak_kw": float(power_kw.max()) if power_kw.size else 0.0,
        "energy_kwh": total_kwh,
        "energy_cost": cost,
        "cost_per_kwh": cost / total_kwh if total_kwh > 0 else None,
        "max_utilisation": tuple(
            (name, float(ratio)) for name, ratio in zip(result.constraint_names, worst, strict=True)
        ),
    }


def local_dates(result: SimulationResult) -> list[date]:
    """The local date of every period's start."""
    tz = result.station.time_zone
    return [result.period_start(t).astimezone(tz).date() for t in range(result.periods)]


def day_metrics(result: SimulationResult) -> list[Metrics]:
    """One row per simulated local day."""
    tz = result.station.time_zone
    dates = np.array(local_dates(result))
    rows: list[Metrics] = []
    for day in result.days:
        outcomes = [o for o in result.outcomes if o.record.arrival.astimezone(tz).date() == day]
        rows.append(
            Metrics(
                label=day.isoformat(), **session_metrics(outcomes), **period_metrics(result, dates == day)
            )
        )
    return rows


def overall_metrics(result: SimulationResult) -> Metrics:
    """One row over every session and every period of the run."""
    mask = np.ones(result.periods, dtype=bool)
    return Metrics(label="overall", **session_metrics(result.outcomes), **period_metrics(result, mask))


def demand_charges(result: SimulationResult) -> list[dict[str, Any]]:
    """Per local calendar month simulated: the peak import (EVs plus base load) and what the
    station's demand charge makes of it. Empty when the station has no demand charge."""
    rate = result.site.demand_charge_per_kw
    if rate <= 0 or result.periods == 0:
        return []
    tz = result.station.time_zone
    local = (result.period_start(t).astimezone(tz) for t in range(result.periods))
    months = np.array([f"{d.year:04d}-{d.month:02d}" for d in local])
    base_kw = base_load_kw(result.site, result.start, result.period_s, result.periods)
    import_kw = result.station_power_kw + base_kw
    out = []
    for month in dict.fromkeys(months.tolist()):
        peak_kw = float(import_kw[months == month].max())
        out.append({"month": month, "peak_kw": round(peak_kw, 3), "charge": round(peak_kw * rate, 2)})
    return out


def session_rows(result: SimulationResult) -> list[dict[str, Any]]:
    """Every session played, in file order: where and when (local time), what it asked for and got."""
    tz = result.station.time_zone
    rows = []
    for o in sorted(result.outcomes, key=lambda o: o.record.line):
        r = o.record
        rows.append(
            {
                "session_id": r.session_id,
                "line": r.line,
                "evse_id": r.evse_id,
                "arrival": r.arrival.astimezone(tz).isoformat(),
                "departure": r.departure.astimezone(tz).isoformat(),
                "requested_kwh": round(r.requested_energy_kwh, 3),
                "delivered_kwh": round(o.delivered_kwh, 3),
                "served_pct": round(100.0 * share_served(o), 2),
                "profile_changes": o.profile_changes,
            }
        )
    return rows
