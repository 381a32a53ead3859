"""``fairwatt simulate``: run real or synthetic sessions through a scheduler at a station.

    fairwatt simulate --config examples/station.yaml \\
        --sessions examples/acn-caltech-2019-03/sessions.csv --days 2 --plot day.png

Prints per local day and overall: energy delivered (% of requested), sessions fully
served, peak kW, energy cost, cost per kWh, Jain's fairness index of the share served,
the highest utilisation of every limit, and profile changes per session; then the sessions
left short of their request (the five worst in the table; ``--json`` lists every session).

Sessions that name no EVSE are put on a free one as they arrive (the least-occupied phase
first); a car that finds none free is turned away and listed, outside the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, timedelta
from typing import Any

from fairwatt.commands.outputs import output_file
from fairwatt.config import StationConfig, load_station
from fairwatt.errors import FairwattError
from fairwatt.simulation.placement import place_sessions
from fairwatt.simulation.sessions import SessionRecord, read_sessions

ALGORITHM_CHOICES = ("fairwatt", "edf", "llf", "round-robin", "uncontrolled", "equal-share", "offline")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate charging sessions at a station with a scheduler in the loop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, metavar="STATION.yaml", help="the station file")
    parser.add_argument("--sessions", required=True, metavar="SESSIONS.csv", help="the sessions to play")
    parser.add_argument("--algorithm", choices=ALGORITHM_CHOICES, default="fairwatt", help="the scheduler")
    parser.add_argument("--plot", metavar="FILE.png", help="write a plot of the run")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    parser.add_argument("--cap-kw", type=float, metavar="KW", help="what-if: override the grid limit [kW]")
    parser.add_argument("--from", dest="from_date", type=_date, metavar="YYYY-MM-DD", help="first local day")
    parser.add_argument("--to", dest="to_date", type=_date, metavar="YYYY-MM-DD", help="last local day")
    parser.add_argument("--days", type=int, metavar="N", help="simulate N days from the first")
    parser.add_argument(
        "--epoch",
        metavar="TIME",
        help="start of period 0 for period-based CSVs (ISO 8601, station time if no offset)",
    )
    parser.add_argument(
        "--forecast",
        nargs="?",
        type=float,
        const=0.5,
        default=None,
        metavar="WEIGHT",
        help="fairwatt: also plan around the sessions earlier simulated days saw arrive later in the "
        "day, their energy weighted by WEIGHT (default 0.5; without the flag: the station file's "
        "forecast, if any; 0 turns it off)",
    )
    parser.add_argument(
        "--progress", action="store_true", help="show a progress bar (default: when a terminal)"
    )
    parser.set_defaults(handler=run)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def select_days(
    records: tuple[SessionRecord, ...],
    config: StationConfig,
    first: date | None,
    last: date | None,
    count: int | None,
) -> list[date]:
    """The consecutive local days to run: ``--from``/``--to``/``--days`` over the sessions' dates."""
    if count is not None and last is not None:
        raise FairwattError("give --days or --to, not both")
    if count is not None and count < 1:
        raise FairwattError("--days must be at least 1")
    arrivals = sorted(r.arrival.astimezone(config.time_zone).date() for r in records)
    if first is None:
        if not arrivals:
            raise FairwattError("the sessions file has no sessions; give --from to simulate an empty day")
        first = arrivals[0]
    if count is not None:
        last = first + timedelta(days=count - 1)
    if last is None:
        last = max(arrivals[-1], first) if arrivals else first
    if last < first:
        raise FairwattError(f"--to {last} is before the first day {first}")
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def run(args: argparse.Namespace) -> int:
    # imported here so that `fairwatt --help` does not load the solver and matplotlib
    from fairwatt.simulation.engine import simulate
    from fairwatt.simulation.metrics import day_metrics, demand_charges, overall_metrics, session_rows
    from fairwatt.simulation.progress import ProgressBar

    if args.plot:
        output_file(args.plot, "--plot")
    config = load_station(args.config)
    if args.cap_kw is not None:
        if args.cap_kw <= 0:
            raise FairwattError(f"--cap-kw must be greater than 0, got {args.cap_kw:g}")
        config = config.with_grid_limit(args.cap_kw)
    epoch = None
    if args.epoch is not None:
        try:
            epoch = datetime.fromisoformat(args.epoch)
        except ValueError:
            raise FairwattError(f"--epoch: expected an ISO 8601 time, got {args.epoch!r}") from None
        if epoch.tzinfo is None:
            epoch = epoch.replace(tzinfo=config.time_zone)
    read = read_sessions(args.sessions, config.time_zone, epoch=epoch, known_evse_ids=config.evse_ids)
    days = select_days(read, config, args.from_date, args.to_date, args.days)
    placement = place_sessions(read, config.evses)
    records = placement.sessions
    turned_away = [
        {
            "session_id": r.session_id,
            "line": r.line,
            "arrival": r.arrival.astimezone(config.time_zone).isoformat(),
            "requested_energy_kwh": r.requested_energy_kwh,
        }
        for r in placement.turned_away
        if days[0] <= r.arrival.astimezone(config.time_zone).date() <= days[-1]
    ]
    progress = None
    if args.progress or sys.stderr.isatty():
        progress = ProgressBar(sys.stderr, label=f"{args.algorithm} {days[0]}..{days[-1]}")
    forecast_weight = config.forecast_weight if args.forecast is None else args.forecast
    result = simulate(config, records, days, args.algorithm, progress, forecast_weight=forecast_weight)
    rows = day_metrics(result)
    overall = overall_metrics(result)
    if args.plot:
        from fairwatt.simulation.plot import plot_run

        plot_run(result, args.plot)
    summary: dict[str, Any] = {
        "station": config.station_id,
        "algorithm": args.algorithm,
        "forecast_weight": forecast_weight if args.algorithm == "fairwatt" else 0.0,
        "grid_limit_kw": config.grid_limit_kw,
        "first_day": days[0].isoformat(),
        "last_day": days[-1].isoformat(),
        "currency": config.prices.currency,
        "solves": result.solves,
        "solve_time_s": round(result.solve_time_s, 3),
        "wall_time_s": round(result.wall_time_s, 3),
        "overall": overall.to_dict(),
        "days": [row.to_dict() for row in rows],
        "turned_away": turned_away,
        "demand_charge_per_kw": config.demand_charge_per_kw,
        "demand_charges": demand_charges(result),
        "sessions": session_rows(result),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render_table(summary))
    return 0


