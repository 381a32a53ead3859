"""``python -m benchmarks {acn,synthetic,micro}``: fairwatt against acnportal and the offline bound."""

from __future__ import annotations

import argparse
import sys

import benchmarks.micro as micro
import benchmarks.sweep as sweep
import benchmarks.synthetic as synthetic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sweep.add_arguments(commands.add_parser("acn", help="cap sweep on the Caltech March 2019 sessions"))
    synthetic.add_arguments(commands.add_parser("synthetic", help="synthetic dense days, a few caps"))
    micro.add_arguments(commands.add_parser("micro", help="per-call solve time, cost and fairness"))
    args = parser.parse_args(argv)
    if args.command == "acn":
        sweep.main(args)
    elif args.command == "synthetic":
        synthetic.main(args)
    else:
        micro.main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
