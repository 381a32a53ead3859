"""Per-call figures of ``optimizer.solve`` (``python -m benchmarks micro``).

1. Solve time: 50 active EVs on the Caltech site, horizons of 96 and 288 five-minute periods,
   at a congested cap (60 kW) and an uncongested one (150 kW); seeded random sessions, one
   warm-up call, then ``--calls`` calls each on a fresh snapshot; p50 / p95 / max [ms]. The
   machine is shared and noisy, so two anchors are timed in the same run on the same snapshots:
   our equal-share fallback, one ``scipy.optimize.linprog`` (HiGHS) of the same size (energy
   only, per-period line limits), and on the first ``--convex-calls`` snapshots a convex model of
   adacharge's kind (``benchmarks.convex_anchor``: CVXPY, exact phasor cones, Clarabel), the
   scheduler issue 2 names; ratios to them travel better than milliseconds. The convex model's
   planned energy is also set beside ours (our LP holds each cone by an inner polygon and plans
   the far future in long blocks, so it may plan a little less).
2. Cost: the same sessions with a time-of-use price, ``objective=("energy", "cost", "peak")``
   against the cost-blind ``("energy",)``: energy planned [kWh] and its cost for both.
3. Fairness: ``--jain-sessions`` identical sessions (same arrival, departure, need, priority)
   overlapping at a cap too low to serve them all. Jain's index over each session's served
   share of need ``x_i``: ``J = (sum x)^2 / (n * sum x^2)``; 1 is perfectly even, 1/n is one
   session taking everything. Reported for the planned horizon and for the current of period 0.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_matrix

from benchmarks import convex_anchor
from benchmarks.caltech_site import AB, AV_POD, BC, CA, CC_POD, STATION_IDS, caltech_evses, caltech_site
from benchmarks.report import write_json
from optimizer import ActiveSession, Network, Policy, PricePeriod, StationSnapshot, solve
from optimizer.types import FloatArray

NOW = datetime(2019, 3, 5, 8, 0, tzinfo=UTC)  # a Tuesday morning; only offsets from it matter
PERIOD_S = 300


def tou_prices(start: datetime, hours: int) -> tuple[PricePeriod, ...]:
    """A three-level TOU price, hour by hour, like SCE TOU-EV-4 in shape [$/kWh]."""

    def price(hour: int) -> float:
        if 12 <= hour < 18:
            return 0.30
        if 8 <= hour < 12 or 18 <= hour < 23:
            return 0.17
        return 0.10

    return tuple(PricePeriod(start + timedelta(hours=h), price((start.hour + h) % 24)) for h in range(hours))


def random_snapshot(
    rng: np.random.Generator, n_sessions: int, horizon: int, cap_kw: float, prices: bool = True
) -> StationSnapshot:
    """``n_sessions`` cars already plugged in, leaving within the horizon, needing 5-40 kWh."""
    stations = rng.choice(len(STATION_IDS), size=n_sessions, replace=False)
    sessions = []
    for k, j in enumerate(stations):
        stay_periods = int(rng.integers(12, horizon + 1))
        sessions.append(
            ActiveSession(
                session_id=f"s{k}",
                evse_id=STATION_IDS[int(j)],
                arrival=NOW - timedelta(minutes=int(rng.integers(0, 120))),
                departure=NOW + timedelta(seconds=PERIOD_S * stay_periods),
                energy_needed_kwh=float(rng.uniform(5.0, 40.0)),
                energy_delivered_kwh=float(rng.uniform(0.0, 3.0)),
            )
        )
    site = caltech_site(cap_kw)
    if prices:
        site = replace(site, prices=tou_prices(NOW, horizon // 12 + 2))
    policy = Policy(horizon_periods=horizon)
    return StationSnapshot("caltech", NOW, site, caltech_evses(), tuple(sessions), policy)


def anchor_lp_s(snapshot: StationSnapshot, network: Network) -> float:
    """Time one energy-only LP of the same size with scipy's HiGHS (per-period line rows) [s]."""
    n, horizon = len(snapshot.sessions), snapshot.policy.horizon_periods
    cols = network.index([s.evse_id for s in snapshot.sessions])
    depart = [
        min(int((s.departure - snapshot.now).total_seconds() // PERIOD_S), horizon)
        if s.departure is not None
        else horizon
        for s in snapshot.sessions
    ]
    kw = network.kw_per_a[cols]
    rows = network.linearise(snapshot.policy.phasor_tolerance)
    a_rows, n_rows = rows.matrix[:, cols], rows.matrix.shape[0]
    leave = np.asarray(depart, dtype=np.int64)
    r_nz, i_nz = np.nonzero(a_rows)
    t_grid = np.arange(horizon)
    live = t_grid[None, :] < leave[i_nz][:, None]  # (nonzeros, T)
    k_nz, t_nz = np.nonzero(live)
    line_data = a_rows[r_nz[k_nz], i_nz[k_nz]]
    line_row = t_nz * n_rows + r_nz[k_nz]
    line_col = i_nz[k_nz] * horizon + t_nz
    i_e, t_e = np.nonzero(t_grid[None, :] < leave[:, None])
    energy_data = kw[i_e] * PERIOD_S / 3600
    data = np.concatenate([line_data, energy_data])
    ri = np.concatenate([line_row, horizon * n_rows + i_e])
    ci = np.concatenate([line_col, i_e * horizon + t_e])
    need = [max((s.energy_needed_kwh or 0.0) - s.energy_delivered_kwh, 0.0) for s in snapshot.sessions]
    a_ub = csr_matrix((data, (ri, ci)), shape=(horizon * n_rows + n, n * horizon))
    b_ub = np.concatenate([np.tile(rows.bound, horizon), need])
    upper = np.full(n * horizon, 32.0)
    cost = -np.repeat(kw, horizon)
    began = time.perf_counter()
    linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=np.c_[np.zeros(n * horizon), upper], method="highs")
    return time.perf_counter() - began


def _stats_ms(values: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(values, dtype=np.float64) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "max_ms": float(ms.max()),
    }


def timing(horizon: int, cap_kw: float, calls: int, seed: int, convex_calls: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    network = Network.build(caltech_site(cap_kw), caltech_evses())
    solve(random_snapshot(rng, 50, horizon, cap_kw), network=network)  # warm-up
    ours: list[float] = []
    ours_cpu: list[float] = []
    fallback: list[float] = []
    anchor: list[float] = []
    convex: list[float] = []
    energy_ratio: list[float] = []  # ours / convex model's planned energy, same snapshot
    statuses: dict[str, int] = {}
    convex_calls = min(convex_calls, calls) if convex_anchor.available() else 0
    for call in range(calls):
        snap = random_snapshot(rng, 50, horizon, cap_kw)
        began, began_cpu = time.perf_counter(), time.process_time()
        schedule = solve(snap, network=network)
        ours.append(time.perf_counter() - began)
        ours_cpu.append(time.process_time() - began_cpu)
        statuses[schedule.status.value] = statuses.get(schedule.status.value, 0) + 1
        began = time.perf_counter()
        solve(snap, network=network, force_fallback=True)
        fallback.append(time.perf_counter() - began)
        anchor.append(anchor_lp_s(snap, network))
        if call < convex_calls:
            result = convex_anchor.solve_convex(snap, network)
            convex.append(result.seconds)
            kw_per_a = network.kw_per_a[network.index([s.evse_id for s in snap.sessions])]
            convex_kwh = float((result.current_a * kw_per_a[:, None]).sum()) * PERIOD_S / 3600
            energy_ratio.append(float(schedule.power_kw.sum()) * PERIOD_S / 3600 / convex_kwh)
    out: dict[str, Any] = {"horizon_periods": horizon, "cap_kw": cap_kw, "calls": calls, "statuses": statuses}
    out["ours"] = _stats_ms(ours)
    # CPU time of this process: what one core spends on a call, whatever else the machine runs
    out["ours_cpu"] = _stats_ms(ours_cpu)
    out["equal_share_fallback"] = _stats_ms(fallback)
    out["scipy_linprog_energy_only"] = _stats_ms(anchor)
    out["ratio_p95_ours_to_linprog"] = out["ours"]["p95_ms"] / out["scipy_linprog_energy_only"]["p95_ms"]
    out["ratio_p95_ours_to_fallback"] = out["ours"]["p95_ms"] / out["equal_share_fallback"]["p95_ms"]
    if convex:
        out["convex_adacharge_kind"] = _stats_ms(convex)
        out["convex_calls"] = len(convex)
        # p50 against p50: the convex model is timed on fewer snapshots than ours
        out["ratio_p50_ours_to_convex"] = out["ours"]["p50_ms"] / out["convex_adacharge_kind"]["p50_ms"]
        out["energy_ours_over_convex_min"] = min(energy_ratio)
        out["energy_ours_over_convex_mean"] = float(np.mean(energy_ratio))
    return out


def cost_comparison(cap_kw: float, seeds: Sequence[int]) -> dict[str, Any]:
    """Energy and cost planned with and without the cost stage, on the same snapshots."""
    totals = {"cost_aware": [0.0, 0.0], "cost_blind": [0.0, 0.0]}
    for seed in seeds:
        snap = random_snapshot(np.random.default_rng(seed), 50, 288, cap_kw)
        for key, objective in (("cost_aware", ("energy", "cost", "peak")), ("cost_blind", ("energy",))):
            policy = replace(snap.policy, objective=objective)
            result = solve(replace(snap, policy=policy)).objective
            totals[key][0] += result.energy_kwh
            totals[key][1] += result.cost
    out: dict[str, Any] = {"cap_kw": cap_kw, "snapshots": len(seeds)}
    for key, (energy, cost) in totals.items():
        out[key] = {"energy_kwh": energy, "cost": cost, "cost_per_kwh": cost / energy if energy else None}
    out["saving_pct"] = 100.0 * (1 - totals["cost_aware"][1] / totals["cost_blind"][1])
    out["energy_equal"] = abs(totals["cost_aware"][0] - totals["cost_blind"][0]) <= 1e-3 * max(
        totals["cost_blind"][0], 1.0
    )
    return out


def jain(values: FloatArray) -> float:
    """Jain's fairness index of non-negative values (1.0 when all are zero)."""
    total = float(values.sum())
    squares = float((values**2).sum())
    return 1.0 if squares == 0 else total * total / (values.size * squares)


def balanced_stations(per_line_pair: int = 14) -> tuple[str, ...]:
    """As many EVSEs on each of AB, BC and CA (AB's pods last): equal sessions can get equal shares."""
    pods = set(AV_POD) | set(CC_POD)
    ab = [e for e in AB if e not in pods] + [e for e in AB if e in pods]
    return tuple(ab[:per_line_pair]) + BC[:per_line_pair] + CA[:per_line_pair]


def fairness(n_sessions: int, cap_kw: float, stations: Sequence[str] = STATION_IDS) -> dict[str, Any]:
    """Identical overlapping sessions at a cap that cannot serve them all, on ``stations[:n]``."""
    n_sessions = min(n_sessions, len(stations))
    sessions = tuple(
        ActiveSession(
            session_id=f"j{k}",
            evse_id=stations[k],
            arrival=NOW,
            departure=NOW + timedelta(hours=4),
            energy_needed_kwh=20.0,
        )
        for k in range(n_sessions)
    )
    snap = StationSnapshot("caltech", NOW, caltech_site(cap_kw), caltech_evses(), sessions, Policy())
    schedule = solve(snap)
    kwh = schedule.power_kw.sum(axis=1) * PERIOD_S / 3600
    share = np.minimum(kwh / 20.0, 1.0)
    return {
        "sessions": n_sessions,
        "cap_kw": cap_kw,
        "served_share_min": float(share.min()),
        "served_share_max": float(share.max()),
        "jain_served_share": jain(share),
        "jain_period0_current": jain(schedule.current_a[:, 0]),
        "status": schedule.status.value,
    }


def _print_convex(runs: Sequence[dict[str, Any]]) -> None:
    convex = [r for r in runs if "convex_adacharge_kind" in r]
    if not convex:
        print("\n(convex anchor left out: `pip install -e '.[bench]'` installs cvxpy)")
        return
    print("\nAgainst a convex model of adacharge's kind (CVXPY + Clarabel, exact cones), same snapshots")
    print("(issue 2 quotes adacharge at 0.8-0.9 s for 50 EVs x 288 periods on its authors' machine)\n")
    print(
        "periods | cap kW | calls | convex p50 ms | max | ours p50 ms | ours/convex p50 | energy ours/convex"
    )
    print("--- | --- | --- | --- | --- | --- | --- | ---")
    for r in convex:
        c = r["convex_adacharge_kind"]
        print(
            f"{r['horizon_periods']} | {r['cap_kw']:g} | {r['convex_calls']}"
            f" | {c['p50_ms']:.0f} | {c['max_ms']:.0f}"
            f" | {r['ours']['p50_ms']:.1f} | {r['ratio_p50_ours_to_convex']:.3f}"
            f" | {r['energy_ours_over_convex_mean']:.4f} (min {r['energy_ours_over_convex_min']:.4f})"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--convex-calls", type=int, default=5, help="snapshots also solved by the convex anchor (needs cvxpy)"
    )
    parser.add_argument("--jain-sessions", type=int, default=45)
    parser.add_argument("--name", default="micro")


def main(args: argparse.Namespace) -> dict[str, Any]:
    runs = [
        timing(h, cap, args.calls, args.seed, args.convex_calls) for h in (96, 288) for cap in (60.0, 150.0)
    ]
    print("Per-call solve time, 50 active EVs, Caltech site (ms; ratio = ours p95 / anchor p95)")
    print("wall time, and CPU time of this process (one core's work, whatever else the machine runs)\n")
    print(
        "periods | cap kW | ours p50 | p95 | max | CPU p50 | CPU p95 | fallback p95 | linprog p95 | /linprog"
        " | statuses"
    )
    print("--- | --- | --- | --- | --- | --- | --- | --- | --- | --- | ---")
    for r in runs:
        print(
            f"{r['horizon_periods']} | {r['cap_kw']:g} | {r['ours']['p50_ms']:.1f}"
            f" | {r['ours']['p95_ms']:.1f}"
            f" | {r['ours']['max_ms']:.1f} | {r['ours_cpu']['p50_ms']:.1f} | {r['ours_cpu']['p95_ms']:.1f}"
            f" | {r['equal_share_fallback']['p95_ms']:.1f}"
            f" | {r['scipy_linprog_energy_only']['p95_ms']:.1f} | {r['ratio_p95_ours_to_linprog']:.2f}"
            f" | {r['statuses']}"
        )
    _print_convex(runs)
    costs = [cost_comparison(cap, range(args.seed, args.seed + 10)) for cap in (60.0, 150.0)]
    print("\nCost-aware vs cost-blind plans (10 snapshots of 50 EVs x 288 periods, TOU price)\n")
    print("cap kW | energy aware kWh | energy blind kWh | cost aware $ | cost blind $ | saving %")
    print("--- | --- | --- | --- | --- | ---")
    for c in costs:
        print(
            f"{c['cap_kw']:g} | {c['cost_aware']['energy_kwh']:.2f} | {c['cost_blind']['energy_kwh']:.2f}"
            f" | {c['cost_aware']['cost']:.2f} | {c['cost_blind']['cost']:.2f} | {c['saving_pct']:.1f}"
        )
    fair = [
        {**fairness(args.jain_sessions, cap, stations), "placement": placement}
        for placement, stations in (("first EVSEs", STATION_IDS), ("balanced", balanced_stations()))
        for cap in (30.0, 60.0)
    ]
    print("\nJain index among identical overlapping sessions\n")
    for f in fair:
        print(
            f"{f['sessions']} sessions ({f['placement']}) @ {f['cap_kw']:g} kW:"
            f" served share {f['served_share_min']:.3f}"
            f"..{f['served_share_max']:.3f}, Jain(share) {f['jain_served_share']:.4f},"
            f" Jain(period-0 current) {f['jain_period0_current']:.4f} ({f['status']})"
        )
    payload = {"timing": runs, "cost": costs, "fairness": fair}
    print(f"\nwrote {write_json(args.name, payload)}")
    return payload
