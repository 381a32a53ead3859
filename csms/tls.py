"""OCPP security profiles 2 and 3: the server's TLS context and the charger's certificate identity.

- profile 1: ws://; the charger is authenticated by HTTP Basic when it has a password (a legacy
  charger registered without one is admitted).
- profile 2: wss:// with the server's certificate; HTTP Basic always: a charger without a password
  is refused (401, and a log line asking to set one); ``auto_register`` is refused with it. With
  ``tls_client_ca_file`` the listener also asks for a client certificate, optionally: a charger
  presenting one is admitted by it as at profile 3 (so one listener serves profiles 2 and 3).
- profile 3: wss://, and a client certificate signed by ``tls_client_ca_file`` is required; its
  subject commonName (OCPP: the station's identity / serial number) or subject serialNumber must
  equal the charger id in the URL, else the upgrade is refused with 403. Basic auth is not used.

``plain_port`` adds a ws:// listener to a TLS node (profile 1 chargers). Which profiles a node's
listeners can offer at all is :func:`offered_profiles`.

TLS 1.2 is the least version accepted, as OCPP's security profiles 2 and 3 require.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from csms.errors import SettingsError
from csms.settings import CsmsSettings

PLAIN_PROFILES = frozenset({0, 1})
TLS_PROFILES = frozenset({2, 3})


def build_server_context(settings: CsmsSettings) -> ssl.SSLContext | None:
    """The TLS context for ``settings.security_profile``; ``None`` for the plain-WebSocket profiles."""
    profile = settings.security_profile
    if profile in PLAIN_PROFILES:
        return None
    if profile not in TLS_PROFILES:
        raise SettingsError(f"security_profile {profile}: OCPP defines profiles 1, 2 and 3")
    if not settings.tls_certificate_file or not settings.tls_private_key_file:
        raise SettingsError(f"security profile {profile} needs tls_certificate_file and tls_private_key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_certificate_file, settings.tls_private_key_file)
        if profile == 3:
            if not settings.tls_client_ca_file:
                raise SettingsError(
                    "security profile 3 needs tls_client_ca_file to verify chargers' certificates"
                )
            context.load_verify_locations(cafile=settings.tls_client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        elif settings.tls_client_ca_file:
            # profile 2 serving profile 3 chargers too: a certificate is asked for, not required;
            # one that is presented must verify, else the handshake fails
            context.load_verify_locations(cafile=settings.tls_client_ca_file)
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"cannot load the TLS certificates: {exc}") from exc
    return context


def offered_profiles(settings: CsmsSettings) -> frozenset[int]:
    """The security profiles a connection to this node's listeners can meet: ws:// meets 1, wss://
    with HTTP Basic 2, wss:// with a verified client certificate 3."""
    profile = settings.security_profile
    if profile in PLAIN_PROFILES:
        return frozenset({1})
    offered = {3} if profile == 3 else ({2, 3} if settings.tls_client_ca_file else {2})
    if settings.plain_port is not None:
        offered.add(1)
    return frozenset(offered)


@dataclass(frozen=True, slots=True)
class CertificateIdentity:
    """Who a verified client certificate names."""

    common_name: str | None
    serial_number: str | None

    def names(self, charger_id: str) -> bool:
        """Whether the certificate belongs to ``charger_id``."""
        return charger_id in {self.common_name, self.serial_number}

    def __str__(self) -> str:
        return f"CN={self.common_name or '-'}, serialNumber={self.serial_number or '-'}"


def certificate_identity(peer_certificate: dict[str, Any] | None) -> CertificateIdentity | None:
    """The identity in a verified peer certificate (``SSLObject.getpeercert()``); ``None`` without one."""
    if not peer_certificate:
        return None
    attributes: dict[str, str] = {}
    for relative_name in peer_certificate.get("subject", ()):
        for key, value in relative_name:
            attributes.setdefault(str(key), str(value))
    identity = CertificateIdentity(attributes.get("commonName"), attributes.get("serialNumber"))
    if identity.common_name is None and identity.serial_number is None:
        return None
    return identity
