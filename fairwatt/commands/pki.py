"""``fairwatt pki``: the operator's revocations and the certificate inventory of the PKI.

    fairwatt pki revoke-contract EMAID [--reason TEXT]
    fairwatt pki revoke-charger CHARGER_ID [--reason TEXT]
    fairwatt pki certificates CHARGER_ID

Revoking a contract makes the next Plug & Charge Authorize with it answer ContractCancelled;
revoking a charger refuses its next security-profile-3 connection with any certificate it holds
so far. The command writes to the central system's PostgreSQL (``--database-url`` or
``DATABASE_URL``), which every node reads at Authorize and at the TLS handshake.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from csms.errors import CsmsError
from csms.pki.inventory import CertificateInventory
from csms.storage.database import Database
from fairwatt.errors import FairwattError


class PkiCommandError(FairwattError):
    """The PKI command cannot run (no database, or the database refused)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pki",
        help="Plug & Charge and charger certificates: revoke contracts and chargers, list certificates",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="pki_command", metavar="ACTION", required=True)
    contract = actions.add_parser("revoke-contract", help="cancel a Plug & Charge contract (by eMAID)")
    contract.add_argument("emaid", metavar="EMAID")
    contract.add_argument("--reason", help="why (kept with the revocation)")
    contract.set_defaults(handler=_revoke_contract)
    charger = actions.add_parser("revoke-charger", help="revoke every certificate a charger holds")
    charger.add_argument("charger_id", metavar="CHARGER_ID")
    charger.add_argument("--reason", help="why (kept with the revocation)")
    charger.set_defaults(handler=_revoke_charger)
    listing = actions.add_parser("certificates", help="the certificates issued to a charger, as JSON")
    listing.add_argument("charger_id", metavar="CHARGER_ID")
    listing.set_defaults(handler=_certificates)
    for action in (contract, charger, listing):
        action.add_argument(
            "--database-url", metavar="URL", help="PostgreSQL of the central system (DATABASE_URL)"
        )


def _with_inventory(args: argparse.Namespace, work: Callable[[CertificateInventory], Awaitable[Any]]) -> Any:
    dsn = args.database_url or os.environ.get("DATABASE_URL")
    if not dsn:
        raise PkiCommandError("no database: give --database-url or set DATABASE_URL")

    async def run() -> Any:
        database = Database(dsn, max_connections=1)
        try:
            await database.open()
            return await work(CertificateInventory(database))
        finally:
            await database.close()

    try:
        return asyncio.run(run())
    except (CsmsError, OSError) as exc:
        raise PkiCommandError(f"database {dsn.rsplit('@', 1)[-1]}: {exc}") from None


def _revoke_contract(args: argparse.Namespace) -> int:
    revoked = _with_inventory(args, lambda inventory: inventory.revoke_contract(args.emaid, args.reason))
    print(f"contract {args.emaid}: {'revoked' if revoked else 'already revoked'}")
    return 0


def _revoke_charger(args: argparse.Namespace) -> int:
    count = _with_inventory(args, lambda inventory: inventory.revoke_charger(args.charger_id, args.reason))
    print(f"charger {args.charger_id}: revoked ({count} issued certificate(s) marked revoked)")
    return 0


def _certificates(args: argparse.Namespace) -> int:
    issued = _with_inventory(args, lambda inventory: inventory.issued_to(args.charger_id))
    rows = [
        {
            "certificate_type": i.certificate_type,
            "serial_number": i.serial_number,
            "issuer": i.issuer,
            "not_after": i.not_after.isoformat(),
            "revoked_at": i.revoked_at.isoformat() if i.revoked_at else None,
        }
        for i in issued
    ]
    json.dump(rows, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
