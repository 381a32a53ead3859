"""Synthetic dense days through the same ACN-Sim path (``python -m benchmarks synthetic``).

Each day has ``sessions_per_day`` arrivals (default 100) on the 54 Caltech EVSEs, 80 % of
them clustered 7-10 am (normal around 8:30) and the rest spread 10 am-4 pm; stays of
1.5-10 h; each car asks for 30-95 % of what 6.6 kW could give it over its stay. A session
takes a free EVSE at random; when none is free it is turned away (counted, not simulated).
Days start on 2019-03-01 (before the DST change, so a day is 288 periods).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from benchmarks.acn_run import ALGORITHMS
from benchmarks.caltech_site import STATION_IDS, SessionRow
from benchmarks.report import RESULTS_DIR, detail_table, plot_sweep, sweep_table, targets, write_json
from benchmarks.sweep import Job, run_jobs

PERIODS_PER_DAY = 288
CAR_KW = 6.6


def dense_days(days: int, sessions_per_day: int, seed: int) -> tuple[list[SessionRow], int]:
    """Synthetic sessions (sorted by arrival) and how many arrivals found no free EVSE."""
    rng = np.random.default_rng(seed)
    rows: list[SessionRow] = []
    free_at = dict.fromkeys(STATION_IDS, 0)
    turned_away = 0
    for day in range(days):
        base = day * PERIODS_PER_DAY
        clustered = rng.random(sessions_per_day) < 0.8
        hours = np.where(
            clustered,
            np.clip(rng.normal(8.5, 0.8, sessions_per_day), 7.0, 10.0),
            rng.uniform(10.0, 16.0, sessions_per_day),
        )
        for k, hour in enumerate(sorted(hours)):
            arrival = base + int(hour * 12)
            stay = int(rng.uniform(1.5, 10.0) * 12)
            departure = min(arrival + stay, base + PERIODS_PER_DAY - 1)
            free = [s for s, t in free_at.items() if t <= arrival]
            if not free or departure <= arrival:
                turned_away += 1
                continue
            station = str(rng.choice(free))
            free_at[station] = departure
            most_kwh = CAR_KW * (departure - arrival) / 12
            rows.append(
                SessionRow(
                    session_id=f"synthetic-{day}-{k}",
                    station_id=station,
                    arrival=arrival,
                    departure=departure,
                    estimated_departure=departure,
                    requested_kwh=round(float(rng.uniform(0.3, 0.95)) * most_kwh, 3),
                    max_power_kw=CAR_KW,
                )
            )
    rows.sort(key=lambda r: (r.arrival, r.session_id))
    return rows, turned_away


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--sessions-per-day", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--caps", type=lambda s: tuple(float(c) for c in s.split(",")), default=(30.0, 60.0, 90.0)
    )
    parser.add_argument(
        "--algorithms",
        type=lambda s: tuple(a.strip() for a in s.split(",")),
        default=("fairwatt", "edf", "llf", "round-robin", "offline"),
        help=f"comma list from {', '.join(ALGORITHMS)}",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", default="synthetic_dense")


def main(args: argparse.Namespace) -> dict[str, Any]:
    rows, turned_away = dense_days(args.days, args.sessions_per_day, args.seed)
    frozen = tuple(rows)
    jobs: list[Job] = [(name, cap, frozen) for name in args.algorithms for cap in args.caps]
    figures = run_jobs(jobs, args.workers)
    print(
        f"Synthetic dense days: {args.days} x {args.sessions_per_day} arrivals (seed {args.seed}), "
        f"{len(rows)} sessions simulated, {turned_away} found no free EVSE\n"
    )
    print(sweep_table(figures, args.algorithms))
    print("\nAll figures per run\n")
    print(detail_table(figures))
    checked = targets(figures)
    print("\nTargets:", checked)
    payload = {
        "days": args.days,
        "sessions_per_day": args.sessions_per_day,
        "seed": args.seed,
        "sessions": len(rows),
        "turned_away": turned_away,
        "runs": [f.to_dict() for f in figures],
        "targets": checked,
    }
    path = write_json(args.name, payload)
    plot = RESULTS_DIR / f"{args.name}.png"
    plot_sweep(figures, args.algorithms, plot, f"Synthetic dense days ({len(rows)} sessions), ACN-Sim")
    print(f"\nwrote {path} and {plot}")
    return payload
