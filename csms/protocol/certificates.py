"""ISO 15118 and security certificates: SignCertificate (2.0.1 and the 1.6 security extension),
Get15118EVCertificate and GetCertificateStatus (2.0.1); the certificate side of Authorize lives in
:mod:`csms.protocol.authorization`.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from csms.commands.certificates import certificate_signed
from csms.pki.certs import OcspId
from csms.pki.errors import ContractProviderError, CsrRefusedError
from csms.pki.runtime import PkiRuntime
from csms.pki.signing import CertificateUse
from csms.protocol.router import IncomingCall, handles

logger = logging.getLogger(__name__)


class _Signing:
    """SignCertificate, shared by 2.0.1 and the 1.6 security extension (charge point certificates only)."""

    def __init__(self, pki: PkiRuntime) -> None:
        self._pki = pki

    async def _sign(self, call: IncomingCall, use: CertificateUse, *, typed: bool) -> dict[str, Any]:
        csr_pem: str = call.payload["csr"]
        try:
            await self._pki.signer.check(call.charger_id, csr_pem, use)
        except CsrRefusedError as exc:
            if not typed:
                return {"status": "Rejected"}
            return {
                "status": "Rejected",
                "statusInfo": {"reasonCode": "InvalidCSR", "additionalInfo": exc.reason[:512]},
            }
        # The certificate goes out as a CALL of its own, after this answer (never from the handler).
        self._pki.tasks.start(
            self._send_signed(call.charger_id, csr_pem, use, typed=typed),
            f"certificate-signed-{call.charger_id}",
        )
        return {"status": "Accepted"}

    async def _send_signed(self, charger_id: str, csr_pem: str, use: CertificateUse, *, typed: bool) -> None:
        certificate, chain = await self._pki.signer.sign(charger_id, csr_pem, use)
        result = await certificate_signed(self._pki.commands, charger_id, chain, use.value if typed else None)
        if not result.accepted:
            logger.warning(
                "charger %s: CertificateSigned answered %s", charger_id, result.status or result.outcome.value
            )
        await self._pki.signer.delivered(charger_id, use, certificate, result.outcome)


class CertificatesV16(_Signing):
    """OCPP 1.6 security extension: SignCertificate for the charge point certificate (profile 3)."""

    @handles("SignCertificate")
    async def sign_certificate(self, call: IncomingCall) -> dict[str, Any]:
        return await self._sign(call, CertificateUse.CHARGING_STATION, typed=False)


class CertificatesV201(_Signing):
    @handles("SignCertificate")
    async def sign_certificate(self, call: IncomingCall) -> dict[str, Any]:
        use = CertificateUse(call.payload.get("certificateType", CertificateUse.CHARGING_STATION.value))
        return await self._sign(call, use, typed=True)

    @handles("Get15118EVCertificate")
    async def get_15118_ev_certificate(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        try:
            answer = await self._pki.provider.get_certificate(
                call.charger_id, p["iso15118SchemaVersion"], p["action"], p["exiRequest"]
            )
        except ContractProviderError as exc:
            logger.warning("charger %s: contract-certificate provider failed: %s", call.charger_id, exc)
            return {
                "status": "Failed",
                "exiResponse": "",
                "statusInfo": {"reasonCode": "ProviderUnavailable"},
            }
        response: dict[str, Any] = {
            "status": "Accepted" if answer.accepted else "Failed",
            "exiResponse": answer.exi_response,
        }
        if answer.detail:
            response["statusInfo"] = {"reasonCode": "ProviderAnswer", "additionalInfo": answer.detail[:512]}
        return response

    @handles("GetCertificateStatus")
    async def get_certificate_status(self, call: IncomingCall) -> dict[str, Any]:
        response = await self._pki.plug_and_charge.certificate_status(
            OcspId.from_ocpp(call.payload["ocspRequestData"])
        )
        if response is None:
            return {"status": "Failed", "statusInfo": {"reasonCode": "OcspUnavailable"}}
        return {"status": "Accepted", "ocspResult": base64.b64encode(response).decode("ascii")}
