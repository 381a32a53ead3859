"""A complete test PKI made with ``cryptography``, and an OCSP responder + CRL server on 127.0.0.1.

V2G root -> CPO sub-CA (signs SECC certificates); CSMS root -> station sub-CA (signs charging
station certificates for security profile 3); MO root -> MO sub-CA -> contract certificates. The
responder answers for every CA it is given, signs as the issuing CA itself, and serves each CA's
CRL at ``/crl/{name}``; tests revoke certificates and switch either service off.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from csms.pki.keystore import KeyCertificateAuthority

NOW = datetime.now(UTC)


def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = []
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


@dataclass
class Ca:
    name: str
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    parents: tuple[x509.Certificate, ...] = ()
    """The CA's issuers up to, not including, the root."""

    def authority(self) -> KeyCertificateAuthority:
        return KeyCertificateAuthority((self.certificate, *self.parents), self.key)


def _revocation_extensions(
    builder: x509.CertificateBuilder, base_url: str | None, issuer: str
) -> x509.CertificateBuilder:
    if base_url is None:
        return builder
    return builder.add_extension(
        x509.AuthorityInformationAccess(
            [
                x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{base_url}/ocsp")
                )
            ]
        ),
        critical=False,
    ).add_extension(
        x509.CRLDistributionPoints(
            [
                x509.DistributionPoint(
                    [x509.UniformResourceIdentifier(f"{base_url}/crl/{issuer}")], None, None, None
                )
            ]
        ),
        critical=False,
    )


def root(common_name: str, *, path_length: int | None = 2) -> Ca:
    signing_key = key()
    subject = name(common_name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(signing_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(signing_key, hashes.SHA256())
    )
    return Ca(common_name, certificate, signing_key)


def sub_ca(
    common_name: str, parent: Ca, *, base_url: str | None = None, path_length: int | None = 0, ca: bool = True
) -> Ca:
    signing_key = key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(parent.certificate.subject)
        .public_key(signing_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1000))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, ca, ca, False, False), critical=True)
    )
    builder = _revocation_extensions(builder, base_url, parent.name)
    certificate = builder.sign(parent.key, hashes.SHA256())
    parents = (
        (parent.certificate, *parent.parents)
        if parent.parents or parent.certificate.issuer != parent.certificate.subject
        else ()
    )
    return Ca(common_name, certificate, signing_key, parents)


def contract(
    emaid: str,
    issuer: Ca,
    *,
    base_url: str | None,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=365),
    signing_key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A contract certificate for ``emaid``; ``signing_key`` other than the issuer's forges it."""
    holder = key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(emaid))
        .issuer_name(issuer.certificate.subject)
        .public_key(holder.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, True, False, False, False, False), critical=True
        )
    )
    builder = _revocation_extensions(builder, base_url, issuer.name)
    return builder.sign(signing_key or issuer.key, hashes.SHA256()), holder


def server_certificate(issuer: Ca) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    holder = key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(issuer.certificate.subject)
        .public_key(holder.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(issuer.key, hashes.SHA256())
    )
    return certificate, holder


def csr(
    common_name: str,
    organization: str | None = "fairwatt CPO",
    signing_key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[str, ec.EllipticCurvePrivateKey]:
    holder = signing_key or key()
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name(common_name, organization))
        .sign(holder, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii"), holder


def pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certificates)


