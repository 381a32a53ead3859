"""``fairwatt stations``: your stations and the smart-charging loop's current schedule for one of them.

    fairwatt stations list
    fairwatt stations schedule STATION [--periods 48] [--plot schedule.png]

The schedule shows each EVSE's planned current per period and the station's power against its
grid limit and the caps in force (demand response, peak events). ``--plot`` draws it.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fairwatt.commands.outputs import output_file
from fairwatt.operator.render import add_output_arguments, client, emit, table


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "stations",
        help="list stations; show a station's current schedule against its limits",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="stations_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="your stations")
    listing.set_defaults(handler=_list)
    schedule = actions.add_parser("schedule", help="the current schedule per EVSE against limits and caps")
    schedule.add_argument("station")
    schedule.add_argument("--periods", type=int, default=48, help="how many periods to show (default 48)")
    schedule.add_argument("--plot", type=Path, metavar="PNG", help="also draw the schedule into this file")
    schedule.set_defaults(handler=_schedule)
    for sub in (listing, schedule):
        add_output_arguments(sub)


def _list(args: argparse.Namespace) -> int:
    document = client(args).get("/v1/operator/stations")
    emit(args, document, lambda d: table(d["stations"], ("station_id", "name", "time_zone", "chargers")))
    return 0


def _readable(document: dict[str, Any]) -> None:
    schedule = document["schedule"]
    print(f"station {document['station_id']}: grid limit {document['grid_limit_kw']:g} kW")
    for cap in document["caps"]:
        amount = f"{cap['limit_kw']:g} kW" if cap["limit_kw"] is not None else f"{cap['fraction']:.0%}"
        print(f"  cap {amount} from {cap['start']} to {cap['end']} ({cap['source']})")
    if schedule is None:
        print("no schedule: no session is charging")
        return
    print(
        f"schedule from {schedule['start']}, {schedule['periods']} x {schedule['period_s']} s, "
        f"{schedule['status']} in {schedule['solve_time_s']:.3f} s"
    )
    shown = min(schedule["periods"], 8)
    rows = [
        {
            "evse": e["evse_id"],
            "charger": e["charger_id"],
            "connector": e["connector_id"],
            "session": e["session_id"],
            "max_a": e["max_current_a"],
            **{f"t{t}_a": e["current_a"][t] for t in range(shown)},
        }
        for e in schedule["evses"]
    ]
    power = {"evse": "station kW", **{f"t{t}_a": schedule["station_power_kw"][t] for t in range(shown)}}
    columns = ("evse", "charger", "connector", "session", "max_a", *(f"t{t}_a" for t in range(shown)))
    table([*rows, power], columns)


def _schedule(args: argparse.Namespace) -> int:
    if args.plot is not None:
        output_file(args.plot, "--plot")
    path = f"/v1/operator/stations/{urllib.parse.quote(args.station, safe='')}/schedule"
    document = client(args).get(path, {"periods": args.periods})
    emit(args, document, _readable)
    if args.plot is not None:
        plot_schedule(document, args.plot)
        # a note, not output: with --json stdout holds only the JSON
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def plot_schedule(document: dict[str, Any], path: Path) -> None:
    """Stacked EVSE power per period against the grid limit and caps (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 4.5))
    schedule = document["schedule"]
    if schedule is not None:
        start = datetime.fromisoformat(str(schedule["start"]))
        step = timedelta(seconds=schedule["period_s"])
        times = [start + step * t for t in range(schedule["periods"])]
        x = [(t - start).total_seconds() / 3600.0 for t in times]
        stacks = [e["power_kw"] for e in schedule["evses"]]
        labels = [e["evse_id"] for e in schedule["evses"]]
        axes.stackplot(x, stacks, labels=labels, step="post", alpha=0.8)
        end = times[-1] + step
        first, last = 0.0, (end - start).total_seconds() / 3600.0
        axes.hlines(
            document["grid_limit_kw"], first, last, colors="black", linestyles="--", label="grid limit"
        )
        for cap in document["caps"]:
            if cap["limit_kw"] is None:
                continue
            begin = max(datetime.fromisoformat(str(cap["start"])), times[0])
            finish = min(datetime.fromisoformat(str(cap["end"])), end)
            if begin < finish:
                axes.hlines(
                    cap["limit_kw"],
                    (begin - start).total_seconds() / 3600.0,
                    (finish - start).total_seconds() / 3600.0,
                    colors="red",
                    label=f"cap ({cap['source']})",
                )
        axes.set_xlabel(f"hours from {start.isoformat(timespec='minutes')}")
    else:
        axes.text(0.5, 0.5, "no session is charging", ha="center", transform=axes.transAxes)
    axes.set_title(f"station {document['station_id']}: planned power")
    axes.set_ylabel("power [kW]")
    if axes.get_legend_handles_labels()[0]:  # nothing is planned: no legend (and no matplotlib warning)
        axes.legend(loc="upper right", fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
