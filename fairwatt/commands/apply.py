"""``fairwatt apply``: make the running system match a network file, atomically.

    fairwatt apply -f network.yaml [--json]

Every change is written in one database transaction (all or nothing) and recorded in the audit
log under the API key's name. Afterwards the server re-solves the stations its smart-charging
loop plans (prices, peak events and base load apply at once; a changed limit tree, EVSE or
policy is stored and planned with after the next ``fairwatt serve`` start) and sends changed
local authorisation lists to the connected chargers. Applying the same file twice changes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fairwatt.commands.diff import checked_texts, print_changes
from fairwatt.operator.render import add_output_arguments, client, emit, table


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "apply",
        help="apply a network file to the running server (all or nothing, audited)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-f", "--file", type=Path, required=True, metavar="PATH", help="network YAML file or folder"
    )
    add_output_arguments(parser)
    parser.set_defaults(handler=run)


def _readable(document: dict[str, Any]) -> None:
    print_changes(document["changes"])
    effects = document.get("effects", {})
    if effects.get("stations"):
        print()
        table(effects["stations"], ("station", "effect"))
    if effects.get("local_lists"):
        print()
        table(effects["local_lists"], ("list", "charger_id", "version", "outcome", "status"))


def run(args: argparse.Namespace) -> int:
    texts = checked_texts(args.file)
    if texts is None:
        return 1
    document = client(args).post("/v1/operator/network/apply", {"files": texts})
    emit(args, document, _readable)
    return 0
