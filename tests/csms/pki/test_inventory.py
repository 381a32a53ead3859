"""CertificateInventory against the real PostgreSQL: which certificate is current after installs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from cryptography import x509

from csms.pki.inventory import CertificateInventory
from csms.storage.database import Database
from tests.csms.pki.factory import contract, root

pytestmark = pytest.mark.asyncio

TYPE = "ChargingStationCertificate"


@pytest_asyncio.fixture
async def inventory(database_dsn: str) -> AsyncIterator[CertificateInventory]:
    database = Database(database_dsn)
    await database.open()
    try:
        yield CertificateInventory(database)
    finally:
        await database.close()


def certificates(count: int) -> list[x509.Certificate]:
    authority = root("Inventory Test CA")
    return [contract(f"CP-{n}", authority, base_url=None)[0] for n in range(count)]


async def superseded(inventory: CertificateInventory, charger_id: str) -> list[bool]:
    """Oldest first: whether each certificate issued to the charger is superseded."""
    return [c.superseded_at is not None for c in reversed(await inventory.issued_to(charger_id))]


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(("issue", "install", "issue"), id="installed-before-the-next-is-issued"),
        # the server records each CertificateSigned answer in its own task, so the first one's
        # record may come after the second certificate was issued: it must not supersede that one
        pytest.param(("issue", "issue", "install"), id="late-install-record-of-the-older"),
    ],
)
async def test_installing_supersedes_only_the_older_certificates(
    inventory: CertificateInventory, steps: tuple[str, ...]
) -> None:
    charger_id = f"CP-INV-{uuid.uuid4().hex[:8]}"
    first, second = certificates(2)
    issued = iter((first, second))
    for step in steps:
        if step == "issue":
            await inventory.record_issued(charger_id, TYPE, next(issued))
        else:
            await inventory.installed(charger_id, TYPE, first)
    assert await superseded(inventory, charger_id) == [False, False]
    await inventory.installed(charger_id, TYPE, second)
    assert await superseded(inventory, charger_id) == [True, False]


async def test_install_records_in_reverse_order_leave_the_newest_current(
    inventory: CertificateInventory,
) -> None:
    charger_id = f"CP-INV-{uuid.uuid4().hex[:8]}"
    first, second = certificates(2)
    await inventory.record_issued(charger_id, TYPE, first)
    await inventory.record_issued(charger_id, TYPE, second)
    await inventory.installed(charger_id, TYPE, second)
    await inventory.installed(charger_id, TYPE, first)
    assert await superseded(inventory, charger_id) == [True, False]
    assert [c.installed_at is not None for c in await inventory.issued_to(charger_id)] == [True, True]
