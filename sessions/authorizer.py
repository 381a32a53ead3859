"""The CSMS's :class:`~csms.domain.service.Authorizer` backed by the drivers' tokens.

A charger asks about an idTag/idToken in Authorize, StartTransaction, StopTransaction and
TransactionEvent. Accepted are: the token of an open app session on that charger (each remote
start carries a token of its own), and a driver's RFID/eMAID token whose status is Accepted, not
expired, of a driver who is not blocked. ``NoAuthorization`` tokens (free vend) are accepted. A
token nobody issued is ``Unknown`` (1.6 answers it ``Invalid``). Tokens compare case-insensitively
(1.6 §7.28, 2.0.1 IdTokenType: readers differ in the hex case of one card's uid); an exact match
wins over one differing in case only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from csms.domain.events import AuthorizationStatus, IdToken
from csms.storage.database import Database
from sessions.session_store import SessionStore

_STATUSES = {
    "Accepted": AuthorizationStatus.ACCEPTED,
    "Blocked": AuthorizationStatus.BLOCKED,
    "Expired": AuthorizationStatus.EXPIRED,
    "Invalid": AuthorizationStatus.INVALID,
}


class DriverAuthorizer:
    """Authorises id tokens against ``driver_tokens`` and the open app sessions."""

    def __init__(self, database: Database, store: SessionStore) -> None:
        self._database = database
        self._store = store

    async def authorize(self, charger_id: str, id_token: IdToken) -> AuthorizationStatus:
        if id_token.token_type == "NoAuthorization":
            return AuthorizationStatus.ACCEPTED
        if await self._store.open_with_token(charger_id, id_token.value):
            return AuthorizationStatus.ACCEPTED
        row = await self._database.pool.fetchrow(
            """SELECT t.status, t.expires_at, d.blocked FROM driver_tokens t
               JOIN drivers d USING (driver_id) WHERE lower(t.id_token) = lower($1)
               ORDER BY t.id_token = $1 DESC LIMIT 1""",
            id_token.value,
        )
        if row is None:  # 2.0.1 names it Unknown; 1.6 has Invalid for it
            return AuthorizationStatus.UNKNOWN
        if row["blocked"]:
            return AuthorizationStatus.BLOCKED
        if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
            return AuthorizationStatus.EXPIRED
        return _STATUSES.get(row["status"], AuthorizationStatus.INVALID)
