"""``fairwatt diff``: what applying a network file would change on the running system.

    fairwatt diff -f network.yaml [--json] [--exit-code]

The file is checked locally first (as ``fairwatt validate``), then sent to the server, which
compares it with the network as last applied. ``+`` creates, ``~`` updates (with the fields that
differ), ``-`` deletes. With ``--exit-code`` the status is 2 when there are changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fairwatt.config.network import NetworkConfigError, load_network
from fairwatt.operator.render import add_output_arguments, client, emit, read_network_texts

SIGNS = {"create": "+", "update": "~", "delete": "-"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="show what applying a network file would change on the running server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-f", "--file", type=Path, required=True, metavar="PATH", help="network YAML file or folder"
    )
    parser.add_argument("--exit-code", action="store_true", help="exit with status 2 when there are changes")
    add_output_arguments(parser)
    parser.set_defaults(handler=run)


def checked_texts(path: Path) -> dict[str, str] | None:
    """The file(s) as texts after a local check; ``None`` (errors printed) when invalid."""
    try:
        load_network(path)
    except NetworkConfigError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s); nothing sent to the server", file=sys.stderr)
        return None
    return read_network_texts(path)


def print_changes(changes: list[dict[str, Any]]) -> None:
    if not changes:
        print("no changes: the running system matches the file")
        return
    for change in changes:
        detail = f": {', '.join(change['fields'])}" if change["action"] == "update" else ""
        print(f"{SIGNS[change['action']]} {change['kind']} {change['id']}{detail}")
    counts = {a: sum(1 for c in changes if c["action"] == a) for a in SIGNS}
    print(f"{counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete")


def run(args: argparse.Namespace) -> int:
    texts = checked_texts(args.file)
    if texts is None:
        return 1
    document = client(args).post("/v1/operator/network/diff", {"files": texts})
    emit(args, document, lambda d: print_changes(d["changes"]))
    return 2 if args.exit_code and document["changes"] else 0
