"""The CSMS's :class:`~csms.domain.service.Authorizer` backed by the drivers' tokens.

A charger asks about an idTag/idToken in Authorize, StartTransaction, StopTransaction and
TransactionEvent. Accepted are: the token of an open app session on that charger (each remote
start carries a token of its own), and a driver's RFID/eMAID token whose status is Accepted, not
expired, of a driver who is not blocked. ``NoAuthorization`` tokens (free vend) are accepted. A
token nobody issued is ``Unknown`` (1.6 answers it ``Invalid``). Tokens compare case-insensitively
(1.6 §7.28, 2.0.1 IdTokenType: readers differ in the hex case of one card's uid); an exact match
wins over one differing in case only.

An accepted verdict tells the charger until when it may keep the token in its authorization cache
(1.6 ``expiryDate``, 2.0.1 ``cacheExpiryDateTime``): the token's ``expires_at``, capped at
``cache_lifetime_s`` from now. The cap is there because a charger keeps a cached token without an
expiry for good: a driver blocked, or a token withdrawn, after it was cached would go on charging
there offline (and online where the charger pre-authorises from its cache) until the cache is
cleared. With the cap the charger asks again within that time, and each Accepted answer renews it.
A driver's token also carries its group (``driver_tokens.group_id_token``: 1.6 ``parentIdTag``,
2.0.1 ``groupIdToken``), so another card of the group may stop the transaction (C09).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.domain.events import Authorization, AuthorizationStatus, IdToken
from csms.storage.database import Database
from sessions.session_store import SessionStore

_STATUSES = {
    "Accepted": AuthorizationStatus.ACCEPTED,
    "Blocked": AuthorizationStatus.BLOCKED,
    "Expired": AuthorizationStatus.EXPIRED,
    "Invalid": AuthorizationStatus.INVALID,
}

DEFAULT_CACHE_LIFETIME_S = 86_400.0
"""How long a charger may keep an accepted token in its authorization cache at most [s] (a day)."""


class DriverAuthorizer:
    """Authorises id tokens against ``driver_tokens`` and the open app sessions.

    ``cache_lifetime_s`` caps the expiry an accepted verdict carries (``None``: no cap, a token
    without ``expires_at`` is sent without expiry)."""

    def __init__(
        self,
        database: Database,
        store: SessionStore,
        *,
        cache_lifetime_s: float | None = DEFAULT_CACHE_LIFETIME_S,
    ) -> None:
        self._database = database
        self._store = store
        self._cache_lifetime = None if cache_lifetime_s is None else timedelta(seconds=cache_lifetime_s)

    async def authorize(self, charger_id: str, id_token: IdToken) -> Authorization:
        if id_token.token_type == "NoAuthorization":
            return Authorization(AuthorizationStatus.ACCEPTED)
        now = datetime.now(UTC)
        if await self._store.open_with_token(charger_id, id_token.value):
            return Authorization(AuthorizationStatus.ACCEPTED, self._cache_expiry(None, now))
        row = await self._database.pool.fetchrow(
            """SELECT t.status, t.expires_at, t.group_id_token, t.group_id_token_type, d.blocked
               FROM driver_tokens t JOIN drivers d USING (driver_id) WHERE lower(t.id_token) = lower($1)
               ORDER BY t.id_token = $1 DESC LIMIT 1""",
            id_token.value,
        )
        if row is None:  # 2.0.1 names it Unknown; 1.6 has Invalid for it
            return Authorization(AuthorizationStatus.UNKNOWN)
        if row["blocked"]:
            return Authorization(AuthorizationStatus.BLOCKED)
        expires_at: datetime | None = row["expires_at"]
        if expires_at is not None and expires_at <= now:
            return Authorization(AuthorizationStatus.EXPIRED)
        status = _STATUSES.get(row["status"], AuthorizationStatus.INVALID)
        if status is not AuthorizationStatus.ACCEPTED:
            return Authorization(status)
        group = row["group_id_token"]
        return Authorization(
            status,
            self._cache_expiry(expires_at, now),
            None if group is None else IdToken(group, row["group_id_token_type"]),
        )

    def _cache_expiry(self, expires_at: datetime | None, now: datetime) -> datetime | None:
        """The earlier of the token's own expiry and the cache lifetime from ``now``."""
        if self._cache_lifetime is None:
            return expires_at
        capped = now + self._cache_lifetime
        return capped if expires_at is None else min(expires_at, capped)
