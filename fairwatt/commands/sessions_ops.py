"""``fairwatt sessions``: charging sessions on your chargers, through the running server's operator API.

fairwatt sessions list [--state ACTIVE] [--charger C] [--limit N]
fairwatt sessions show SESSION_ID
fairwatt sessions stop SESSION_ID
"""

from __future__ import annotations

import argparse
import urllib.parse
from typing import Any

from fairwatt.operator.render import add_output_arguments, client, command_outcome, emit, fields, table

COLUMNS = ("session_id", "charger_id", "evse_id", "state", "origin", "driver_id", "started_at", "ended_at")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sessions",
        help="list, show and stop charging sessions on a running server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="sessions, newest first")
    listing.add_argument("--state", choices=("INITIATED", "ACTIVE", "STOPPING", "COMPLETED", "FAILED"))
    listing.add_argument("--charger")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="one session and its events")
    show.add_argument("session_id")
    show.set_defaults(handler=_show)
    stop = actions.add_parser("stop", help="stop a session at the charger")
    stop.add_argument("session_id")
    stop.set_defaults(handler=_stop)
    for sub in (listing, show, stop):
        add_output_arguments(sub)


def _path(session_id: str, tail: str = "") -> str:
    return f"/v1/operator/sessions/{urllib.parse.quote(session_id, safe='')}{tail}"


def _list(args: argparse.Namespace) -> int:
    document = client(args).get(
        "/v1/operator/sessions", {"state": args.state, "charger": args.charger, "limit": args.limit}
    )
    emit(args, document, lambda d: table(d["sessions"], COLUMNS))
    return 0


def _show(args: argparse.Namespace) -> int:
    document = client(args).get(_path(args.session_id))

    def readable(d: dict[str, Any]) -> None:
        fields(d)
        print()
        table(d["events"], ("seq", "kind", "state", "at"))

    emit(args, document, readable)
    return 0


def _stop(args: argparse.Namespace) -> int:
    document = client(args).post(_path(args.session_id, "/stop"), {})
    if args.json:
        emit(args, document, print)
        return 0 if document.get("outcome") == "accepted" else 1
    return command_outcome(document)
