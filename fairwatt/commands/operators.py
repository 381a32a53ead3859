"""``fairwatt operators``: operator API keys (administration on the server's side).

    fairwatt operators create-key --cpo acme --name alice      # prints the key once
    fairwatt operators revoke-key KEY_ID                        # refused from then on

A key is a long-lived operator token signed with the server's token secret (``--secret-file`` or
``FAIRWATT_TOKEN_SECRET``, the same secret ``fairwatt serve`` signs the API's tokens with). An
operator keeps it in ``FAIRWATT_API_KEY`` (or a file given with ``--api-key-file``); it lets its
holder see and control that CPO's stations only. Revoking needs the server's database
(``DATABASE_URL``); a revoked key is refused within a few seconds on every node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from csms.storage.database import Database
from fairwatt.commands.direct import server_token_secret, with_database
from fairwatt.errors import FairwattError
from fairwatt.operator.app import FAIRWATT_MIGRATIONS
from fairwatt.operator.keys import mint_key, revoke_key
from sessions.app import SESSIONS_MIGRATIONS
from sessions.auth import TokenIssuer
from sessions.errors import SessionsError


class OperatorsError(FairwattError):
    """A key cannot be made or revoked as asked."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "operators",
        help="create and revoke operator API keys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="operators_command", metavar="ACTION", required=True)
    create = actions.add_parser("create-key", help="mint an operator API key for a CPO")
    create.add_argument("--cpo", required=True, help="the CPO (operator) id the key acts for")
    create.add_argument("--name", default="operator", help="who holds the key (recorded in the audit log)")
    create.add_argument(
        "--secret-file", type=Path, help="the server's token secret (or FAIRWATT_TOKEN_SECRET)"
    )
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=_create)
    revoke = actions.add_parser("revoke-key", help="refuse a key from now on (needs DATABASE_URL)")
    revoke.add_argument("key_id", help="the key's id, as create-key printed it")
    revoke.set_defaults(handler=_revoke)


def _create(args: argparse.Namespace) -> int:
    try:
        key_id, key = mint_key(
            TokenIssuer(server_token_secret(args.secret_file, OperatorsError)), args.cpo, args.name
        )
    except (ValueError, SessionsError) as exc:
        raise OperatorsError(str(exc)) from None
    if args.json:
        json.dump({"key_id": key_id, "cpo": args.cpo, "key": key}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"key id: {key_id} (operator {args.cpo})", file=sys.stderr)
        print(key)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise OperatorsError("revoke-key needs the server's database: set DATABASE_URL")

    async def revoke(database: Database) -> bool:
        return await revoke_key(database, args.key_id)

    migrations = (SESSIONS_MIGRATIONS, FAIRWATT_MIGRATIONS)
    fresh = asyncio.run(with_database(dsn, migrations, revoke, OperatorsError))
    print(f"key {args.key_id} {'revoked' if fresh else 'was already revoked'}")
    return 0
