"""The CSMS with the PKI installed on a free port, and a 2.0.1 charger that handles certificate CALLs."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from csms.domain.events import Authorization, AuthorizationStatus, IdToken
from csms.pki.app import install
from csms.pki.certs import load_chain
from csms.pki.provider import ContractCertificateProvider, LocalContractProvider
from csms.pki.revocation import RevocationSettings
from csms.pki.runtime import PKI, PkiRuntime
from csms.pki.settings import PkiSettings
from csms.pki.signing import CertificateUse
from csms.server import CSMS, CsmsRuntime, create_app
from csms.settings import CsmsSettings
from tests.csms.chargers import Charger201
from tests.csms.pki.factory import Pki


class ContractAuthorizer:
    """Accepts the eMAIDs of known contracts, Unknown for the rest (the sessions package's role)."""

    def __init__(self, contracts: Iterable[str] = ()) -> None:
        self.contracts = set(contracts)
        self.asked: list[IdToken] = []

    async def authorize(self, charger_id: str, id_token: IdToken) -> Authorization:
        self.asked.append(id_token)
        return Authorization(
            AuthorizationStatus.ACCEPTED if id_token.value in self.contracts else AuthorizationStatus.UNKNOWN
        )


def _serial(certificate_pem: str) -> str:
    return format(load_chain(certificate_pem)[0].serial_number, "x")


class PncCharger(Charger201):
    """Answers the certificate CALLs of the CSMS and keeps what it was sent."""

    installed: dict[str, str]

    def __init__(self, charger_id: str, connection: Any) -> None:
        super().__init__(charger_id, connection)
        self.installed = {}
        self.signed: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.triggers: asyncio.Queue[str] = asyncio.Queue()

    @on(Action.certificate_signed)
    async def on_certificate_signed(self, **request: Any) -> Any:
        await self.signed.put(request)
        return call_result.CertificateSigned(status="Accepted")

    @on(Action.trigger_message)
    async def on_trigger_message(self, **request: Any) -> Any:
        await self.triggers.put(request["requested_message"])
        return call_result.TriggerMessage(status="Accepted")

    @on(Action.install_certificate)
    async def on_install_certificate(self, **request: Any) -> Any:
        self.installed[request["certificate_type"]] = request["certificate"]
        return call_result.InstallCertificate(status="Accepted")

    @on(Action.get_installed_certificate_ids)
    async def on_get_installed_certificate_ids(self, **request: Any) -> Any:
        chains = [
            {
                "certificate_type": certificate_type,
                "certificate_hash_data": {
                    "hash_algorithm": "SHA256",
                    "issuer_name_hash": "aa",
                    "issuer_key_hash": "bb",
                    "serial_number": _serial(certificate),
                },
            }
            for certificate_type, certificate in sorted(self.installed.items())
        ]
        if not chains:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        return call_result.GetInstalledCertificateIds(status="Accepted", certificate_hash_data_chain=chains)

    @on(Action.delete_certificate)
    async def on_delete_certificate(self, **request: Any) -> Any:
        serial = request["certificate_hash_data"]["serial_number"]
        for certificate_type, certificate in list(self.installed.items()):
            if _serial(certificate) == serial:
                del self.installed[certificate_type]
                return call_result.DeleteCertificate(status="Accepted")
        return call_result.DeleteCertificate(status="NotFound")


async def wait_installed(pki: PkiRuntime, charger_id: str, serial_number: int | None = None) -> None:
    """Until the central system has the charger's Accepted for its newest certificate (or the one
    of ``serial_number``): a test charger that left earlier would lose the answer with its socket."""

    async def installed() -> bool:
        issued = await pki.inventory.issued_to(charger_id)
        if serial_number is not None:
            issued = [c for c in issued if c.serial_number == format(serial_number, "x")]
        return bool(issued) and issued[0].installed_at is not None

    for _ in range(500):
        if await installed():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"charger {charger_id}: no certificate installed")


@dataclass
class PncCsms:
    csms: CsmsRuntime
    pki: PkiRuntime
    port: int
    authorizer: ContractAuthorizer

    def url(self, charger_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charger_id}"


def pki_settings(**overrides: Any) -> PkiSettings:
    defaults: dict[str, Any] = {
        "revocation": RevocationSettings(cache_ttl_s=0.0, ocsp_timeout_s=2.0),
        "organization_name": "fairwatt CPO",
    }
    defaults.update(overrides)
    return PkiSettings(**defaults)


def install_test_pki(
    app: web.Application, pki: Pki, settings: PkiSettings, provider: ContractCertificateProvider | None = None
) -> PkiRuntime:
    return install(
        app,
        settings,
        authorities={
            CertificateUse.CHARGING_STATION: pki.station_sub.authority(),
            CertificateUse.V2G: pki.cpo_sub.authority(),
        },
        trust_anchors=[pki.mo_root.certificate],
        contract_sub_cas=[pki.mo_sub.certificate],
        provider=provider
        or LocalContractProvider(
            pki.mo_sub.authority(),
            ocsp_url=f"{pki.responder.base_url}/ocsp",
            crl_url=f"{pki.responder.base_url}/crl/{pki.mo_sub.name}",
        ),
    )


@asynccontextmanager
async def running_pnc_csms(
    csms_settings: CsmsSettings,
    pki: Pki,
    settings: PkiSettings,
    authorizer: ContractAuthorizer,
    provider: ContractCertificateProvider | None = None,
) -> AsyncIterator[PncCsms]:
    app = create_app(csms_settings, authorizer=authorizer)
    install_test_pki(app, pki, settings, provider)
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    try:
        yield PncCsms(app[CSMS], app[PKI], port, authorizer)
    finally:
        await runner.cleanup()
