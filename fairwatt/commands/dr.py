"""``fairwatt dr``: peak events on your stations, through the running server's operator API.

    fairwatt dr declare --stations A,B --cut 20% --start 17:00 --duration 2h [--time-zone Europe/Paris]
    fairwatt dr list [--time-zone Europe/Paris]
    fairwatt dr cancel EVENT_ID

``--start`` is a time of day (the next one to come, in ``--time-zone``, by default this machine's)
or a full ISO 8601 time. ``--json`` prints the server's JSON instead of a table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from fairwatt.client import OperatorClient, add_server_arguments
from fairwatt.config.nodes import find_zone
from fairwatt.errors import FairwattError

PATH = "/v1/operator/dr/events"
COLUMNS = ("event_id", "program", "stations", "cut", "start", "end", "status", "opt")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|m|h|d)?\s*$")
_SECONDS = {"s": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, None: 60}
_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class DrCommandError(FairwattError):
    """A ``fairwatt dr`` argument the user has to fix."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dr",
        help="declare, list and cancel demand-response peak events on a running server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="dr_command", metavar="ACTION", required=True)
    declare = actions.add_parser("declare", help="cut stations' import for a while")
    declare.add_argument("--stations", required=True, help="station ids, comma-separated")
    declare.add_argument("--cut", required=True, help="how much of the grid limit to cut, e.g. 20%%")
    declare.add_argument("--start", required=True, help="HH:MM (the next one) or an ISO 8601 time")
    declare.add_argument("--duration", required=True, help="e.g. 2h, 90min, 30s (a bare number: minutes)")
    declare.set_defaults(handler=_declare)
    listing = actions.add_parser("list", help="events not over yet on your stations")
    listing.set_defaults(handler=_list)
    cancel = actions.add_parser("cancel", help="cancel one of your manual events")
    cancel.add_argument("event_id")
    cancel.set_defaults(handler=_cancel)
    for sub in (declare, listing, cancel):
        add_server_arguments(sub)
        sub.add_argument("--json", action="store_true", help="print the server's JSON")
        sub.add_argument("--time-zone", metavar="TZ", help="IANA zone for times (default: this machine's)")


def zone(name: str | None) -> tzinfo:
    if name is None:
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    found = find_zone(name)
    if found is None:
        raise DrCommandError(f"--time-zone {name}: not a known IANA time zone")
    return found


def parse_cut(raw: str) -> float:
    text = raw.strip().removesuffix("%").strip()
    try:
        value = float(text)
    except ValueError:
        raise DrCommandError(f"--cut {raw}: expected a percentage such as 20%") from None
    if not 0 < value <= 100:
        raise DrCommandError(f"--cut {raw}: must be more than 0% and at most 100%")
    return value


def parse_duration(raw: str) -> timedelta:
    match = _DURATION.match(raw)
    if match is None or float(match.group(1)) <= 0:
        raise DrCommandError(f"--duration {raw}: expected a duration such as 2h, 90min or 30s")
    return timedelta(seconds=float(match.group(1)) * _SECONDS[match.group(2)])


def parse_start(raw: str, where: tzinfo, now: datetime) -> datetime:
    """``HH:MM``: the next such time in ``where`` after ``now``; else an ISO 8601 time (local if naive)."""
    match = _TIME_OF_DAY.match(raw.strip())
    if match:
        local_now = now.astimezone(where)
        at = local_now.replace(hour=int(match.group(1)), minute=int(match.group(2)), second=0, microsecond=0)
        if at <= local_now:
            at = at + timedelta(days=1)  # the same wall time tomorrow
        return at.astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise DrCommandError(f"--start {raw}: expected HH:MM or an ISO 8601 time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=where)).astimezone(UTC)


def rows(events: Sequence[Mapping[str, Any]], where: tzinfo) -> list[dict[str, str]]:
    def local(text: str) -> str:
        return datetime.fromisoformat(text).astimezone(where).strftime("%Y-%m-%d %H:%M:%S %Z")

    out = []
    for event in events:
        cut = event.get("cut_percent")
        out.append(
            {
                "event_id": str(event["event_id"]),
                "program": str(event["program"]),
                "stations": ",".join(event["stations"]),
                "cut": "-" if cut is None else f"{cut:g}%",
                "start": local(event["start"]),
                "end": local(event["end"]),
                "status": str(event["status"]),
                "opt": str(event.get("opt") or "-"),
            }
        )
    return out


def print_table(lines: Sequence[Mapping[str, str]]) -> None:
    if not lines:
        print("(no events)")
        return
    widths = {c: max(len(c), *(len(line[c]) for line in lines)) for c in COLUMNS}
    print("  ".join(c.upper().ljust(widths[c]) for c in COLUMNS).rstrip())
    for line in lines:
        print("  ".join(line[c].ljust(widths[c]) for c in COLUMNS).rstrip())


def _show(args: argparse.Namespace, document: Any, events: Sequence[Mapping[str, Any]]) -> int:
    if args.json:
        json.dump(document, sys.stdout, indent=2)
        print()
    else:
        print_table(rows(events, zone(args.time_zone)))
    return 0


def _declare(args: argparse.Namespace) -> int:
    where = zone(args.time_zone)
    stations = [s.strip() for s in args.stations.split(",") if s.strip()]
    if not stations:
        raise DrCommandError("--stations: name at least one station")
    body = {
        "stations": stations,
        "cut_percent": parse_cut(args.cut),
        "start": parse_start(args.start, where, datetime.now(UTC)).isoformat(),
        "duration_s": parse_duration(args.duration).total_seconds(),
    }
    document = OperatorClient.from_args(args).post(PATH, body)
    return _show(args, document, [document])


def _list(args: argparse.Namespace) -> int:
    document = OperatorClient.from_args(args).get(PATH)
    return _show(args, document, document["events"])


def _cancel(args: argparse.Namespace) -> int:
    document = OperatorClient.from_args(args).delete(f"{PATH}/{urllib.parse.quote(args.event_id, safe='')}")
    return _show(args, document, [document])
