"""Certificate commands to OCPP 2.0.1 chargers: CertificateSigned, InstallCertificate,
GetInstalledCertificateIds and DeleteCertificate (use cases A02/A03, M03-M05).

Payloads are 2.0.1's; they go through :meth:`CommandBus.call`, so they reach a charger on any
node. A 1.6 charger (security extension) differs in certificate type names: a payload its schema
refuses raises :class:`csms.errors.CommandError` before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from csms.commands.bus import CommandBus
from csms.commands.results import CommandResult


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
    hash_data: CertificateHashData


async def certificate_signed(
    bus: CommandBus,
    charger_id: str,
    certificate_chain_pem: str,
    certificate_type: str | None,
    *,
    timeout_s: float | None = None,
) -> CommandResult:
    """Send a newly signed certificate (and its sub-CAs) to the charger that asked with SignCertificate;
    ``certificate_type`` None for a 1.6 charger (its CertificateSigned has no type)."""
    payload = {"certificateChain": certificate_chain_pem}
    if certificate_type is not None:
        payload["certificateType"] = certificate_type
    return await bus.call(charger_id, "CertificateSigned", payload, timeout_s=timeout_s)


async def install_certificate(
    bus: CommandBus,
    charger_id: str,
    use: InstallCertificateUse,
    certificate_pem: str,
    *,
    timeout_s: float | None = None,
) -> CommandResult:
    """Install a trusted root (V2G, MO, CSMS, manufacturer) on the charger."""
    payload = {"certificateType": use.value, "certificate": certificate_pem}
    return await bus.call(charger_id, "InstallCertificate", payload, timeout_s=timeout_s)


async def get_installed_certificate_ids(
    bus: CommandBus, charger_id: str, uses: Sequence[CertificateIdUse] = (), *, timeout_s: float | None = None
) -> tuple[CommandResult, list[InstalledCertificate]]:
    """The charger's installed certificates of ``uses`` (all when empty)."""
    payload: dict[str, Any] = {}
    if uses:
        payload["certificateType"] = [use.value for use in uses]
    result = await bus.call(charger_id, "GetInstalledCertificateIds", payload, timeout_s=timeout_s)
    installed = [
        InstalledCertificate(
            str(chain["certificateType"]), CertificateHashData.from_ocpp(chain["certificateHashData"])
        )
        for chain in result.payload.get("certificateHashDataChain", [])
    ]
    return result, installed


async def delete_certificate(
    bus: CommandBus, charger_id: str, hash_data: CertificateHashData, *, timeout_s: float | None = None
) -> CommandResult:
    """Remove an installed certificate from the charger."""
    payload = {"certificateHashData": hash_data.to_ocpp()}
    return await bus.call(charger_id, "DeleteCertificate", payload, timeout_s=timeout_s)
