"""The transformer-cap sweep on the Caltech March 2019 sessions (``python -m benchmarks acn``)."""

from __future__ import annotations

import argparse
import multiprocessing
from collections.abc import Sequence
from typing import Any

from benchmarks.acn_run import (
    ALGORITHMS,
    EXTRA_ALGORITHMS,
    OURS_AMP,
    OURS_MEAN_FORECAST,
    OURS_NO_FORECAST,
    RunFigures,
    run,
)
from benchmarks.caltech_site import SessionRow, read_sessions
from benchmarks.report import (
    PUBLISHED_CAPS,
    RESULTS_DIR,
    Progress,
    detail_table,
    plot_sweep,
    sweep_table,
    targets,
    write_json,
)

DEFAULT_CAPS: tuple[float, ...] = (10, 20, 30, 40, 50, 60, 80, 100, 125)
FULL_CAPS = PUBLISHED_CAPS  # the 27 caps behind notebook 2.1's published means
DEFAULT_AMP_CAPS: tuple[float, ...] = (10, 20, 40, 60)
# rough cost order, so the slow runs start first and the pool stays busy
_COST = {
    "fairwatt": 0,
    OURS_NO_FORECAST: 0,
    OURS_MEAN_FORECAST: 0,
    OURS_AMP: 1,
    "llf": 2,
    "edf": 3,
    "round-robin": 4,
    "offline": 5,
    "uncontrolled": 6,
}

Job = tuple[str, float, tuple[SessionRow, ...]]


def _run_job(job: Job) -> RunFigures:
    name, cap_kw, rows = job
    return run(name, cap_kw, rows)


def run_jobs(jobs: Sequence[Job], workers: int) -> list[RunFigures]:
    """Run the simulations, ``workers`` at a time, printing a progress line per finished run."""
    ordered = sorted(jobs, key=lambda j: (_COST.get(j[0], 9), -j[1]))
    progress = Progress(len(ordered))
    out: list[RunFigures] = []

    def note(f: RunFigures) -> None:
        out.append(f)
        progress.step(f"{f.algorithm} @ {f.cap_kw:g} kW: {f.energy_pct:.2f} % in {f.wall_s:.0f} s")

    if workers <= 1:
        for job in ordered:
            note(_run_job(job))
        return out
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for figures in pool.imap_unordered(_run_job, ordered):
            note(figures)
    return out


def _caps(text: str) -> tuple[float, ...]:
    return tuple(float(c) for c in text.split(",") if c.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--caps", type=_caps, default=DEFAULT_CAPS, help="transformer caps [kW], comma list")
    parser.add_argument(
        "--full", action="store_true", help="the notebook's 27 caps: 10, 15, ..., 125, 130, 140, 150 kW"
    )
    parser.add_argument("--days", type=int, default=None, help="only sessions arriving in the first N days")
    parser.add_argument(
        "--algorithms",
        type=lambda s: tuple(a.strip() for a in s.split(",")),
        default=ALGORITHMS,
        help=f"comma list from {', '.join(ALGORITHMS + EXTRA_ALGORITHMS)}",
    )
    parser.add_argument(
        "--amp-caps",
        type=_caps,
        default=DEFAULT_AMP_CAPS,
        help="caps at which the whole-amp / 6 A minimum variant runs (it is about limits, not the sweep)",
    )
    parser.add_argument("--workers", type=int, default=2, help="simulations run in parallel")
    parser.add_argument("--name", default="acn_caltech_2019_03", help="file name stem under results/")


def main(args: argparse.Namespace) -> dict[str, Any]:
    caps = FULL_CAPS if args.full else args.caps
    rows = tuple(read_sessions(days=args.days))
    jobs: list[Job] = []
    for name in args.algorithms:
        for cap in caps if name != OURS_AMP else [c for c in args.amp_caps if c in caps] or args.amp_caps:
            jobs.append((name, cap, rows))
    figures = run_jobs(jobs, args.workers)
    table = sweep_table(figures, args.algorithms)
    details = detail_table(figures)
    checked = targets(figures)
    print(f"Caltech ACN, March 2019 ({len(rows)} sessions), energy delivered [% of requested]\n")
    print(table)
    print("\nAll figures per run\n")
    print(details)
    print("\nTargets:", checked)
    payload = {
        "sessions": len(rows),
        "days": args.days,
        "caps_kw": list(caps),
        "runs": [f.to_dict() for f in figures],
        "targets": checked,
    }
    path = write_json(args.name, payload)
    plot = RESULTS_DIR / f"{args.name}.png"
    plot_sweep(figures, args.algorithms, plot, f"Caltech ACN, March 2019, {len(rows)} sessions, ACN-Sim")
    print(f"\nwrote {path} and {plot}")
    return payload
