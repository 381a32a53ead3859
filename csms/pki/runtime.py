"""The PKI as the app holds it: ``app[PKI]`` (set by :func:`csms.pki.install`)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

from aiohttp import web
from cryptography import x509

from csms.commands import CommandBus
from csms.pki.inventory import CertificateInventory
from csms.pki.provider import ContractCertificateProvider
from csms.pki.renewal import RenewalScheduler
from csms.pki.revocation import NetworkRevocationChecker
from csms.pki.service import CertificateSigner, PlugAndCharge
from csms.pki.settings import PkiSettings
from csms.tasks import TaskOwner

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PkiRuntime:
    settings: PkiSettings
    plug_and_charge: PlugAndCharge
    signer: CertificateSigner
    provider: ContractCertificateProvider
    inventory: CertificateInventory
    revocation: NetworkRevocationChecker
    renewal: RenewalScheduler
    commands: CommandBus
    tasks: TaskOwner
    """The CSMS's task owner: CertificateSigned is sent from a task, not from the handler."""

    async def client_certificate_revoked(
        self, charger_id: str, transport: asyncio.BaseTransport | None
    ) -> bool:
        """Security profile 3: whether the charger's TLS client certificate is on our revocation list.

        A certificate we did not issue (the factory's) is tracked from here on, so the renewal task
        asks for a CSR before it expires."""
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            return False
        der = ssl_object.getpeercert(binary_form=True)
        if der is None:
            return False
        certificate = x509.load_der_x509_certificate(der)
        if await self.inventory.client_certificate_revoked(charger_id, certificate):
            logger.warning("charger %s: client certificate is revoked, rejected", charger_id)
            return True
        if await self.inventory.observe_client_certificate(charger_id, certificate):
            logger.info(
                "charger %s: tracking its client certificate (expires %s) for renewal",
                charger_id,
                certificate.not_valid_after_utc.isoformat(),
            )
        return False


PKI = web.AppKey("csms-pki", PkiRuntime)
