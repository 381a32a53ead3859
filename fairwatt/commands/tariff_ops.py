"""``fairwatt tariffs set|show``: publish and read tariffs on a running server (operator API).

``set`` publishes the file's OCPI Tariff as the tariff's next version (in force from now unless
it says ``start_date_time``: running sessions keep the version they started with) and optionally
assigns it to stations or chargers; ``show`` lists the tariffs, or one with its versions.
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
from pathlib import Path
from typing import Any

from fairwatt.errors import FairwattError
from fairwatt.operator.render import add_output_arguments, client, emit, fields, table


class TariffFileError(FairwattError):
    """The tariff file cannot be read as a JSON object."""


def register_operations(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    set_ = actions.add_parser("set", help="publish a tariff version on the running server")
    set_.add_argument("--file", required=True, type=Path, metavar="TARIFF.json", help="OCPI 2.2.1 Tariff")
    set_.add_argument("--station", action="append", default=[], help="assign to this station (repeatable)")
    set_.add_argument("--charger", action="append", default=[], help="assign to this charger (repeatable)")
    add_output_arguments(set_)
    set_.set_defaults(handler=_set)
    show = actions.add_parser("show", help="your tariffs, or one tariff's versions and assignments")
    show.add_argument("tariff_id", nargs="?")
    add_output_arguments(show)
    show.set_defaults(handler=_show)


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TariffFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise TariffFileError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise TariffFileError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    if not isinstance(document, dict) or not isinstance(document.get("id"), str):
        raise TariffFileError(f"{path}: expected an OCPI Tariff object with an 'id'")
    return document


def _set(args: argparse.Namespace) -> int:
    tariff = _read(args.file)
    query = urllib.parse.urlencode(
        [("station", s) for s in args.station] + [("charger", c) for c in args.charger]
    )
    path = f"/v1/operator/tariffs/{urllib.parse.quote(tariff['id'], safe='')}" + (
        f"?{query}" if query else ""
    )
    document = client(args).put(path, tariff)
    emit(args, document, lambda d: print(f"tariff {d['tariff_id']}: version {d['versions']} published"))
    return 0


def _show(args: argparse.Namespace) -> int:
    operator = client(args)
    if args.tariff_id is None:
        document = operator.get("/v1/operator/tariffs")
        emit(
            args,
            document,
            lambda d: table(d["tariffs"], ("tariff_id", "version", "created_at", "created_by")),
        )
        return 0
    document = operator.get(f"/v1/operator/tariffs/{urllib.parse.quote(args.tariff_id, safe='')}")

    def readable(d: dict[str, Any]) -> None:
        current = d["current"]
        fields(
            {
                "tariff_id": d["tariff_id"],
                "currency": current.get("currency"),
                "from": current.get("start_date_time"),
            }
        )
        for k, element in enumerate(current.get("elements", [])):
            prices = ", ".join(f"{c['type']} {c['price']}" for c in element.get("price_components", []))
            restrictions = (
                f" when {json.dumps(element['restrictions'])}" if element.get("restrictions") else ""
            )
            print(f"  element {k}: {prices}{restrictions}")
        print()
        table(d["versions"], ("version", "created_at", "created_by"))
        print()
        table(d["assignments"], ("scope", "scope_id"))

    emit(args, document, readable)
    return 0
