"""``fairwatt pki``: revocations written by the CLI reach the running central system."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from ocpp.v201 import call

from fairwatt.commands import pki as pki_command
from tests.csms.chargers import connected
from tests.csms.conftest import make_settings
from tests.csms.pki.factory import Pki, csr
from tests.csms.pki.harness import (
    ContractAuthorizer,
    PncCharger,
    PncCsms,
    pki_settings,
    running_pnc_csms,
    wait_installed,
)

pytestmark = pytest.mark.asyncio

EMAID = "DE-FWT-C20000001-1"


@pytest_asyncio.fixture
async def pnc(database_dsn: str, pki: Pki) -> AsyncIterator[PncCsms]:
    settings = make_settings(database_dsn, auto_register=True)
    async with running_pnc_csms(settings, pki, pki_settings(), ContractAuthorizer({EMAID})) as running:
        yield running


def run_cli(argv: list[str]) -> int:
    """``fairwatt pki ...`` with only this command registered (the other commands are not under test)."""
    parser = argparse.ArgumentParser(prog="fairwatt")
    pki_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(run_cli, list(argv))


async def test_revoke_contract_from_the_cli_refuses_the_next_authorize(
    pnc: PncCsms, pki: Pki, database_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf, _ = pki.contract(EMAID)
    async with connected(PncCharger, pnc.url("CP-CLI-1"), "CP-CLI-1", "ocpp2.0.1") as charger:
        request = call.Authorize(id_token={"id_token": EMAID, "type": "eMAID"}, certificate=pki.chain(leaf))
        assert (await charger.call(request, suppress=False)).certificate_status == "Accepted"
        assert (
            await cli("pki", "revoke-contract", EMAID, "--reason", "lost", "--database-url", database_dsn)
            == 0
        )
        answer = await charger.call(request, suppress=False)
        assert (answer.id_token_info["status"], answer.certificate_status) == ("Blocked", "ContractCancelled")
    assert await cli("pki", "revoke-contract", EMAID, "--database-url", database_dsn) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"contract {EMAID}: already revoked"


async def test_revoke_charger_and_list_its_certificates(
    pnc: PncCsms, database_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with connected(PncCharger, pnc.url("CP-CLI-2"), "CP-CLI-2", "ocpp2.0.1") as charger:
        assert (
            await charger.call(call.SignCertificate(csr=csr("CP-CLI-2")[0]), suppress=False)
        ).status == "Accepted"
        await asyncio.wait_for(charger.signed.get(), 5)
        await wait_installed(pnc.pki, "CP-CLI-2")
    capsys.readouterr()
    assert await cli("pki", "revoke-charger", "CP-CLI-2", "--database-url", database_dsn) == 0
    assert "1 issued certificate(s)" in capsys.readouterr().out
    assert await cli("pki", "certificates", "CP-CLI-2", "--database-url", database_dsn) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["certificate_type"], r["revoked_at"] is not None) for r in rows] == [
        ("ChargingStationCertificate", True)
    ]


async def test_without_a_database_the_cli_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(pki_command.PkiCommandError, match="no database"):
        await cli("pki", "revoke-contract", EMAID)
