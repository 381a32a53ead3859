"""``fairwatt drivers``: create drivers and mint their bearer tokens (for demos and tests).

    fairwatt drivers create alice --rfid 04A1B2C3 --payment-token tok_visa   # needs DATABASE_URL
    fairwatt drivers token alice --ttl-s 900                                 # prints a bearer token

``create`` stores the driver, RFID tokens the chargers may present, and a payment method holding
only the payment provider's token (its id is ``PM-{driver}``), in the server's PostgreSQL
(``--database-url`` or ``DATABASE_URL``); running it again updates the driver. ``token`` signs a
short-lived driver token with the server's token secret (``--secret-file`` or
``FAIRWATT_TOKEN_SECRET``, the secret ``fairwatt serve`` verifies with); with ``DATABASE_URL`` set
it refuses a driver that does not exist.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TypeVar

from csms.storage.database import Database
from fairwatt.commands.direct import server_token_secret, with_database
from fairwatt.errors import FairwattError
from sessions.app import SESSIONS_MIGRATIONS
from sessions.auth import Role, TokenIssuer
from sessions.drivers import NewDriver, create_driver, driver_exists
from sessions.errors import SessionsError

T = TypeVar("T")


class DriversError(FairwattError):
    """A driver cannot be created, or a token minted, as asked."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "drivers",
        help="create drivers and mint their bearer tokens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="drivers_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create or update a driver (needs the database)")
    create.add_argument("driver_id")
    create.add_argument(
        "--rfid", action="append", default=[], metavar="ID_TAG", help="an RFID token (repeatable)"
    )
    create.add_argument("--payment-token", help="the payment provider's token (never card data)")
    create.add_argument("--name")
    create.add_argument("--email")
    create.add_argument("--cpo", help="the CPO the driver belongs to")
    create.add_argument("--database-url", metavar="URL", help="the server's PostgreSQL (or DATABASE_URL)")
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=_create)
    token = actions.add_parser("token", help="mint a driver's bearer token")
    token.add_argument("driver_id")
    token.add_argument("--ttl-s", type=int, default=900, help="lifetime in seconds (default 900)")
    token.add_argument(
        "--secret-file", type=Path, help="the server's token secret (or FAIRWATT_TOKEN_SECRET)"
    )
    token.add_argument("--database-url", metavar="URL", help="check the driver exists (or DATABASE_URL)")
    token.set_defaults(handler=_token)


def _dsn(args: argparse.Namespace, *, required: bool) -> str | None:
    dsn: str | None = args.database_url or os.environ.get("DATABASE_URL")
    if dsn is None and required:
        raise DriversError("no database: give --database-url or set DATABASE_URL")
    return dsn


def _create(args: argparse.Namespace) -> int:
    dsn = _dsn(args, required=True)
    assert dsn is not None
    try:
        driver = NewDriver(
            args.driver_id,
            rfid_tokens=tuple(args.rfid),
            payment_token=args.payment_token,
            name=args.name,
            email=args.email,
            cpo_id=args.cpo,
        )
    except SessionsError as exc:
        raise DriversError(str(exc)) from None

    async def work(database: Database) -> None:
        await create_driver(database, driver)

    try:
        asyncio.run(with_database(dsn, (SESSIONS_MIGRATIONS,), work, DriversError))
    except SessionsError as exc:
        raise DriversError(str(exc)) from None
    summary = {
        "driver_id": driver.driver_id,
        "rfid_tokens": list(driver.rfid_tokens),
        "payment_method_id": driver.payment_method_id,
    }
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"driver {driver.driver_id}: payment method {driver.payment_method_id or '(none)'}")
    return 0


def _token(args: argparse.Namespace) -> int:
    if args.ttl_s <= 0 or args.ttl_s > 86_400:
        raise DriversError("--ttl-s must be between 1 and 86400 seconds (driver tokens are short-lived)")
    try:
        issuer = TokenIssuer(server_token_secret(args.secret_file, DriversError))
    except SessionsError as exc:
        raise DriversError(str(exc)) from None
    dsn = _dsn(args, required=False)
    if dsn is not None:

        async def work(database: Database) -> bool:
            return await driver_exists(database, args.driver_id)

        if not asyncio.run(with_database(dsn, (SESSIONS_MIGRATIONS,), work, DriversError)):
            raise DriversError(f"no driver {args.driver_id}; create it first with: fairwatt drivers create")
    print(issuer.mint(args.driver_id, Role.DRIVER, ttl_s=args.ttl_s))
    return 0
