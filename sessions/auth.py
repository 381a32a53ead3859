"""Bearer tokens for the APIs: short-lived JWTs (HS256) signed by the platform.

Three roles: ``driver`` (sees and controls their own sessions and reservations), ``operator``
(the operator API, scoped to one CPO's stations) and ``session`` (a token scoped to one charging
session, for the vehicle or the driver's app to watch its live stream; it expires with the
session). :func:`principal_of` reads and checks the ``Authorization`` header; the ``require_*``
helpers turn a wrong role into 403, never a silent pass.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from aiohttp import web

from sessions.errors import SessionsError, forbidden, unauthorized

AUDIENCE = "fairwatt-api"
ISSUER = "fairwatt"
_ALGORITHM = "HS256"
_MIN_SECRET_BYTES = 32


class Role(enum.Enum):
    DRIVER = "driver"
    OPERATOR = "operator"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``subject`` is the driver id, the operator's user id, or the session id."""

    subject: str
    role: Role
    cpo_id: str | None = None
    """The operator's CPO (operators), the driver's CPO (drivers, when they belong to one)."""
    session_id: str | None = None
    """The one session a ``session`` token may watch."""
    expires_at: datetime | None = None


class TokenIssuer:
    """Mints and verifies the platform's bearer tokens with one shared secret."""

    def __init__(self, secret: str, *, ttl_s: int = 900) -> None:
        if len(secret.encode("utf-8")) < _MIN_SECRET_BYTES:
            raise SessionsError(f"the token secret must be at least {_MIN_SECRET_BYTES} bytes")
        if ttl_s <= 0:
            raise SessionsError("token lifetime must be positive")
        self._secret = secret
        self._ttl_s = ttl_s

    def mint(
        self,
        subject: str,
        role: Role,
        *,
        cpo_id: str | None = None,
        session_id: str | None = None,
        ttl_s: int | None = None,
        now: datetime | None = None,
    ) -> str:
        """A signed token for ``subject`` in ``role``, valid ``ttl_s`` (default: the issuer's)."""
        issued = now or datetime.now(UTC)
        claims: dict[str, object] = {
            "sub": subject,
            "role": role.value,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": int(issued.timestamp()),
            "exp": int((issued + timedelta(seconds=ttl_s or self._ttl_s)).timestamp()),
        }
        if cpo_id is not None:
            claims["cpo"] = cpo_id
        if session_id is not None:
            claims["sid"] = session_id
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; 401 :class:`ProblemError` for anything else."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iat", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("the bearer token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise unauthorized(f"the bearer token is not valid: {exc}") from None
        try:
            role = Role(claims["role"])
        except ValueError:
            raise unauthorized("the bearer token has an unknown role") from None
        return Principal(
            subject=str(claims["sub"]),
            role=role,
            cpo_id=claims.get("cpo"),
            session_id=claims.get("sid"),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )


def bearer_token(request: web.Request) -> str:
    """The token of an ``Authorization: Bearer`` header (401 when missing)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("an Authorization: Bearer token is required")
    return token.strip()


def principal_of(request: web.Request, issuer: TokenIssuer) -> Principal:
    """The verified caller of ``request``."""
    return issuer.verify(bearer_token(request))


def require_driver(request: web.Request, issuer: TokenIssuer) -> Principal:
    """The calling driver (403 for an operator or session token)."""
    principal = principal_of(request, issuer)
    if principal.role is not Role.DRIVER:
        raise forbidden("this endpoint is for drivers")
    return principal


def require_operator(request: web.Request, issuer: TokenIssuer) -> Principal:
    """The calling operator (403 for a driver or session token)."""
    principal = principal_of(request, issuer)
    if principal.role is not Role.OPERATOR or principal.cpo_id is None:
        raise forbidden("this endpoint is for operators")
    return principal
