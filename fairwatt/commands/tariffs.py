"""``fairwatt tariffs``: check an OCPI 2.2.1 tariff before publishing it, publish it, show it.

    fairwatt tariffs price --tariff tariff.json --session session.json [--time-zone Europe/Berlin]
    fairwatt tariffs set --file tariff.json [--station S ...] [--charger C ...]   # running server
    fairwatt tariffs show [TARIFF_ID]                                            # running server

Prices a session given as OCPI charging periods (a bare session object, an OCPI CDR, or a
case file with ``session``/``tariff``/``time_zone`` keys) and prints the OCPI CDR totals as
JSON: money rounded half-up to the currency's minor unit, quantities to 4 decimals. Local-time
restrictions are read in ``--time-zone`` (default: the case file's ``time_zone``, else UTC).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fairwatt.commands.tariff_ops import register_operations
from fairwatt.config.nodes import find_zone
from fairwatt.errors import FairwattError
from tariffs.engine import price_session
from tariffs.errors import TariffError
from tariffs.ocpi import cdr_totals_to_ocpi, parse_session, parse_tariff

logger = logging.getLogger(__name__)


class TariffCommandError(FairwattError):
    """A tariff or session file the command cannot use; the message names the file and field."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tariffs",
        help="check OCPI tariffs: price a session, print the CDR totals",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="tariffs_command", metavar="ACTION", required=True)
    price = actions.add_parser("price", help="price a session (OCPI charging periods) with a tariff")
    price.add_argument("--tariff", required=True, type=Path, metavar="TARIFF.json", help="OCPI 2.2.1 Tariff")
    price.add_argument(
        "--session",
        required=True,
        type=Path,
        metavar="SESSION.json",
        help="charging periods, a CDR or a case file",
    )
    price.add_argument("--time-zone", metavar="ZONE", help="IANA zone of the location, e.g. Europe/Berlin")
    price.set_defaults(handler=run)
    register_operations(actions)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TariffCommandError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise TariffCommandError(f"{path}: not UTF-8 text ({exc.reason})") from None
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise TariffCommandError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None


def _unwrap(document: Any, key: str) -> tuple[Any, str]:
    """The object under ``key`` when ``document`` is a case file (or an OCPI response), else itself."""
    if isinstance(document, dict):
        if key in document and isinstance(document[key], dict):
            return document[key], key
        if "data" in document and isinstance(document["data"], dict):
            return document["data"], "data"
    return document, ""


def _time_zone(name: str) -> ZoneInfo:
    zone = find_zone(name)
    if zone is None:
        raise TariffCommandError(f"unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)")
    return zone


def _json_number(value: object) -> object:
    # Every Decimal printed here has at most 15 significant digits (rounded money and quantities,
    # or volumes read from JSON), so the float's shortest repr is exactly the decimal text.
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and value.as_tuple().exponent == 0
            else float(value)
        )
    raise TypeError(f"cannot encode {type(value).__name__}")


def run(args: argparse.Namespace) -> int:
    tariff_document, tariff_prefix = _unwrap(_read_json(args.tariff), "tariff")
    session_document = _read_json(args.session)
    session_object, session_prefix = _unwrap(session_document, "session")
    zone_name = args.time_zone
    if (
        zone_name is None
        and isinstance(session_document, dict)
        and isinstance(session_document.get("time_zone"), str)
    ):
        zone_name = session_document["time_zone"]
    time_zone = _time_zone(zone_name or "UTC")
    try:
        tariff = parse_tariff(tariff_document, tariff_prefix)
    except TariffError as exc:
        raise TariffCommandError(f"{args.tariff}: {exc}") from None
    try:
        session = parse_session(session_object, session_prefix)
    except TariffError as exc:
        raise TariffCommandError(f"{args.session}: {exc}") from None
    try:
        totals = price_session(tariff, session, time_zone)
    except TariffError as exc:
        raise TariffCommandError(
            f"cannot price {args.session} with tariff {tariff.tariff_id}: {exc}"
        ) from None
    logger.info("priced %s with tariff %s in %s", args.session, tariff.tariff_id, time_zone.key)
    json.dump(cdr_totals_to_ocpi(totals), sys.stdout, indent=2, default=_json_number)
    sys.stdout.write("\n")
    return 0
