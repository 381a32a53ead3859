"""``fairwatt plan``: solve one instant at a station and show what its chargers would get.

    fairwatt plan --config examples/station.yaml \\
        --sessions examples/acn-caltech-2019-03/sessions.csv --at 2019-03-04T10:00

Takes the sessions plugged in at ``--at`` (station time unless an offset is given), with
the energy they still need as if each had been charged at its own maximum since it
arrived (a plain what-if; ``fairwatt simulate`` plays a whole day), solves, and prints
each EVSE's current now and its plan. Sessions that name no EVSE take a free one, as in
``fairwatt simulate``. ``--profiles FILE`` writes the OCPP 1.6 and 2.0.1
profiles (and each EVSE's failsafe default) as JSON; ``--export-lp FILE`` writes the
energy stage's linear program (``.lp`` or ``.mps``, by the file's ending) for an
operator's own solver.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import highspy
import numpy as np

from fairwatt.commands.outputs import output_file
from fairwatt.config import StationConfig, load_station
from fairwatt.errors import FairwattError
from fairwatt.simulation.placement import place_sessions
from fairwatt.simulation.sessions import SessionRecord, read_sessions
from optimizer import lp
from optimizer.failsafe import failsafe_currents_a
from optimizer.problem import prepare
from optimizer.profiles import failsafe_profile_v16, failsafe_profile_v201, tx_profile_v16, tx_profile_v201
from optimizer.solver import solve
from optimizer.types import ActiveSession, Schedule, StationSnapshot


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="solve one instant at a station: currents now, plan, OCPP profiles, the LP",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, metavar="STATION.yaml", help="the station file")
    parser.add_argument("--sessions", required=True, metavar="SESSIONS.csv", help="sessions to pick from")
    parser.add_argument("--at", required=True, metavar="TIME", help="the instant (ISO 8601)")
    parser.add_argument("--cap-kw", type=float, metavar="KW", help="what-if: override the grid limit [kW]")
    parser.add_argument("--profiles", metavar="FILE.json", help="write the OCPP profiles as JSON")
    parser.add_argument("--export-lp", metavar="FILE.lp|FILE.mps", help="write the energy stage's LP")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.export_lp:  # before solving: HiGHS crashes on a file it cannot create
        lp_path = output_file(args.export_lp, "--export-lp")
        if lp_path.suffix.lower() not in (".lp", ".mps"):
            raise FairwattError(f"--export-lp: the file must end in .lp or .mps, got {lp_path.name!r}")
    if args.profiles:
        output_file(args.profiles, "--profiles")
    config = load_station(args.config)
    if args.cap_kw is not None:
        if args.cap_kw <= 0:
            raise FairwattError(f"--cap-kw must be greater than 0, got {args.cap_kw:g}")
        config = config.with_grid_limit(args.cap_kw)
    now = _instant(args.at, config)
    read = read_sessions(args.sessions, config.time_zone, known_evse_ids=config.evse_ids)
    placement = place_sessions(read, config.evses)  # sessions naming no EVSE take a free one
    away = [r for r in placement.turned_away if r.arrival <= now < r.departure]
    if away:
        print(f"{len(away)} sessions found every EVSE taken and are left out", file=sys.stderr)
    snapshot = snapshot_at(config, placement.sessions, now)
    if not snapshot.sessions:
        raise FairwattError(f"no session is plugged in at {args.at}")
    schedule = solve(snapshot)
    if args.export_lp:
        export_lp(snapshot, Path(args.export_lp))
    if args.profiles:
        try:
            Path(args.profiles).write_text(
                json.dumps(profiles(config, schedule), indent=2) + "\n", encoding="utf-8"
            )
        except OSError as exc:
            raise FairwattError(f"--profiles {args.profiles}: cannot write: {exc.strerror or exc}") from None
    summary = summarise(config, snapshot, schedule)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(summary))
    return 0


def _instant(text: str, config: StationConfig) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise FairwattError(f"--at: expected an ISO 8601 time, got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=config.time_zone)
    return when.astimezone(UTC)


def snapshot_at(config: StationConfig, records: tuple[SessionRecord, ...], now: datetime) -> StationSnapshot:
    """The sessions plugged in at ``now``, each assumed charged at its maximum since it arrived."""
    sessions: list[ActiveSession] = []
    for record in records:
        if not record.arrival <= now < record.departure:
            continue
        evse = config.evse(record.evse_id)
        rate_kw = (
            evse.max_power_kw if record.max_power_kw is None else min(evse.max_power_kw, record.max_power_kw)
        )
        delivered = min(record.requested_energy_kwh, rate_kw * (now - record.arrival) / timedelta(hours=1))
        sessions.append(
            ActiveSession(
                session_id=record.session_id,
                evse_id=record.evse_id,
                arrival=record.arrival,
                departure=record.estimated_departure,
                energy_needed_kwh=record.requested_energy_kwh,
                energy_delivered_kwh=delivered,
            )
        )
    site = config.site(now, config.policy.horizon_periods)
    return StationSnapshot(config.station_id, now, site, config.evses, tuple(sessions), config.policy)


def export_lp(snapshot: StationSnapshot, path: Path) -> None:
    """Write the energy stage (maximise energy, earlier preferred) in LP or MPS format."""
    if path.suffix.lower() not in (".lp", ".mps"):
        raise FairwattError(f"--export-lp: the file must end in .lp or .mps, got {path.name!r}")
    problem = prepare(snapshot)
    model = lp.build(problem)
    costs = np.zeros(model.lp.num_col_)
    n_var = model.var_session.size
    costs[:n_var] = -model.energy_coef * (1.0 - 1e-3 * model.early_coef)
    highs = highspy.Highs()  # type: ignore[no-untyped-call]
    highs.setOptionValue("output_flag", False)
    model.lp.col_cost_ = costs
    highs.passModel(model.lp)
    if highs.writeModel(str(path)) == highspy.HighsStatus.kError:
        raise FairwattError(f"--export-lp: could not write {path}")


def profiles(config: StationConfig, schedule: Schedule) -> dict[str, Any]:
    """Each active EVSE's Tx profile and each EVSE's failsafe default, in both OCPP versions."""
    failsafe = failsafe_currents_a(config.site(schedule.start, 1), config.evses)
    out: dict[str, Any] = {"tx": {}, "failsafe": {}}
    for k, (evse_id, session_id) in enumerate(zip(schedule.evse_ids, schedule.session_ids, strict=True)):
        evse = config.evse(evse_id)
        out["tx"][evse_id] = {
            "session": session_id,
            "ocpp1.6": tx_profile_v16(schedule, evse, transaction_id=k + 1, profile_id=1000 + k),
            # OCPP 2.0.1 transaction ids are at most 36 characters: this what-if numbers them
            "ocpp2.0.1": tx_profile_v201(schedule, evse, transaction_id=f"tx-{k + 1}", profile_id=1000 + k),
        }
    for k, evse in enumerate(config.evses):
        out["failsafe"][evse.evse_id] = {
            "ocpp1.6": failsafe_profile_v16(evse, limit_a=failsafe[evse.evse_id], profile_id=1 + k),
            "ocpp2.0.1": failsafe_profile_v201(evse, limit_a=failsafe[evse.evse_id], profile_id=1 + k),
        }
    return out


def summarise(config: StationConfig, snapshot: StationSnapshot, schedule: Schedule) -> dict[str, Any]:
    hour = max(1, 3600 // schedule.period_s)
    rows = []
    for k, (evse_id, session) in enumerate(zip(schedule.evse_ids, snapshot.sessions, strict=True)):
        row = schedule.current_a[k]
        need = (session.energy_needed_kwh or 0.0) - session.energy_delivered_kwh
        rows.append(
            {
                "evse": evse_id,
                "session": session.session_id,
                "needs_kwh": round(max(need, 0.0), 3),
                "leaves": session.departure.astimezone(config.time_zone).isoformat()
                if session.departure
                else None,
                "current_now_a": round(float(row[0]), 1),
                "hourly_mean_a": [
                    round(float(row[h : h + hour].mean()), 1) for h in range(0, min(row.size, 6 * hour), hour)
                ],
            }
        )
    objective = schedule.objective
    return {
        "station": snapshot.station_id,
        "at": snapshot.now.astimezone(config.time_zone).isoformat(),
        "status": schedule.status.value,
        "message": schedule.message,
        "solve_ms": round(schedule.solve_time_s * 1e3, 1),
        "sessions": len(rows),
        "station_kw_now": round(float(schedule.power_kw[:, 0].sum()), 2),
        "planned_kwh": round(objective.energy_kwh, 3),
        "needed_kwh": round(objective.energy_needed_kwh, 3),
        "planned_cost": round(objective.cost, 4),
        "peak_kw": round(objective.peak_kw, 2),
        "evses": rows,
    }


def render(summary: dict[str, Any]) -> str:
    lines = [
        f"station {summary['station']} at {summary['at']}: {summary['sessions']} sessions, "
        f"{summary['station_kw_now']} kW now; status {summary['status']} ({summary['message']}) "
        f"in {summary['solve_ms']} ms",
        f"plan: {summary['planned_kwh']} of {summary['needed_kwh']} kWh needed, "
        f"cost {summary['planned_cost']}, peak {summary['peak_kw']} kW",
        "",
        f"{'evse':<10} {'now A':>6} {'needs kWh':>9}  {'leaves':<25} next hours (mean A)",
    ]
    for row in summary["evses"]:
        hours = " ".join(f"{a:5.1f}" for a in row["hourly_mean_a"])
        leaves = row["leaves"] or "-"
        lines.append(
            f"{row['evse']:<10} {row['current_now_a']:>6.1f} {row['needs_kwh']:>9.2f}  {leaves:<25} {hours}"
        )
    return "\n".join(lines) + "\n"
