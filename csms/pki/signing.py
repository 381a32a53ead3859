"""SignCertificate: check a charger's CSR and sign it with the operator's sub-CA.

The CSR must be signed by its own key, carry a key strong enough (EC P-256/P-384, RSA >= 2048),
and name the charger that sent it: subject CN = the charging station's identity (OCPP 2.0.1
A02/A03; the id in its OCPP URL), and O = the CPO's name when one is configured. A CSR naming
another charger is refused as a security event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.pki.certs import common_name, organization
from csms.pki.errors import CsrRefusedError
from csms.pki.keystore import CertificateAuthority

_CURVES = (ec.SECP256R1, ec.SECP384R1)
_MIN_RSA_BITS = 2048


class CertificateUse(Enum):
    """OCPP 2.0.1 ``CertificateSigningUseEnumType``."""

    CHARGING_STATION = "ChargingStationCertificate"
    V2G = "V2GCertificate"


@dataclass(frozen=True, slots=True)
class CsrRequest:
    """A checked CSR: who it is for and the key to certify."""

    charger_id: str
    use: CertificateUse
    subject: x509.Name
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def check_csr(
    csr_pem: str, charger_id: str, use: CertificateUse, *, organization_name: str | None
) -> CsrRequest:
    """The CSR as a :class:`CsrRequest`, or :class:`CsrRefusedError` saying why not."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii", "replace"))
    except ValueError as exc:
        raise CsrRefusedError(f"not a PEM certificate signing request: {exc}") from None
    if not csr.is_signature_valid:
        raise CsrRefusedError("the CSR's signature does not verify", security_event=True)
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise CsrRefusedError(f"curve {key.curve.name} is not accepted (P-256 or P-384)")
    elif isinstance(key, rsa.RSAPublicKey):
        if use is CertificateUse.V2G:
            raise CsrRefusedError("ISO 15118 SECC certificates use EC P-256 keys")
        if key.key_size < _MIN_RSA_BITS:
            raise CsrRefusedError(f"RSA keys need {_MIN_RSA_BITS} bits, this one has {key.key_size}")
    else:
        raise CsrRefusedError(f"{type(key).__name__} keys are not accepted")
    name = common_name(csr.subject)
    if name != charger_id:
        raise CsrRefusedError(
            f"the CSR names CN={name!r}, not the charging station {charger_id!r}", security_event=True
        )
    if organization_name is not None and organization(csr.subject) != organization_name:
        raise CsrRefusedError(
            f"the CSR names O={organization(csr.subject)!r}, not the CPO {organization_name!r}",
            security_event=True,
        )
    subject = x509.Name(
        [
            attribute
            for attribute in csr.subject
            if attribute.oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.COUNTRY_NAME)
        ]
    )
    return CsrRequest(charger_id, use, subject, key)


def issue_certificate(
    request: CsrRequest, authority: CertificateAuthority, *, lifetime: timedelta, now: datetime | None = None
) -> x509.Certificate:
    """The end-entity certificate for ``request``, signed by ``authority``."""
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)
    not_after = min(start + lifetime, authority.certificate.not_valid_after_utc)
    server = request.use is CertificateUse.V2G
    builder = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(authority.certificate.subject)
        .public_key(request.public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(request.public_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=isinstance(request.public_key, ec.EllipticCurvePublicKey),
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                if server
                else [ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(request.public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.certificate.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    return authority.sign(builder)
