"""Get15118EVCertificate: the contract-certificate provider behind an interface, and a local one.

A production provider forwards the EV's EXI ``CertificateInstallationReq`` to the mobility
operator's or a Plug & Charge ecosystem's service and returns its ``CertificateInstallationRes``.
:class:`LocalContractProvider` is for tests and demos and does not speak EXI: its request is the
Base64 of a PEM CSR whose subject CN is the eMAID, its answer the Base64 of the PEM chain
(contract certificate, then the MO sub-CA) issued by a local MO sub-CA.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from csms.pki.certs import common_name, to_pem
from csms.pki.keystore import CertificateAuthority


@dataclass(frozen=True, slots=True)
class EvCertificateAnswer:
    accepted: bool
    exi_response: str
    detail: str | None = None


class ContractCertificateProvider(Protocol):
    async def get_certificate(
        self, charger_id: str, schema_version: str, action: str, exi_request: str
    ) -> EvCertificateAnswer:
        """The answer to one Get15118EVCertificate (``action`` Install or Update)."""
        ...


class NoContractProvider:
    """Refuses every request: for deployments without a provider."""

    async def get_certificate(
        self, charger_id: str, schema_version: str, action: str, exi_request: str
    ) -> EvCertificateAnswer:
        return EvCertificateAnswer(False, "", "no contract-certificate provider is configured")


class LocalContractProvider:
    """Issues contract certificates from a local MO sub-CA (see the module docstring for the format)."""

    def __init__(
        self,
        authority: CertificateAuthority,
        *,
        lifetime: timedelta = timedelta(days=365),
        ocsp_url: str | None = None,
        crl_url: str | None = None,
    ) -> None:
        self._authority = authority
        self._lifetime = lifetime
        self._ocsp_url = ocsp_url
        self._crl_url = crl_url

    def issue(
        self, emaid: str, public_key: ec.EllipticCurvePublicKey, *, now: datetime | None = None
    ) -> x509.Certificate:
        """A contract certificate for ``emaid`` (subject CN) and ``public_key``."""
        start = (now or datetime.now(UTC)) - timedelta(minutes=5)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, emaid)]))
            .issuer_name(self._authority.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(min(start + self._lifetime, self._authority.certificate.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, True, False, False, True, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        if self._ocsp_url is not None:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.oid.AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(self._ocsp_url),
                        )
                    ]
                ),
                critical=False,
            )
        if self._crl_url is not None:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(self._crl_url)], None, None, None
                        )
                    ]
                ),
                critical=False,
            )
        return self._authority.sign(builder)

    async def get_certificate(
        self, charger_id: str, schema_version: str, action: str, exi_request: str
    ) -> EvCertificateAnswer:
        try:
            csr = x509.load_pem_x509_csr(base64.b64decode(exi_request, validate=True))
        except (ValueError, binascii.Error):
            return EvCertificateAnswer(False, "", "the request is not a Base64 PEM CSR")
        emaid = common_name(csr.subject)
        key = csr.public_key()
        if not csr.is_signature_valid or emaid is None or not isinstance(key, ec.EllipticCurvePublicKey):
            return EvCertificateAnswer(False, "", "the CSR needs a valid signature, an EC key and CN = eMAID")
        certificate = self.issue(emaid, key)
        chain = to_pem(certificate, *self._authority.chain)
        return EvCertificateAnswer(True, base64.b64encode(chain.encode("ascii")).decode("ascii"))
