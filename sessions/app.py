"""Wiring of the driver API into the CSMS aiohttp app: ``install(app, settings)``.

The sessions package runs in the same process as the OCPP endpoint (one aiohttp application per
node, see ARCHITECTURE.md) and shares its database, live state and command bus through
``app[CSMS]``. :func:`install` registers the package's migrations, its API operations (and so
the OpenAPI document), the problem+json middleware, and a start-up context that starts the
package's components after the database is open and stops them before it closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from csms.server import CSMS, CsmsRuntime
from sessions.auth import TokenIssuer
from sessions.authorizer import DEFAULT_CACHE_LIFETIME_S
from sessions.errors import SessionsError
from sessions.events import SessionListener
from sessions.geo.feed import NearbyFeed
from sessions.http import problem_middleware
from sessions.openapi import Api
from sessions.ports import CompletionSink, PaymentHolds, ReceiptProvider, ReservationClaims
from sessions.tariff_store import TariffStore

if TYPE_CHECKING:
    from sessions.lifecycle import SessionLifecycle

SESSIONS_MIGRATIONS = "sessions.migrations"


@dataclass(frozen=True, slots=True)
class SessionsSettings:
    """Settings of the driver API (built once by the CLI from its config and passed down)."""

    token_secret: str
    """HS256 secret of the bearer tokens (at least 32 bytes; the same on every node)."""
    token_ttl_s: int = 900
    reservation_hold_s: int = 900
    """How long a reservation waits for its driver before it is released (CancelReservation)."""
    reservation_hold_by_station_s: Mapping[str, int] = field(default_factory=dict)
    """Stations' own holds (the network YAML's per-station ``reservation_hold_s``), by station id."""
    reservation_max_lead_s: int = 1800
    reservation_max_duration_s: int = 1800
    remote_start_timeout_s: float = 120.0
    """How long an INITIATED session waits for the charger's transaction before it FAILS."""
    session_create_per_minute: int = 10
    """Rate limit per driver on ``POST /v1/sessions``."""
    nearby_max_radius_km: float = 50.0
    nearby_max_results: int = 100
    nearby_poll_interval_s: float = 1.0
    """How often the nearby index re-reads registry changes and held reservations."""
    reservation_check_interval_s: float = 1.0
    """How often the reservation worker looks for reservations to start or release."""
    authorization_cache_lifetime_s: float | None = DEFAULT_CACHE_LIFETIME_S
    """The longest a charger may keep an accepted token in its authorization cache [s]: the expiry
    sent with an Accepted verdict is the token's own ``expires_at`` capped at this from now
    (``sessions.authorizer``); ``None``: no cap."""

    def __post_init__(self) -> None:
        if self.reservation_hold_s <= 0 or self.remote_start_timeout_s <= 0:
            raise SessionsError("hold and timeout must be positive")
        if any(hold_s <= 0 for hold_s in self.reservation_hold_by_station_s.values()):
            raise SessionsError("every station's reservation hold must be positive")
        if self.session_create_per_minute <= 0:
            raise SessionsError("session_create_per_minute must be positive")
        if self.authorization_cache_lifetime_s is not None and self.authorization_cache_lifetime_s <= 0:
            raise SessionsError("authorization_cache_lifetime_s must be positive (or None: no cap)")


Starter = Callable[[], Awaitable[None]]


@dataclass
class SessionsRuntime:
    """What the sessions package runs in one app (``app[SESSIONS]``).

    Components register ``on_start``/``on_stop`` callbacks while the app is being assembled;
    they run after the database opened and before it closes (stops in reverse order).
    """

    settings: SessionsSettings
    csms: CsmsRuntime
    issuer: TokenIssuer
    tariffs: TariffStore
    api: Api
    on_start: list[Starter] = field(default_factory=list)
    on_stop: list[Starter] = field(default_factory=list)
    receipts: ReceiptProvider | None = None
    """Set by billing when it is installed; the receipt endpoint answers 404 until then."""
    reservations: ReservationClaims | None = None
    payment_holds: PaymentHolds | None = None
    """Set by billing; without it a session starts without a payment hold."""
    completion_sinks: list[CompletionSink] = field(default_factory=list)
    nearby: NearbyFeed | None = None
    """The nearby-search index and its feed (set by ``sessions.api.chargers``)."""
    session_listeners: list[SessionListener] = field(default_factory=list)
    """Called with every session event (transitions and progress) of every node; append while assembling."""
    lifecycle: SessionLifecycle | None = None
    """Set by :mod:`sessions.api.sessions` when it registers: the session state machine of this node."""


SESSIONS = web.AppKey("sessions", SessionsRuntime)

ApiModule = Callable[[Api, SessionsRuntime], None]


def api_modules() -> list[ApiModule]:
    """The modules that declare API operations, each as ``register(api, runtime)``."""
    from sessions.api import (
        chargers,
        meta,
        reservations,
        session_live,
        session_needs,
        session_tokens,
        sessions,
    )

    return [
        meta.register,
        chargers.register,
        reservations.register,
        sessions.register,
        session_needs.register,
        session_live.register,
        session_tokens.register,
    ]


def install(
    app: web.Application, settings: SessionsSettings, *, extra_api: Sequence[ApiModule] = ()
) -> SessionsRuntime:
    """Add the driver API to a CSMS app made by :func:`csms.server.create_app`.

    ``extra_api`` are other packages' ``register(api, runtime)`` functions (the operator API,
    demand response, billing): their operations join the same routes and OpenAPI document.
    """
    csms = app[CSMS]
    csms.database.add_migrations(SESSIONS_MIGRATIONS)
    api = Api()
    runtime = SessionsRuntime(
        settings=settings,
        csms=csms,
        issuer=TokenIssuer(settings.token_secret, ttl_s=settings.token_ttl_s),
        tariffs=TariffStore(csms.database),
        api=api,
    )
    app[SESSIONS] = runtime
    for register in (*api_modules(), *extra_api):
        register(api, runtime)
    api.install(app)
    app.middlewares.append(problem_middleware)
    app.cleanup_ctx.append(_lifetime)
    return runtime


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    runtime = app[SESSIONS]
    try:
        for start in runtime.on_start:
            await start()
        yield
    finally:
        for stop in reversed(runtime.on_stop):
            await stop()
