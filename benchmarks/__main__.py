"""``python -m benchmarks {acn,synthetic,micro,csms-load,billing,nearby,pnc-authorize,dr-fanout}``: fairwatt
against acnportal and the offline bound, the central system under the load of many simulated chargers, rating
and reconciling 100,000 sessions, nearby search against PostGIS, and one demand-response event fanned out to
every station's chargers."""

from __future__ import annotations

import argparse
import importlib
import sys

from fairwatt.cli import single_threaded_blas


def main(argv: list[str] | None = None) -> int:
    single_threaded_blas()  # before numpy loads: the benchmark measures what `fairwatt` runs
    micro = importlib.import_module("benchmarks.micro")
    sweep = importlib.import_module("benchmarks.sweep")
    synthetic = importlib.import_module("benchmarks.synthetic")
    csms_load = importlib.import_module("benchmarks.csms_load")
    billing = importlib.import_module("benchmarks.billing")
    nearby = importlib.import_module("benchmarks.nearby")
    pnc_authorize = importlib.import_module("benchmarks.pnc_authorize")
    dr_fanout = importlib.import_module("benchmarks.dr_fanout")
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sweep.add_arguments(commands.add_parser("acn", help="cap sweep on the Caltech March 2019 sessions"))
    synthetic.add_arguments(commands.add_parser("synthetic", help="synthetic dense days, a few caps"))
    micro.add_arguments(commands.add_parser("micro", help="per-call solve time, cost and fairness"))
    csms_load.add_arguments(commands.add_parser("csms-load", help="one CSMS under simulated chargers"))
    billing.add_arguments(commands.add_parser("billing", help="rate 100,000 completed sessions, reconcile"))
    nearby.add_arguments(commands.add_parser("nearby", help="nearby search: our index against PostGIS"))
    pnc_authorize.add_arguments(
        commands.add_parser("pnc-authorize", help="Plug & Charge Authorize latency, warm and cold OCSP cache")
    )
    dr_fanout.add_arguments(commands.add_parser("dr-fanout", help="one DR event to every station's chargers"))
    args = parser.parse_args(argv)
    if args.command == "acn":
        sweep.main(args)
    elif args.command == "synthetic":
        synthetic.main(args)
    elif args.command == "csms-load":
        csms_load.main(args)
    elif args.command == "billing":
        billing.main(args)
    elif args.command == "nearby":
        nearby.main(args)
    elif args.command == "pnc-authorize":
        pnc_authorize.main(args)
    elif args.command == "dr-fanout":
        dr_fanout.main(args)
    else:
        micro.main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
