"""Security profiles 2 and 3 over real TLS, with certificates made for the test by ``cryptography``."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ocpp.v16 import call

from csms.errors import SettingsError
from csms.server import CSMS, CsmsRuntime, create_app
from csms.settings import CsmsSettings
from csms.storage.chargers import ChargerRecord
from csms.storage.passwords import hash_password
from csms.tls import build_server_context, certificate_identity
from tests.csms.chargers import Charger16, ClientConnection, basic_auth, connected
from tests.csms.conftest import RunningCsms, make_settings

pytestmark = pytest.mark.asyncio

NOW = datetime.now(UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.with_suffix(".crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


@dataclass(frozen=True)
class Pki:
    directory: Path

    def crt(self, name: str) -> str:
        return str(self.directory / f"{name}.crt")

    def key(self, name: str) -> str:
        return str(self.directory / f"{name}.key")

    def client_context(self, certificate: str | None = None) -> ssl.SSLContext:
        """A client's TLS context trusting our CA, presenting ``certificate`` if given."""
        context = ssl.create_default_context(cafile=self.crt("ca"))
        if certificate is not None:
            context.load_cert_chain(self.crt(certificate), self.key(certificate))
        return context


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server_ip: str | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(hours=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_ip else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if server_ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(server_ip))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for 127.0.0.1, and client certificates for CP-TLS3 and CP-OTHER."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fairwatt test CA")])
    _write(directory / "ca", _issue(ca_name, ca_key, ca_name, ca_key, ca=True))
    server_key = _key()
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    _write(
        directory / "server",
        _issue(server_name, server_key, ca_name, ca_key, server_ip="127.0.0.1"),
        server_key,
    )
    for charger_id in ("CP-TLS3", "CP-OTHER"):
        client_key = _key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fairwatt CPO"),
                x509.NameAttribute(NameOID.COMMON_NAME, charger_id),
            ]
        )
        _write(directory / charger_id, _issue(subject, client_key, ca_name, ca_key), client_key)
    return Pki(directory)


@dataclass
class TlsCsms:
    runtime: CsmsRuntime
    port: int
    pki: Pki

    def url(self, charger_id: str) -> str:
        return f"wss://127.0.0.1:{self.port}/ocpp/{charger_id}"

    def client_context(self, certificate: str | None = None) -> ssl.SSLContext:
        return self.pki.client_context(certificate)


def tls_settings(database_dsn: str, pki: Pki, profile: int) -> CsmsSettings:
    return make_settings(
        database_dsn,
        security_profile=profile,
        tls_certificate_file=pki.crt("server"),
        tls_private_key_file=pki.key("server"),
        tls_client_ca_file=pki.crt("ca") if profile == 3 else None,
    )


@asynccontextmanager
async def tls_server(settings: CsmsSettings, pki: Pki) -> AsyncIterator[TlsCsms]:
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener, ssl_context=build_server_context(settings)).start()
    try:
        yield TlsCsms(app[CSMS], port, pki)
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def profile2(database_dsn: str, pki: Pki) -> AsyncIterator[TlsCsms]:
    async with tls_server(tls_settings(database_dsn, pki, 2), pki) as running:
        yield running


@pytest_asyncio.fixture
async def profile3(database_dsn: str, pki: Pki) -> AsyncIterator[TlsCsms]:
    async with tls_server(tls_settings(database_dsn, pki, 3), pki) as running:
        yield running


@asynccontextmanager
async def tls_charger(
    url: str, charger_id: str, context: ssl.SSLContext, headers: dict[str, str] | None = None
) -> AsyncIterator[Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, protocols=("ocpp1.6",), ssl=context, headers=headers or {}) as websocket,
    ):
        charger = Charger16(charger_id, ClientConnection(websocket))
        serving = asyncio.create_task(charger.start())
        try:
            yield charger
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)


