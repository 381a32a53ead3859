"""OCPP security profiles 2 and 3: the server's TLS context and the charger's certificate identity.

- profile 1: ws://; the charger is authenticated by HTTP Basic when it has a password (a legacy
  charger registered without one is admitted).
- profile 2: wss:// with the server's certificate; HTTP Basic always: a charger without a password
  is refused (401, and a log line asking to set one); ``auto_register`` is refused with it.
- profile 3: wss://, and a client certificate signed by ``tls_client_ca_file`` is required; its
  subject commonName (OCPP: the station's identity / serial number) or subject serialNumber must
  equal the charger id in the URL, else the upgrade is refused with 403. Basic auth is not used.

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
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"cannot load the TLS certificates: {exc}") from exc
    return context


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
