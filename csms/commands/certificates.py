"""Certificate commands to chargers: CertificateSigned, InstallCertificate, GetInstalledCertificateIds
and DeleteCertificate (OCPP 2.0.1 use cases A02/A03, M03-M05; the OCPP 1.6 security extension).

Each command builds the payload of the charger's version through :meth:`CommandBus.call_per_version`,
so it reaches a charger on any node. 1.6 knows only the central system's and the manufacturer's roots:
the V2G and MO roots answer NOT_SUPPORTED_BY_VERSION there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from csms.commands.bus import CommandBus
from csms.commands.payloads import Built
from csms.commands.results import CommandResult
from csms.protocol.versions import OcppVersion


class InstallCertificateUse(Enum):
    V2G_ROOT = "V2GRootCertificate"
    MO_ROOT = "MORootCertificate"
    CSMS_ROOT = "CSMSRootCertificate"
    MANUFACTURER_ROOT = "ManufacturerRootCertificate"


class CertificateIdUse(Enum):
    V2G_ROOT = "V2GRootCertificate"
    MO_ROOT = "MORootCertificate"
    CSMS_ROOT = "CSMSRootCertificate"
    V2G_CERTIFICATE_CHAIN = "V2GCertificateChain"
    MANUFACTURER_ROOT = "ManufacturerRootCertificate"


_V16_NAMES = {
    "CSMSRootCertificate": "CentralSystemRootCertificate",
    "ManufacturerRootCertificate": "ManufacturerRootCertificate",
}


@dataclass(frozen=True, slots=True)
class CertificateHashData:
    """Identifies an installed certificate (``CertificateHashDataType``)."""

    hash_algorithm: str
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str

    def to_ocpp(self) -> dict[str, str]:
        return {
            "hashAlgorithm": self.hash_algorithm,
            "issuerNameHash": self.issuer_name_hash,
            "issuerKeyHash": self.issuer_key_hash,
            "serialNumber": self.serial_number,
        }

    @classmethod
    def from_ocpp(cls, data: dict[str, Any]) -> CertificateHashData:
        return cls(
            str(data["hashAlgorithm"]),
            str(data["issuerNameHash"]),
            str(data["issuerKeyHash"]),
            str(data["serialNumber"]),
        )


@dataclass(frozen=True, slots=True)
class InstalledCertificate:
    use: str
    """The 2.0.1 name of the certificate's use (1.6 names are translated)."""
    hash_data: CertificateHashData


async def certificate_signed(
    bus: CommandBus,
    charger_id: str,
    certificate_chain_pem: str,
    certificate_type: str | None,
    *,
    timeout_s: float | None = None,
) -> CommandResult:
    """Send a newly signed certificate (then its sub-CAs) to the charger that asked with SignCertificate;
    1.6 has no certificate type (its only signed certificate is the charge point's)."""

    def build(version: OcppVersion) -> Built:
        payload = {"certificateChain": certificate_chain_pem}
        if version is OcppVersion.V201 and certificate_type is not None:
            payload["certificateType"] = certificate_type
        return "CertificateSigned", payload

    return await bus.call_per_version(charger_id, build, timeout_s=timeout_s)


async def install_certificate(
    bus: CommandBus,
    charger_id: str,
    use: InstallCertificateUse,
    certificate_pem: str,
    *,
    timeout_s: float | None = None,
) -> CommandResult:
    """Install a trusted root (V2G, MO, CSMS, manufacturer) on the charger."""

    def build(version: OcppVersion) -> Built:
        name = use.value if version is OcppVersion.V201 else _V16_NAMES.get(use.value)
        if name is None:
            return None
        return "InstallCertificate", {"certificateType": name, "certificate": certificate_pem}

    return await bus.call_per_version(charger_id, build, timeout_s=timeout_s)


async def get_installed_certificate_ids(
    bus: CommandBus, charger_id: str, uses: Sequence[CertificateIdUse] = (), *, timeout_s: float | None = None
) -> tuple[CommandResult, list[InstalledCertificate]]:
    """The charger's installed certificates of ``uses`` (2.0.1: all when empty; 1.6: exactly one use)."""

    def build(version: OcppVersion) -> Built:
        if version is OcppVersion.V201:
            payload: dict[str, Any] = {}
            if uses:
                payload["certificateType"] = [use.value for use in uses]
            return "GetInstalledCertificateIds", payload
        names = [_V16_NAMES.get(use.value) for use in uses]
        if len(names) != 1 or names[0] is None:
            return None
        return "GetInstalledCertificateIds", {"certificateType": names[0]}

    result = await bus.call_per_version(charger_id, build, timeout_s=timeout_s)
    installed = [
        InstalledCertificate(
            str(chain["certificateType"]), CertificateHashData.from_ocpp(chain["certificateHashData"])
        )
        for chain in result.payload.get("certificateHashDataChain", [])
    ]
    if "certificateHashData" in result.payload and len(uses) == 1:  # 1.6: the one use asked for
        installed = [
            InstalledCertificate(uses[0].value, CertificateHashData.from_ocpp(data))
            for data in result.payload["certificateHashData"]
        ]
    return result, installed


async def delete_certificate(
    bus: CommandBus, charger_id: str, hash_data: CertificateHashData, *, timeout_s: float | None = None
) -> CommandResult:
    """Remove an installed certificate from the charger (the same payload in 1.6 and 2.0.1)."""
    payload = {"certificateHashData": hash_data.to_ocpp()}
    return await bus.call(charger_id, "DeleteCertificate", payload, timeout_s=timeout_s)


__all__ = [
    "CertificateHashData",
    "CertificateIdUse",
    "InstallCertificateUse",
    "InstalledCertificate",
    "certificate_signed",
    "delete_certificate",
    "get_installed_certificate_ids",
    "install_certificate",
]
