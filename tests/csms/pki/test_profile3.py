"""Security profile 3 with a charging-station certificate issued through SignCertificate, and a
revoked charger refused at the TLS WebSocket handshake."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.v201 import call

from csms.pki.runtime import PKI, PkiRuntime
from csms.pki.signing import CertificateUse, check_csr, issue_certificate
from csms.server import create_app
from csms.tls import build_server_context
from tests.csms.chargers import ClientConnection
from tests.csms.conftest import make_settings
from tests.csms.pki.factory import Pki, csr, key_pem, pem, root, server_certificate, sub_ca
from tests.csms.pki.harness import ContractAuthorizer, PncCharger, install_test_pki, pki_settings

pytestmark = pytest.mark.asyncio


@asynccontextmanager
async def profile3_csms(
    database_dsn: str, pki: Pki, directory: Path
) -> AsyncIterator[tuple[PkiRuntime, int]]:
    server, server_key = server_certificate(pki.csms_root)
    (directory / "server.crt").write_text(pem(server))
    (directory / "server.key").write_bytes(key_pem(server_key))
    (directory / "client-ca.crt").write_text(pem(pki.csms_root.certificate))
    settings = make_settings(
        database_dsn,
        auto_register=True,
        security_profile=3,
        tls_certificate_file=str(directory / "server.crt"),
        tls_private_key_file=str(directory / "server.key"),
        tls_client_ca_file=str(directory / "client-ca.crt"),
    )
    app = create_app(settings, authorizer=ContractAuthorizer())
    install_test_pki(app, pki, pki_settings())
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener, ssl_context=build_server_context(settings)).start()
    try:
        yield app[PKI], port
    finally:
        await runner.cleanup()


def client_context(
    pki: Pki, directory: Path, name: str, chain_pem: str, holder: ec.EllipticCurvePrivateKey
) -> ssl.SSLContext:
    (directory / f"{name}.crt").write_text(chain_pem)
    (directory / f"{name}.key").write_bytes(key_pem(holder))
    (directory / "server-ca.crt").write_text(pem(pki.csms_root.certificate))
    context = ssl.create_default_context(cafile=str(directory / "server-ca.crt"))
    context.load_cert_chain(str(directory / f"{name}.crt"), str(directory / f"{name}.key"))
    return context


@asynccontextmanager
async def tls_charger(port: int, charger_id: str, context: ssl.SSLContext) -> AsyncIterator[Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"wss://127.0.0.1:{port}/ocpp/{charger_id}", protocols=("ocpp2.0.1",), ssl=context
        ) as websocket,
    ):
        charger = PncCharger(charger_id, ClientConnection(websocket))
        serving = asyncio.create_task(charger.start())
        try:
            yield charger
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)


async def handshake_status(port: int, charger_id: str, context: ssl.SSLContext) -> int:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as failure:
            await http.ws_connect(
                f"wss://127.0.0.1:{port}/ocpp/{charger_id}", protocols=("ocpp2.0.1",), ssl=context
            )
    return failure.value.status


async def boots(charger: Any) -> str:
    answer = await charger.call(
        call.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp"),
        suppress=False,
    )
    return str(answer.status)


async def test_a_certificate_from_sign_certificate_connects_and_revocation_closes_the_door(
    database_dsn: str, pki: Pki, tmp_path: Path
) -> None:
    identity = "CP-P3-PNC"
    # The factory's certificate, signed by the station sub-CA before the charger first connected.
    factory_request, factory_key = csr(identity)
    factory_sub = pki.station_sub
    factory_certificate = issue_certificate(
        check_csr(factory_request, identity, CertificateUse.CHARGING_STATION, organization_name=None),
        factory_sub.authority(),
        lifetime=timedelta(days=10),
    )
    async with profile3_csms(database_dsn, pki, tmp_path) as (runtime, port):
        factory = client_context(
            pki, tmp_path, "factory", pem(factory_certificate, factory_sub.certificate), factory_key
        )
        request, new_key = csr(identity)
        async with tls_charger(port, identity, factory) as charger:
            assert await boots(charger) == "Accepted"
            # The factory certificate (10 days) is tracked and due for renewal (30 days ahead).
            assert [r.serial_number for r in await runtime.renewal.run_once()] == [
                format(factory_certificate.serial_number, "x")
            ]
            assert await asyncio.wait_for(charger.triggers.get(), 5) == "SignChargingStationCertificate"
            answer = await charger.call(call.SignCertificate(csr=request), suppress=False)
            assert answer.status == "Accepted"
            signed = await asyncio.wait_for(charger.signed.get(), 5)
            # stay connected until the central system has the charger's Accepted (it supersedes the
            # factory certificate then); leaving earlier would make it revoke the unanswered one
            factory_serial = format(factory_certificate.serial_number, "x")

            async def factory_superseded() -> bool:
                issued = await runtime.inventory.issued_to(identity)
                return any(c.serial_number == factory_serial and c.superseded_at for c in issued)

            for _ in range(500):
                if await factory_superseded():
                    break
                await asyncio.sleep(0.02)
            assert await factory_superseded()
        issued = client_context(pki, tmp_path, "issued", signed["certificate_chain"], new_key)
        async with tls_charger(port, identity, issued) as charger:
            assert await boots(charger) == "Accepted"
        assert await runtime.renewal.run_once() == []  # ours (365 days) supersedes the factory's
        assert await runtime.inventory.revoke_charger(identity, "stolen") == 2  # factory's and ours
        assert await handshake_status(port, identity, issued) == 403
        # The factory certificate predates the revocation too.
        assert await handshake_status(port, identity, factory) == 403


async def test_a_rogue_sub_ca_is_not_trusted_at_the_handshake(
    database_dsn: str, pki: Pki, tmp_path: Path
) -> None:
    rogue = sub_ca("Station Sub-CA", root("CSMS Root CA"))
    request, holder = csr("CP-P3-ROGUE")
    certificate = issue_certificate(
        check_csr(request, "CP-P3-ROGUE", CertificateUse.CHARGING_STATION, organization_name=None),
        rogue.authority(),
        lifetime=timedelta(days=10),
    )
    async with profile3_csms(database_dsn, pki, tmp_path) as (_, port):
        context = client_context(pki, tmp_path, "rogue", pem(certificate, rogue.certificate), holder)
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientError):
                await http.ws_connect(
                    f"wss://127.0.0.1:{port}/ocpp/CP-P3-ROGUE", protocols=("ocpp2.0.1",), ssl=context
                )