async def handshake_status(url: str, context: ssl.SSLContext, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as failure:
            await http.ws_connect(url, protocols=("ocpp1.6",), ssl=context, headers=headers or {})
    return failure.value.status


async def boots(charger: Any) -> str:
    answer = await charger.call(
        call.BootNotification(charge_point_vendor="V", charge_point_model="M"), suppress=False
    )
    return str(answer.status)


async def test_profile_2_connects_over_tls_with_basic_auth(profile2: TlsCsms) -> None:
    password = "profile-2-secret"
    await profile2.runtime.chargers.save(
        ChargerRecord("CP-TLS2", password_hash=hash_password(password, iterations=1000))
    )
    context = profile2.client_context()
    assert await handshake_status(profile2.url("CP-TLS2"), context) == 401
    assert (
        await handshake_status(
            profile2.url("CP-TLS2"), context, {"Authorization": basic_auth("CP-TLS2", "nope")}
        )
        == 401
    )
    auth = {"Authorization": basic_auth("CP-TLS2", password)}
    async with tls_charger(profile2.url("CP-TLS2"), "CP-TLS2", context, auth) as charger:
        assert await boots(charger) == "Accepted"


async def test_profile_2_refuses_a_charger_without_password_and_says_what_to_do(
    profile2: TlsCsms, caplog: pytest.LogCaptureFixture
) -> None:
    await profile2.runtime.chargers.save(ChargerRecord("CP-TLS2-NOPW"))
    context = profile2.client_context()
    url = profile2.url("CP-TLS2-NOPW")
    assert await handshake_status(url, context) == 401
    # credentials do not help: there is nothing to check them against
    assert await handshake_status(url, context, {"Authorization": basic_auth("CP-TLS2-NOPW", "any")}) == 401
    hints = [r.getMessage() for r in caplog.records if "set a password for this charger" in r.getMessage()]
    assert len(hints) == 2
    assert hints[0].startswith("charger CP-TLS2-NOPW: has no password, and security profile 2 requires")
    # once the operator gives it a password, it connects with it
    password = "now-it-has-one-16"
    await profile2.runtime.chargers.save(
        ChargerRecord("CP-TLS2-NOPW", password_hash=hash_password(password, iterations=1000))
    )
    auth = {"Authorization": basic_auth("CP-TLS2-NOPW", password)}
    async with tls_charger(url, "CP-TLS2-NOPW", context, auth) as charger:
        assert await boots(charger) == "Accepted"


async def test_profile_1_still_admits_a_legacy_charger_without_password(csms: RunningCsms) -> None:
    await csms.runtime.chargers.save(ChargerRecord("CP-LEGACY"))
    async with connected(Charger16, csms.url("CP-LEGACY"), "CP-LEGACY", "ocpp1.6") as charger:
        assert await boots(charger) == "Accepted"


async def test_auto_register_is_refused_with_profile_2(database_dsn: str, pki: Pki) -> None:
    with pytest.raises(SettingsError, match="auto_register cannot be used with security profile 2"):
        CsmsSettings(database_dsn=database_dsn, security_profile=2, auto_register=True)
    # profile 1 (legacy chargers without password) and 3 (the certificate names the charger) allow it
    assert CsmsSettings(database_dsn=database_dsn, security_profile=1, auto_register=True).auto_register
    assert CsmsSettings(database_dsn=database_dsn, security_profile=3, auto_register=True).auto_register


async def test_profile_2_refuses_plain_websocket(profile2: TlsCsms) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            await http.ws_connect(f"ws://127.0.0.1:{profile2.port}/ocpp/CP-TLS2", protocols=("ocpp1.6",))


async def test_profile_3_admits_the_charger_its_certificate_names(profile3: TlsCsms) -> None:
    await profile3.runtime.chargers.save(ChargerRecord("CP-TLS3"))
    async with tls_charger(profile3.url("CP-TLS3"), "CP-TLS3", profile3.client_context("CP-TLS3")) as charger:
        assert await boots(charger) == "Accepted"


async def test_profile_3_refuses_a_certificate_for_another_charger(profile3: TlsCsms) -> None:
    await profile3.runtime.chargers.save(ChargerRecord("CP-TLS3"))
    assert await handshake_status(profile3.url("CP-TLS3"), profile3.client_context("CP-OTHER")) == 403


async def test_profile_3_refuses_a_connection_without_certificate(profile3: TlsCsms) -> None:
    await profile3.runtime.chargers.save(ChargerRecord("CP-TLS3"))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            await http.ws_connect(
                profile3.url("CP-TLS3"), protocols=("ocpp1.6",), ssl=profile3.client_context()
            )


async def test_identity_from_the_certificate_subject() -> None:
    subject = ((("organizationName", "CPO"),), (("commonName", "CP-1"),), (("serialNumber", "SN-9"),))
    identity = certificate_identity({"subject": subject})
    assert identity is not None
    assert identity.names("CP-1")
    assert identity.names("SN-9")
    assert not identity.names("CP-2")
    assert certificate_identity({}) is None
    assert certificate_identity(None) is None


async def test_settings_missing_certificates_are_refused(database_dsn: str, pki: Pki) -> None:
    assert build_server_context(make_settings(database_dsn)) is None
    with pytest.raises(SettingsError):
        build_server_context(make_settings(database_dsn, security_profile=2))
    no_client_ca = make_settings(
        database_dsn,
        security_profile=3,
        tls_certificate_file=pki.crt("server"),
        tls_private_key_file=pki.key("server"),
    )
    with pytest.raises(SettingsError):
        build_server_context(no_client_ca)
    with pytest.raises(SettingsError):
        build_server_context(make_settings(database_dsn, security_profile=4))
