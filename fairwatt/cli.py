"""The `fairwatt` command: one subcommand module per area under `fairwatt.commands`.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``handler`` (a callable taking the parsed arguments and returning the exit status).
Errors a user can fix are reported as one plain message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from fairwatt.errors import FairwattError
from fairwatt.logs import configure_logging, wants_json

COMMAND_MODULES: tuple[str, ...] = (
    "fairwatt.commands.simulate",
    "fairwatt.commands.plan",
    "fairwatt.commands.tariffs",
    "fairwatt.commands.serve",
    "fairwatt.commands.validate",
    "fairwatt.commands.diff",
    "fairwatt.commands.apply",
    "fairwatt.commands.chargers",
    "fairwatt.commands.sessions_ops",
    "fairwatt.commands.stations_ops",
    "fairwatt.commands.operators",
    "fairwatt.commands.drivers",
    "fairwatt.commands.demo",
    "fairwatt.commands.pki",
    "fairwatt.commands.dr",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fairwatt", description="Grid-aware smart charging for EV networks."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument(
        "--log-json", action="store_true", help="log one JSON object per line (also FAIRWATT_LOG_JSON=1)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # the command is not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def single_threaded_blas() -> None:
    """Keep BLAS to one thread unless the environment says otherwise.

    The solver's matrices are small: BLAS worker threads only spin between calls and take the
    CPU the LP needs (measured: HiGHS time per solve 2.8x lower with one BLAS thread on a busy
    2-core machine). Takes effect only before numpy is first imported, which the command
    modules do.
    """
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def main(argv: Sequence[str] | None = None) -> int:
    single_threaded_blas()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(logging.WARNING - 10 * min(args.verbose, 2), json_lines=wants_json(args.log_json))
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except FairwattError as exc:
        print(f"fairwatt: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fairwatt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
