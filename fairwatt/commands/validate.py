"""``fairwatt validate``: check a network file (or a folder of them) without touching any server.

    fairwatt validate -f network.yaml [--json]
    fairwatt validate --schema            # print the JSON Schema editors can check the file with

Every error is reported (not just the first), each as ``file:line:column: field: message``;
the exit status is 1 when there is any.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

from fairwatt.config.network import NetworkConfigError, load_network

SCHEMA_RESOURCE = "network.schema.json"


def schema_text() -> str:
    """The network file's JSON Schema (shipped in ``fairwatt/data``)."""
    return resources.files("fairwatt.data").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a network file (every error with file:line:column)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-f", "--file", type=Path, metavar="PATH", help="network YAML file or folder")
    parser.add_argument("--json", action="store_true", help="errors as JSON (for scripts and editors)")
    parser.add_argument("--schema", action="store_true", help="print the format's JSON Schema and exit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.schema:
        sys.stdout.write(schema_text())
        return 0
    if args.file is None:
        print("fairwatt validate: error: -f PATH is required", file=sys.stderr)
        return 2
    try:
        network = load_network(args.file)
    except NetworkConfigError as exc:
        if args.json:
            errors = [
                {"file": e.file, "line": e.line, "column": e.column, "field": e.field, "message": e.detail}
                for e in exc.errors
            ]
            json.dump({"valid": False, "errors": errors}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            for error in exc.errors:
                print(error)
            print(f"{len(exc.errors)} error(s)", file=sys.stderr)
        return 1
    summary = {
        "valid": True,
        "operator": network.cpo_id,
        "stations": len(network.stations),
        "chargers": len(network.chargers),
        "tariffs": len(network.tariffs),
        "local_lists": len(network.local_lists),
    }
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(
            f"{args.file}: valid: {summary['stations']} station(s), {summary['chargers']} charger(s), "
            f"{summary['tariffs']} tariff(s), {summary['local_lists']} local list(s)"
        )
    return 0