# -- the table ------------------------------------------------------------------------------------

_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("day", "label", "{}"),
    ("sessions", "sessions", "{:d}"),
    ("energy %", "energy_delivered_pct", "{:.2f}"),
    ("served %", "sessions_served_pct", "{:.1f}"),
    ("peak kW", "peak_kw", "{:.1f}"),
    ("kWh", "energy_kwh", "{:.1f}"),
    ("cost", "energy_cost", "{:.2f}"),
    ("cost/kWh", "cost_per_kwh", "{:.4f}"),
    ("Jain", "jain_index", "{:.3f}"),
    ("max util", "worst_utilisation", "{:.3f}"),
    ("changes/session", "profile_changes_per_session", "{:.1f}"),
)


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    if key == "worst_utilisation":
        ratios = row["max_utilisation"]
        if not ratios:
            return "-"
        name = max(ratios, key=lambda n: ratios[n])
        flag = " !" if ratios[name] > 1.0005 else ""
        return f"{ratios[name]:.3f} {name}{flag}"
    value = row[key]
    return "-" if value is None else fmt.format(value)


def render_table(summary: dict[str, Any]) -> str:
    """Plain-text report: one line per day, the overall line, then every limit's highest use."""
    rows = [*summary["days"], summary["overall"]]
    cells = [[_cell(row, key, fmt) for _, key, fmt in _COLUMNS] for row in rows]
    headers = [title for title, _, _ in _COLUMNS]
    widths = [max(len(h), *(len(c[k]) for c in cells)) for k, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        parts = [values[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [
        f"station {summary['station']}  algorithm {summary['algorithm']}  "
        f"grid limit {summary['grid_limit_kw']:g} kW  days {summary['first_day']} to {summary['last_day']}",
        f"{summary['solves']} solves in {summary['solve_time_s']:.1f} s "
        f"(run {summary['wall_time_s']:.1f} s); cost in {summary['currency']}",
        "",
        line(headers),
        line(["-" * w for w in widths]),
    ]
    out.extend(line(c) for c in cells[:-1])
    out.append(line(["-" * w for w in widths]))
    out.append(line(cells[-1]))
    away: list[dict[str, Any]] = summary.get("turned_away", [])
    if away:
        kwh = sum(float(a["requested_energy_kwh"]) for a in away)
        lines = ", ".join(str(a["line"]) for a in away[:10]) + (", ..." if len(away) > 10 else "")
        out.append(
            f"{len(away)} sessions turned away, every EVSE taken when they arrived "
            f"(file lines {lines}); their {kwh:.1f} kWh are not in the figures above"
        )
    out.extend(_short_lines(summary.get("sessions", [])))
    charges: list[dict[str, Any]] = summary.get("demand_charges", [])
    if charges:
        months = ", ".join(f"{c['month']} {c['peak_kw']:.1f} kW = {c['charge']:.2f}" for c in charges)
        out.append(
            f"demand charge ({summary['demand_charge_per_kw']:g} {summary['currency']} per kW of each "
            f"month's peak import, not in the cost column): {months}"
        )
    out.append("")
    out.append("highest utilisation of each limit over the run (use / limit, must stay <= 1.000):")
    ratios: dict[str, float] = summary["overall"]["max_utilisation"]
    name_width = max((len(n) for n in ratios), default=0)
    for name, ratio in ratios.items():
        flag = "  EXCEEDED" if ratio > 1.0005 else ""
        out.append(f"  {name.ljust(name_width)}  {ratio:.3f}{flag}")
    return "\n".join(out)


def _short_lines(sessions: list[dict[str, Any]], shown: int = 5) -> list[str]:
    """How many sessions were left short of their request, and the worst of them."""
    from fairwatt.simulation.metrics import SERVED_SHARE

    short = [s for s in sessions if s["served_pct"] < 100.0 * SERVED_SHARE]
    if not short:
        return []
    worst = sorted(short, key=lambda s: (s["served_pct"], s["line"]))[:shown]
    out = [
        f"{len(short)} {'session' if len(short) == 1 else 'sessions'} got less than "
        f"{100 * SERVED_SHARE:.0f} % of {'its' if len(short) == 1 else 'their'} request"
        + (f"; the {shown} worst (all with --json):" if len(short) > shown else ":")
    ]
    out.extend(
        f"  line {s['line']}  {s['session_id']}  {s['evse_id'] or '-'}  {s['arrival'][:16]} to "
        f"{s['departure'][11:16] if s['departure'][:10] == s['arrival'][:10] else s['departure'][:16]}  "
        f"{s['delivered_kwh']:.2f} of {s['requested_kwh']:.2f} kWh "
        f"({s['served_pct']:.1f} %)"
        for s in worst
    )
    return out
