"""The PKI on two central-system nodes sharing PostgreSQL and Redis: the charger on node 1, the
operator's revocations, renewals and certificate commands from node 2."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiohttp import web
from ocpp.v201 import call
from redis.asyncio import Redis

from csms.commands.certificates import InstallCertificateUse, install_certificate
from csms.pki.runtime import PKI, PkiRuntime
from csms.redis_state import RedisKeys
from csms.server import CSMS, CsmsRuntime, create_app
from tests.csms.chargers import connected
from tests.csms.conftest import make_settings
from tests.csms.pki.factory import Pki, csr, pem
from tests.csms.pki.harness import (
    ContractAuthorizer,
    PncCharger,
    install_test_pki,
    pki_settings,
    wait_installed,
)

pytestmark = pytest.mark.asyncio

REDIS_URL = "redis://127.0.0.1:6379/0"
EMAID = "DE-FWT-C50000001-1"


@dataclass
class Node:
    csms: CsmsRuntime
    pki: PkiRuntime
    port: int

    def url(self, charger_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charger_id}"


@pytest_asyncio.fixture
async def nodes(database_dsn: str, pki: Pki) -> AsyncIterator[tuple[Node, Node]]:
    keys = RedisKeys(f"fairwatt-test:{uuid.uuid4().hex}:")
    runners: list[web.AppRunner] = []
    started: list[Node] = []
    try:
        for node_id in ("pki-node-1", "pki-node-2"):
            settings = make_settings(
                database_dsn,
                auto_register=True,
                redis_url=REDIS_URL,
                redis_key_prefix=keys.prefix,
                node_id=node_id,
            )
            app = create_app(settings, authorizer=ContractAuthorizer({EMAID}))
            install_test_pki(app, pki, pki_settings(station_certificate_days=1, renewal_lead_days=30))
            runner = web.AppRunner(app)
            await runner.setup()
            runners.append(runner)
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            await web.SockSite(runner, listener).start()
            started.append(Node(app[CSMS], app[PKI], listener.getsockname()[1]))
        yield started[0], started[1]
    finally:
        for runner in runners:
            await runner.cleanup()
        redis = Redis.from_url(REDIS_URL, decode_responses=True)
        stale = [key async for key in redis.scan_iter(match=keys.prefix + "*")]
        if stale:
            await redis.delete(*stale)
        await redis.aclose()


async def test_revocation_renewal_and_roots_from_the_other_node(nodes: tuple[Node, Node], pki: Pki) -> None:
    node1, node2 = nodes
    charger_id = f"CS-2N-{uuid.uuid4().hex[:6]}"
    leaf, _ = pki.contract(EMAID)
    authorize = call.Authorize(id_token={"id_token": EMAID, "type": "eMAID"}, certificate=pki.chain(leaf))
    async with connected(PncCharger, node1.url(charger_id), charger_id, "ocpp2.0.1") as charger:
        await charger.call(
            call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"),
            suppress=False,
        )
        assert (await charger.call(authorize, suppress=False)).certificate_status == "Accepted"
        assert await node2.pki.inventory.revoke_contract(EMAID, "from node 2")
        assert (await charger.call(authorize, suppress=False)).certificate_status == "ContractCancelled"

        assert (
            await charger.call(call.SignCertificate(csr=csr(charger_id)[0]), suppress=False)
        ).status == "Accepted"
        await asyncio.wait_for(charger.signed.get(), 5)
        await wait_installed(node2.pki, charger_id)
        renewed = await node2.pki.renewal.run_once()  # node 2 claims it, the trigger goes through Redis
        assert charger_id in [r.charger_id for r in renewed]
        assert await asyncio.wait_for(charger.triggers.get(), 5) == "SignChargingStationCertificate"

        root_pem = pem(pki.mo_root.certificate)
        result = await install_certificate(
            node2.csms.commands, charger_id, InstallCertificateUse.MO_ROOT, root_pem
        )
        assert result.accepted
        assert charger.installed == {"MORootCertificate": root_pem}
