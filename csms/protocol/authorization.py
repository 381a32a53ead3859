"""Authorization: Authorize (1.6 idTag, 2.0.1 idToken), and the status translations both use."""

from __future__ import annotations

from typing import Any

from csms.domain.events import AuthorizationStatus, IdToken
from csms.domain.service import ChargingService
from csms.protocol.convert import id_token_v201
from csms.protocol.router import IncomingCall, handles

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
    def __init__(self, service: ChargingService) -> None:
        self._service = service

    @handles("Authorize")
    async def authorize(self, call: IncomingCall) -> dict[str, Any]:
        token = id_token_v201(call.payload["idToken"])
        assert token is not None
        status = await self._service.authorize(call.charger_id, token)
        return {"idTokenInfo": id_token_info_v201(status)}