def key_pem(private_key: ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class Responder:
    """OCSP and CRL for the CAs in ``authorities``; ``revoked`` holds (issuer name, serial)."""

    base_url: str
    authorities: dict[str, Ca] = field(default_factory=dict)
    revoked: set[tuple[str, int]] = field(default_factory=set)
    ocsp_available: bool = True
    crl_available: bool = True
    ocsp_requests: int = 0
    crl_requests: int = 0
    wrong_signer: ec.EllipticCurvePrivateKey | None = None
    """When set, OCSP responses are signed with this key instead of the CA's (a forged answer)."""

    def add(self, *authorities: Ca) -> None:
        for authority in authorities:
            self.authorities[authority.name] = authority

    def revoke(self, certificate: x509.Certificate) -> None:
        issuer = next(a for a in self.authorities.values() if a.certificate.subject == certificate.issuer)
        self.revoked.add((issuer.name, certificate.serial_number))

    def _issuer_by_key_hash(self, key_hash: bytes, algorithm: hashes.HashAlgorithm) -> Ca | None:
        for authority in self.authorities.values():
            public = authority.certificate.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            digest = hashes.Hash(algorithm)
            digest.update(public)
            if digest.finalize() == key_hash:
                return authority
        return None

    async def ocsp(self, request: web.Request) -> web.Response:
        self.ocsp_requests += 1
        if not self.ocsp_available:
            return web.Response(status=503)
        query = ocsp.load_der_ocsp_request(await request.read())
        issuer = self._issuer_by_key_hash(query.issuer_key_hash, query.hash_algorithm)
        if issuer is None:
            body = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        else:
            # An impostor (``wrong_signer``) says every certificate is good.
            revoked = (issuer.name, query.serial_number) in self.revoked and self.wrong_signer is None
            builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
                query.issuer_name_hash,
                query.issuer_key_hash,
                query.serial_number,
                query.hash_algorithm,
                ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
                datetime.now(UTC) - timedelta(minutes=1),
                datetime.now(UTC) + timedelta(hours=1),
                datetime.now(UTC) - timedelta(minutes=1) if revoked else None,
                x509.ReasonFlags.key_compromise if revoked else None,
            )
            if self.wrong_signer is None:
                builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.certificate)
                body = builder.sign(issuer.key, hashes.SHA256())
            else:  # an impostor: its own certificate under the issuer's name, included in the answer
                forged = (
                    x509.CertificateBuilder()
                    .subject_name(issuer.certificate.subject)
                    .issuer_name(issuer.certificate.subject)
                    .public_key(self.wrong_signer.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(NOW - timedelta(days=1))
                    .not_valid_after(NOW + timedelta(days=1))
                    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
                    .sign(self.wrong_signer, hashes.SHA256())
                )
                builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, forged).certificates([forged])
                body = builder.sign(self.wrong_signer, hashes.SHA256())
        return web.Response(
            body=body.public_bytes(serialization.Encoding.DER), content_type="application/ocsp-response"
        )

    async def crl(self, request: web.Request) -> web.Response:
        self.crl_requests += 1
        if not self.crl_available:
            return web.Response(status=503)
        issuer = self.authorities[request.match_info["issuer"]]
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.certificate.subject)
            .last_update(datetime.now(UTC) - timedelta(minutes=1))
            .next_update(datetime.now(UTC) + timedelta(hours=1))
        )
        for issuer_name, serial in self.revoked:
            if issuer_name == issuer.name:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(serial)
                    .revocation_date(datetime.now(UTC) - timedelta(minutes=1))
                    .build()
                )
        crl = builder.sign(issuer.key, hashes.SHA256())
        return web.Response(
            body=crl.public_bytes(serialization.Encoding.DER), content_type="application/pkix-crl"
        )


@asynccontextmanager
async def running_responder() -> AsyncIterator[Responder]:
    """A responder on 127.0.0.1 and a free port; its URL is known before certificates are made."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    responder = Responder(f"http://127.0.0.1:{port}")
    app = web.Application()
    app.router.add_post("/ocsp", responder.ocsp)
    app.router.add_get("/crl/{issuer}", responder.crl)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, listener).start()
    try:
        yield responder
    finally:
        await runner.cleanup()


@dataclass
class Pki:
    """The whole test PKI, its contract certificates pointing at ``responder``."""

    responder: Responder
    mo_root: Ca
    mo_sub: Ca
    v2g_root: Ca
    cpo_sub: Ca
    csms_root: Ca
    station_sub: Ca

    def contract(self, emaid: str, **kwargs: object) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        return contract(emaid, self.mo_sub, base_url=self.responder.base_url, **kwargs)  # type: ignore[arg-type]

    def chain(self, certificate: x509.Certificate) -> str:
        """The PEM the charger relays: contract certificate, then the MO sub-CA."""
        return pem(certificate, self.mo_sub.certificate)


def build_pki(responder: Responder) -> Pki:
    mo_root = root("MO Root CA")
    mo_sub = sub_ca("MO Sub-CA", mo_root, base_url=responder.base_url)
    v2g_root = root("V2G Root CA")
    cpo_sub = sub_ca("CPO Sub-CA", v2g_root, base_url=responder.base_url)
    csms_root = root("CSMS Root CA")
    station_sub = sub_ca("Station Sub-CA", csms_root)
    responder.add(mo_root, mo_sub, v2g_root, cpo_sub)
    return Pki(responder, mo_root, mo_sub, v2g_root, cpo_sub, csms_root, station_sub)
