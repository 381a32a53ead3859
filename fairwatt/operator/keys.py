"""Operator API keys: long-lived signed tokens (role ``operator``, claim ``cpo``) and their revocation.

A key is a JWT minted by :func:`mint_key` with the platform's token secret, so the existing
``sessions.auth.require_operator`` accepts it; its subject is the key id (``NAME.RANDOM``), which
the audit log records as the actor. Revoking a key stores its id in ``operator_key_revocations``;
:meth:`OperatorAuth.principal` refuses a revoked key (one indexed lookup, cached a few seconds).
"""

from __future__ import annotations

import re
import secrets
import time

from aiohttp import web

from csms.storage.database import Database
from sessions.auth import Principal, Role, TokenIssuer, require_operator
from sessions.errors import unauthorized

KEY_TTL_S = 10 * 365 * 24 * 3600
"""An operator key's lifetime: ten years (revoke it to end it sooner)."""
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def mint_key(issuer: TokenIssuer, cpo_id: str, name: str, *, ttl_s: int = KEY_TTL_S) -> tuple[str, str]:
    """``(key_id, key)``: a new operator key for ``cpo_id``, named ``name`` (who holds it)."""
    if not _NAME.match(name):
        raise ValueError(f"a key name is 1-40 letters, digits, '-' or '_', got {name!r}")
    if not cpo_id.strip():
        raise ValueError("the CPO id must not be empty")
    key_id = f"{name}.{secrets.token_hex(6)}"
    return key_id, issuer.mint(key_id, Role.OPERATOR, cpo_id=cpo_id, ttl_s=ttl_s)


async def revoke_key(database: Database, key_id: str, cpo_id: str | None = None) -> bool:
    """Refuse ``key_id`` from now on; whether it was not revoked before."""
    status: str = await database.pool.execute(
        "INSERT INTO operator_key_revocations (key_id, cpo_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        key_id,
        cpo_id,
    )
    return status.endswith(" 1")


class OperatorAuth:
    """Checks an operator's key: signature, role and CPO (``require_operator``), then revocation."""

    def __init__(self, issuer: TokenIssuer, database: Database, *, cache_s: float = 5.0) -> None:
        self._issuer = issuer
        self._database = database
        self._cache_s = cache_s
        self._checked: dict[str, tuple[float, bool]] = {}

    async def principal(self, request: web.Request) -> Principal:
        principal = require_operator(request, self._issuer)
        if await self._revoked(principal.subject):
            raise unauthorized("this operator key has been revoked")
        return principal

    async def _revoked(self, key_id: str) -> bool:
        now = time.monotonic()
        cached = self._checked.get(key_id)
        if cached is not None and now - cached[0] < self._cache_s:
            return cached[1]
        revoked = bool(
            await self._database.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM operator_key_revocations WHERE key_id = $1)", key_id
            )
        )
        if len(self._checked) > 10_000:
            self._checked.clear()
        self._checked[key_id] = (now, revoked)
        return revoked
