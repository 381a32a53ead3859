"""Authorization: Authorize (1.6 idTag, 2.0.1 idToken), and the verdict translations both use.

A verdict (:class:`~csms.domain.events.Authorization`) goes on the wire whole: 1.6 ``IdTagInfo``
(§7.29: ``status``, ``expiryDate``, ``parentIdTag``) in Authorize, StartTransaction and
StopTransaction (§4.2, §4.8, §4.10) and in SendLocalList entries; 2.0.1 ``IdTokenInfoType``
(``status``, ``cacheExpiryDateTime``, ``groupIdToken``) in Authorize, TransactionEvent (C01-C04, C09)
and SendLocalList. The charger's authorization cache drops a token at its expiry.

A 2.0.1 Authorize carrying an ISO 15118 contract certificate (``certificate``) or its OCSP data
(``iso15118CertificateHashData``) is checked by Plug & Charge (:mod:`csms.pki`) when the app has
it; the answer then carries ``certificateStatus``. With Plug & Charge, an eMAID without either is
refused (NoCertificateAvailable) unless the PKI settings allow it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.domain.events import Authorization, AuthorizationStatus, IdToken
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


V16_ID_TAG_MAX_LENGTH = 20
"""1.6 ``IdToken`` (§7.28) is a CiString20Type, ``parentIdTag`` included."""


def id_tag_info_v16(verdict: Authorization) -> dict[str, Any]:
    """A 1.6 ``IdTagInfo`` (§7.29); statuses 1.6 has no name for (Unknown, NoCredit) become Invalid.

    A group token longer than a 1.6 idTag cannot be a ``parentIdTag`` and is left out."""
    info: dict[str, Any] = {"status": _V16_AUTHORIZATION.get(verdict.status, "Invalid")}
    if verdict.expires_at is not None:
        info["expiryDate"] = format_timestamp(verdict.expires_at)
    group = verdict.group_id_token
    if group is not None and len(group.value) <= V16_ID_TAG_MAX_LENGTH:
        info["parentIdTag"] = group.value
    return info


def id_token_info_v201(verdict: Authorization) -> dict[str, Any]:
    """A 2.0.1 ``IdTokenInfoType``; a group token without a type is a ``Central`` one (the CSMS's)."""
    info: dict[str, Any] = {"status": verdict.status.value}
    if verdict.expires_at is not None:
        info["cacheExpiryDateTime"] = format_timestamp(verdict.expires_at)
    group = verdict.group_id_token
    if group is not None:
        info["groupIdToken"] = {"idToken": group.value, "type": group.token_type or "Central"}
    return info


class AuthorizationV16:
    def __init__(self, service: ChargingService) -> None:
        self._service = service

    @handles("Authorize")
    async def authorize(self, call: IncomingCall) -> dict[str, Any]:
        verdict = await self._service.authorize(call.charger_id, IdToken(call.payload["idTag"]))
        return {"idTagInfo": id_tag_info_v16(verdict)}


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
            return {
                "idTokenInfo": id_token_info_v201(decision.authorization),
                "certificateStatus": decision.certificate_status.value,
            }
        verdict = await self._service.authorize(call.charger_id, token)
        return {"idTokenInfo": id_token_info_v201(verdict)}
