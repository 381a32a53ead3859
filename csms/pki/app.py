"""Wiring the PKI into the CSMS app: ``install(app, settings)`` after ``csms.server.create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from cryptography import x509

from csms.pki.certs import load_chain
from csms.pki.errors import KeyStoreError, PkiError
from csms.pki.inventory import CertificateInventory
from csms.pki.keystore import CertificateAuthority, load_file_authority
from csms.pki.provider import ContractCertificateProvider, LocalContractProvider, NoContractProvider
from csms.pki.renewal import RenewalScheduler
from csms.pki.revocation import NetworkRevocationChecker
from csms.pki.runtime import PKI, PkiRuntime
from csms.pki.service import CertificateSigner, PlugAndCharge
from csms.pki.settings import CaFiles, PkiSettings
from csms.pki.signing import CertificateUse
from csms.pki.verify import ContractVerifier
from csms.server import CSMS


def _authority(files: CaFiles | None) -> CertificateAuthority | None:
    return None if files is None else load_file_authority(files.certificate_file, files.key_file)


def _certificates(files: Sequence[str]) -> list[x509.Certificate]:
    roots: list[x509.Certificate] = []
    for name in files:
        try:
            roots.extend(load_chain(Path(name).read_bytes()))
        except OSError as exc:
            raise KeyStoreError(f"{name}: {exc.strerror}") from None
        except PkiError as exc:
            raise KeyStoreError(f"{name}: {exc}") from None
    return roots


def install(
    app: web.Application,
    settings: PkiSettings,
    *,
    authorities: dict[CertificateUse, CertificateAuthority] | None = None,
    trust_anchors: Sequence[x509.Certificate] | None = None,
    contract_sub_cas: Sequence[x509.Certificate] | None = None,
    provider: ContractCertificateProvider | None = None,
) -> PkiRuntime:
    """Give the CSMS app in ``app`` the PKI: ISO 15118 / security certificate messages, revocation at
    the profile-3 handshake, and the renewal task.

    CA keys come from ``authorities`` (an HSM-backed :class:`CertificateAuthority`) or else from the
    files in ``settings``; contract roots from ``trust_anchors`` or ``settings.contract_root_files``,
    MO sub-CAs known ahead from ``contract_sub_cas`` or ``settings.contract_sub_ca_files``.
    """
    csms = app[CSMS]
    if authorities is None:
        authorities = {}
        for use, files in (
            (CertificateUse.CHARGING_STATION, settings.station_ca),
            (CertificateUse.V2G, settings.v2g_ca),
        ):
            authority = _authority(files)
            if authority is not None:
                authorities[use] = authority
    anchors = (
        list(trust_anchors) if trust_anchors is not None else _certificates(settings.contract_root_files)
    )
    if provider is None:
        local = _authority(settings.local_mo_ca)
        provider = LocalContractProvider(local) if local is not None else NoContractProvider()
    inventory = CertificateInventory(csms.database)
    revocation = NetworkRevocationChecker(settings.revocation)
    verifier = ContractVerifier(anchors, revocation, unavailable_policy=settings.revocation_unavailable)
    subs = (
        list(contract_sub_cas)
        if contract_sub_cas is not None
        else _certificates(settings.contract_sub_ca_files)
    )
    for sub in subs:
        if not verifier.add_intermediate(sub):
            raise KeyStoreError(f"sub-CA {sub.subject.rfc4514_string()} is not signed by a contract root")
    runtime = PkiRuntime(
        settings=settings,
        plug_and_charge=PlugAndCharge(
            verifier,
            revocation,
            inventory,
            cache_ttl_s=settings.revocation.cache_ttl_s,
            require_certificate=settings.require_contract_certificate,
        ),
        signer=CertificateSigner(
            authorities,
            inventory,
            lifetimes={
                CertificateUse.CHARGING_STATION: timedelta(days=settings.station_certificate_days),
                CertificateUse.V2G: timedelta(days=settings.v2g_certificate_days),
            },
            organization_name=settings.organization_name,
        ),
        provider=provider,
        inventory=inventory,
        revocation=revocation,
        renewal=RenewalScheduler(inventory, csms.commands, settings),
        commands=csms.commands,
        tasks=csms.tasks,
    )
    app[PKI] = runtime
    app.cleanup_ctx.append(_lifetime)
    return runtime


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    runtime = app[PKI]
    await runtime.revocation.open()
    runtime.tasks.start(runtime.renewal.run(), "pki-renewal")
    try:
        yield
    finally:
        await runtime.revocation.close()
