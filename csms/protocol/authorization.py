"""Authorization: Authorize (1.6 idTag, 2.0.1 idToken), and the status translations both use.

A 2.0.1 Authorize carrying an ISO 15118 contract certificate (``certificate``) or its OCSP data
(``iso15118CertificateHashData``) is checked by Plug & Charge (:mod:`csms.pki`) when the app has
it; the answer then carries ``certificateStatus``. With Plug & Charge, an eMAID without either is
refused (NoCertificateAvailable) unless the PKI settings allow it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.domain.events import AuthorizationStatus, IdToken
from csms.domain.service import ChargingService
from csms.pki.certs import OcspId
from csms.protocol.convert import format_timestamp, id_token_v201
from csms.protocol.router import IncomingCall, handles

if TYPE_CHECKING:
    from csms.pki.service import PlugAndCharge

_V16_AUTHORIZATION = {
    AuthorizationStatus.ACCEPTED: "Accepted",
    AuthorizationStatus.BLOCKED: "Blocked",
    AuthorizationStatus.EXPIRED: "Expired",
    AuthorizationStatus.CONCURRENT_TX: "ConcurrentTx",
}


def id_tag_info_v16(status: AuthorizationStatus) -> dict[str, Any]:
    """A 1.6 ``IdTagInfo``; verdicts 1.6 has no name for become Invalid."""
    return {"status": _V16_AUTHORIZATION.get(status, "Invalid")}


def id_token_info_v201(status: AuthorizationStatus) -> dict[str, Any]:
    """A 2.0.1 ``IdTokenInfoType``."""
    return {"status": status.value}


class AuthorizationV16:
    def __init__(self, service: ChargingService) -> None:
        self._service = service

    @handles("Authorize")
    async def authorize(self, call: IncomingCall) -> dict[str, Any]:
        status = await self._service.authorize(call.charger_id, IdToken(call.payload["idTag"]))
        return {"idTagInfo": id_tag_info_v16(status)}


class AuthorizationV201:
    def __init__(self, service: ChargingService, plug_and_charge: PlugAndCharge | None = None) -> None:
        self._service = service
        self._plug_and_charge = plug_and_charge

    @handles("Authorize")
    async def authorize(self, call: IncomingCall) -> dict[str, Any]:
        token = id_token_v201(call.payload["idToken"])
        assert token is not None
        certificate = call.payload.get("certificate")
        hash_data = call.payload.get("iso15118CertificateHashData", [])
        pnc = self._plug_and_charge
        contract = certificate is not None or bool(hash_data)
        if pnc is not None and (contract or (token.token_type == "eMAID" and pnc.require_certificate)):
            decision = await pnc.authorize(
                call.charger_id,
                token,
                certificate_pem=certificate,
                hash_data=[OcspId.from_ocpp(entry) for entry in hash_data],
                authorize_token=self._service.authorize,
            )
            info = id_token_info_v201(decision.status)
            if decision.valid_until is not None and decision.status is AuthorizationStatus.ACCEPTED:
                info["cacheExpiryDateTime"] = format_timestamp(decision.valid_until)
            return {"idTokenInfo": info, "certificateStatus": decision.certificate_status.value}
        status = await self._service.authorize(call.charger_id, token)
        return {"idTokenInfo": id_token_info_v201(status)}
