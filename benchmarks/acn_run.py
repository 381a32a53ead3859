"""One ACN-Sim run (one algorithm, one transformer cap, one set of sessions) and its figures.

Every algorithm runs through the same simulator: ``caltech_acn(basic_evse=True, 208 V,
transformer_cap)``, the SCE TOU EV-4 tariff of March 2019 and 5-minute periods, as in the
caltech-netlab/acnportal-experiments notebook 2.1. Limits are checked on what the cars
actually drew (``constraint_currents``) and on the pilots the scheduler sent.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from acnportal import acnsim, algorithms
from acnportal.acnsim import analysis
from acnportal.signals.tariffs import TimeOfUseTariff

from benchmarks.acn_adapter import CallStats, FairwattAlgorithm, OfflineReplay, make_events
from benchmarks.caltech_site import EPOCH, PERIOD_MIN, VOLTAGE_V, SessionRow

TARIFF = "sce_tou_ev_4_march_2019"
VIOLATION_TOLERANCE = 1e-6  # relative: a constraint over limit * (1 + this) is a violation

OURS = "fairwatt"
OURS_AMP = "fairwatt-1A-6A"  # whole-amp pilots, 6 A minimum
OURS_NO_FORECAST = "fairwatt-no-forecast"  # without the sessions expected from earlier days
OURS_MEAN_FORECAST = "fairwatt-mean-forecast"  # earlier days' mean, not each day a scenario
# what a kWh of a session expected from earlier days is worth against a car present's: measured on
# 4 weekdays at 20 and 30 kW, 0.2 / 0.5 / 0.9 gave 74.33 / 74.45 / 74.50 % and 93.37 / 93.33 / 93.27 %
FORECAST_WEIGHT = 0.5
OFFLINE = "offline"
ALGORITHMS: tuple[str, ...] = (OURS, OURS_AMP, "uncontrolled", "round-robin", "edf", "llf", OFFLINE)
EXTRA_ALGORITHMS: tuple[str, ...] = (OURS_NO_FORECAST, OURS_MEAN_FORECAST)  # on request only
LABELS = {
    OURS: "fairwatt (ours)",
    OURS_AMP: "fairwatt 1 A steps, 6 A min",
    OURS_NO_FORECAST: "fairwatt without forecast",
    OURS_MEAN_FORECAST: "fairwatt, mean forecast",
    "uncontrolled": "acnportal Uncontrolled",
    "round-robin": "acnportal RoundRobin",
    "edf": "acnportal EDF",
    "llf": "acnportal LLF",
    OFFLINE: "offline optimum (fairwatt LP)",
}


@dataclass(frozen=True, slots=True)
class RunFigures:
    """What one run achieved. Percentages are 0-100; utilisation is the worst current over its limit."""

    algorithm: str
    cap_kw: float
    sessions: int
    requested_kwh: float
    delivered_kwh: float
    energy_pct: float
    energy_cost: float
    peak_kw: float
    max_utilisation_drawn: float
    violations_drawn: int  # (constraint, period) pairs over the limit, on the currents drawn
    max_utilisation_pilot: float
    violations_pilot: int  # the same on the pilots sent
    worst_constraint: str
    wall_s: float
    calls: int
    solve_ms_p50: float | None
    solve_ms_p95: float | None
    solve_ms_max: float | None
    max_active_sessions: int
    statuses: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_algorithm(name: str, cap_kw: float, rows: Sequence[SessionRow]) -> Any:
    """The scheduler ``name`` for a site whose transformer is rated ``cap_kw``."""
    if name == OURS:
        return FairwattAlgorithm(cap_kw, forecast_weight=FORECAST_WEIGHT)
    if name == OURS_NO_FORECAST:
        return FairwattAlgorithm(cap_kw)
    if name == OURS_MEAN_FORECAST:
        return FairwattAlgorithm(cap_kw, forecast_weight=FORECAST_WEIGHT, scenarios=False)
    if name == OURS_AMP:
        return FairwattAlgorithm(cap_kw, min_current_a=6.0, step_a=1.0, forecast_weight=FORECAST_WEIGHT)
    if name == OFFLINE:
        return OfflineReplay(rows, cap_kw)
    if name == "uncontrolled":
        return algorithms.UncontrolledCharging()
    if name == "round-robin":  # the notebook's choice
        return algorithms.RoundRobin(algorithms.first_come_first_served)
    if name == "edf":
        return algorithms.SortedSchedulingAlgo(algorithms.earliest_deadline_first)
    if name == "llf":
        return algorithms.SortedSchedulingAlgo(algorithms.least_laxity_first)
    raise ValueError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS + EXTRA_ALGORITHMS)}")


def make_simulator(scheduler: Any, rows: Sequence[SessionRow], cap_kw: float) -> Any:
    network = acnsim.sites.caltech_acn(basic_evse=True, voltage=VOLTAGE_V, transformer_cap=cap_kw)
    signals = {"tariff": TimeOfUseTariff(TARIFF)}
    return acnsim.Simulator(
        network, scheduler, make_events(rows), EPOCH, period=PERIOD_MIN, signals=signals, verbose=False
    )


def _utilisation(sim: Any, currents: np.ndarray[Any, Any]) -> tuple[float, int, str]:
    magnitudes = np.asarray(sim.network.magnitudes, dtype=np.float64)
    use = np.abs(sim.network.constraint_current(currents)) / magnitudes[:, None]
    if use.size == 0:
        return 0.0, 0, ""
    worst = np.unravel_index(int(np.argmax(use)), use.shape)
    return (
        float(use[worst]),
        int(np.count_nonzero(use > 1.0 + VIOLATION_TOLERANCE)),
        str(sim.network.constraint_index[worst[0]]),
    )


def _percentiles_ms(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    ms = np.asarray(values, dtype=np.float64) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), float(ms.max())


def run(name: str, cap_kw: float, rows: Sequence[SessionRow]) -> RunFigures:
    """Simulate ``rows`` at a transformer cap of ``cap_kw`` [kW] with scheduler ``name``."""
    scheduler = make_algorithm(name, cap_kw, rows)
    sim = make_simulator(scheduler, rows, cap_kw)
    began = time.perf_counter()
    with warnings.catch_warnings():
        # Uncontrolled overloads the site by design; ACN-Sim warns on every such schedule.
        warnings.simplefilter("ignore", UserWarning)
        logging.getLogger("optimizer").setLevel(logging.CRITICAL)
        sim.run()
    wall_s = time.perf_counter() - began
    drawn, n_drawn, worst = _utilisation(sim, sim.charging_rates)
    pilot, n_pilot, _ = _utilisation(sim, sim.pilot_signals)
    stats: CallStats | None = getattr(scheduler, "stats", None)
    if stats is not None and stats.solve_s:
        p50, p95, top = _percentiles_ms(stats.solve_s)
        calls, max_active, statuses = len(stats.solve_s), max(stats.sessions, default=0), stats.statuses
    else:
        solve_stats = getattr(scheduler, "solve_stats", [])
        p50, p95, top = _percentiles_ms([float(s["solve_time"]) for s in solve_stats])
        calls = len(solve_stats)
        max_active = max((int(s["active_sessions"]) for s in solve_stats), default=0)
        statuses = {}
    power_kw = analysis.aggregate_power(sim)
    return RunFigures(
        algorithm=name,
        cap_kw=cap_kw,
        sessions=len(sim.ev_history),
        requested_kwh=float(analysis.total_energy_requested(sim)),
        delivered_kwh=float(analysis.total_energy_delivered(sim)),
        energy_pct=100.0 * float(analysis.proportion_of_energy_delivered(sim)),
        energy_cost=float(analysis.energy_cost(sim)),
        peak_kw=float(np.max(power_kw, initial=0.0)),
        max_utilisation_drawn=drawn,
        violations_drawn=n_drawn,
        max_utilisation_pilot=pilot,
        violations_pilot=n_pilot,
        worst_constraint=worst,
        wall_s=wall_s,
        calls=calls,
        solve_ms_p50=p50,
        solve_ms_p95=p95,
        solve_ms_max=top,
        max_active_sessions=max_active,
        statuses=dict(statuses),
    )
