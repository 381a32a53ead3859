"""Small, pure helpers over X.509 objects: PEM chains, names, OCSP ids, AIA and CRL locations."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from csms.pki.errors import PkiError

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}


def load_chain(pem: str | bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, in order (leaf first); :class:`PkiError` if unreadable."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate chain: {exc}") from exc
    if not chain:
        raise PkiError("no certificate in the PEM data")
    return chain


def to_pem(*certificates: x509.Certificate) -> str:
    """``certificates`` as one PEM bundle."""
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certificates)


def common_name(name: x509.Name) -> str | None:
    """The first commonName of ``name``."""
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attributes[0].value) if attributes else None


def organization(name: x509.Name) -> str | None:
    """The first organizationName of ``name``."""
    attributes = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(attributes[0].value) if attributes else None


def normalize_emaid(emaid: str) -> str:
    """An eMAID without separators, upper case (``DE-ABC-C12345678-9`` -> ``DEABCC123456789``)."""
    return emaid.replace("-", "").replace("*", "").upper()


def serial_hex(serial_number: int) -> str:
    """A serial number as OCPP writes it: lower-case hex without leading zeros."""
    return format(serial_number, "x")


def public_key_sha1(certificate: x509.Certificate) -> bytes:
    """SHA-1 of the subject public key bit string (the OCSP issuerKeyHash with SHA-1)."""
    return hashlib.sha1(_public_key_bits(certificate), usedforsecurity=False).digest()


def _public_key_bits(certificate: x509.Certificate) -> bytes:
    """The contents of the subjectPublicKey BIT STRING, which OCSP's issuerKeyHash hashes."""
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raise PkiError(f"unsupported public key type {type(key).__name__}")


@dataclass(frozen=True, slots=True)
class OcspId:
    """What identifies a certificate to an OCSP responder (OCPP ``OCSPRequestDataType``)."""

    hash_algorithm: str
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str
    responder_url: str | None = None

    @classmethod
    def from_ocpp(cls, data: dict[str, str]) -> OcspId:
        return cls(
            hash_algorithm=data["hashAlgorithm"],
            issuer_name_hash=data["issuerNameHash"].lower(),
            issuer_key_hash=data["issuerKeyHash"].lower(),
            serial_number=data["serialNumber"].lower().lstrip("0") or "0",
            responder_url=data.get("responderURL"),
        )

    @property
    def cache_key(self) -> tuple[str, str, str]:
        return (self.hash_algorithm, self.issuer_key_hash, self.serial_number)

    def algorithm(self) -> hashes.HashAlgorithm:
        try:
            return _HASHES[self.hash_algorithm]()
        except KeyError:
            raise PkiError(f"hash algorithm {self.hash_algorithm} is not supported") from None


def ocsp_id(certificate: x509.Certificate, issuer: x509.Certificate, algorithm: str = "SHA256") -> OcspId:
    """The OCSP id of ``certificate`` issued by ``issuer`` (hashes of the issuer's name and key)."""
    digest = _HASHES[algorithm]().name
    name_hash = hashlib.new(digest, issuer.subject.public_bytes()).hexdigest()
    key_hash = hashlib.new(digest, _public_key_bits(issuer)).hexdigest()
    urls = ocsp_urls(certificate)
    return OcspId(
        algorithm, name_hash, key_hash, serial_hex(certificate.serial_number), urls[0] if urls else None
    )


def issuer_key_hash(issuer: x509.Certificate, algorithm: str) -> str:
    """The hex issuerKeyHash of ``issuer`` with ``algorithm``."""
    return hashlib.new(_HASHES[algorithm]().name, _public_key_bits(issuer)).hexdigest()


def ocsp_urls(certificate: x509.Certificate) -> list[str]:
    """The OCSP responder URLs of the certificate's Authority Information Access."""
    try:
        access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except x509.ExtensionNotFound:
        return []
    return [
        str(d.access_location.value)
        for d in access.value
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


def crl_urls(certificate: x509.Certificate) -> list[str]:
    """The URLs of the certificate's CRL distribution points."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        return []
    return [
        str(n.value)
        for point in points.value
        for n in point.full_name or ()
        if isinstance(n, x509.UniformResourceIdentifier)
    ]


def verify_signature(
    public_key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``public_key`` (EC, RSA PKCS#1 v1.5, EdDSA)."""
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm is not None:
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(public_key, rsa.RSAPublicKey) and algorithm is not None:
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            public_key.verify(signature, data)
        else:
            return False
    except InvalidSignature:
        return False
    return True
