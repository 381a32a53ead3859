"""The OCPP WebSocket endpoint: the only module that touches WebSockets.

``ws://HOST:PORT/ocpp/{charger_id}`` negotiates ``ocpp1.6`` or ``ocpp2.0.1``, checks the charger
is registered (or auto-registers it), that the connection meets the charger's security profile
(:mod:`csms.security_profiles`: ws:// meets 1, wss:// 2, wss:// with a client certificate naming it
3; less is refused with 403) and authenticates it as the connection's profile says: a client
certificate at 3, else HTTP Basic (a charger without a password is admitted over ws:// only).
Then it adapts the aiohttp WebSocket to the protocol layer's ``recv()``/``send()`` connection.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from redis.exceptions import RedisError

from csms.commands import CommandBus
from csms.domain.events import ChargerConnectionChanged, RegistrationStatus
from csms.domain.service import AcceptAllAuthorizer, Authorizer, ChargingService
from csms.errors import ConnectionClosedError
from csms.gc_pacing import pace_collections
from csms.live_state import InProcessLiveState, LiveState
from csms.pki.runtime import PKI, PkiRuntime
from csms.protocol.connection import CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION, CLOSE_UNSUPPORTED_DATA
from csms.protocol.handlers import build_router
from csms.protocol.registry import ConnectedChargers
from csms.protocol.session import MessageLog, OcppSession, utc_now
from csms.protocol.versions import SUPPORTED_SUBPROTOCOLS, OcppVersion
from csms.redis_state import RedisKeys
from csms.routing import RedisNode
from csms.security_profiles import CONNECTION_KINDS, required_profile, unreachable_note
from csms.security_profiles import warn_unreachable as warn_unreachable_profiles
from csms.settings import CsmsSettings
from csms.smart_charging import SmartChargingSettings, StationSetup, install
from csms.smart_charging.ownership import OwnershipSettings, install_ownership
from csms.storage.chargers import ChargerRecord, ChargerRepository
from csms.storage.database import Database
from csms.storage.device_model import DeviceModelRepository
from csms.storage.message_log import PostgresMessageLog
from csms.storage.meter_series import MeterSeries
from csms.storage.passwords import verify_password
from csms.storage.transactions import TransactionRepository
from csms.tasks import TaskOwner
from csms.tls import build_server_context, certificate_identity

logger = logging.getLogger(__name__)

# Printable, no whitespace, ':' (Basic auth separator) or '/'; 48 characters as in 2.0.1.
_CHARGER_ID = re.compile(r"^[^\s:/]{1,48}$")


@dataclass(frozen=True, slots=True)
class CsmsRuntime:
    """Everything the CSMS app owns; ``app[CSMS]`` gives it to the CLI, other packages and tests."""

    settings: CsmsSettings
    database: Database
    chargers: ChargerRepository
    transactions: TransactionRepository
    device_model: DeviceModelRepository
    live_state: LiveState
    service: ChargingService
    connected: ConnectedChargers
    commands: CommandBus
    message_log: PostgresMessageLog
    tasks: TaskOwner
    meter_series: MeterSeries
    redis_node: RedisNode | None = None
    """Redis live state, routing and command channel when ``settings.redis_url`` is set."""


CSMS = web.AppKey("csms", CsmsRuntime)


class WebSocketConnection:
    """An aiohttp WebSocket as a protocol-layer connection (text frames only)."""

    def __init__(self, websocket: web.WebSocketResponse) -> None:
        self._websocket = websocket

    async def recv(self) -> str:
        while True:
            message = await self._websocket.receive()
            if message.type is aiohttp.WSMsgType.TEXT:
                text: str = message.data
                return text
            if message.type is aiohttp.WSMsgType.BINARY:
                await self._websocket.close(code=CLOSE_UNSUPPORTED_DATA, message=b"OCPP-J uses text frames")
                raise ConnectionClosedError("binary frame received")
            if message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                raise ConnectionClosedError(f"websocket {message.type.name.lower()}")

    async def send(self, frame: str) -> None:
        if self._websocket.closed:
            raise ConnectionClosedError("websocket closed")
        try:
            await self._websocket.send_str(frame)
        except (ConnectionError, aiohttp.ClientConnectionResetError) as exc:
            raise ConnectionClosedError(str(exc)) from exc

    async def close(self, code: int, reason: str) -> None:
        await self._websocket.close(code=code, message=reason.encode("utf-8")[:123])


def create_app(
    settings: CsmsSettings,
    *,
    authorizer: Authorizer | None = None,
    live_state: LiveState | None = None,
    stations: Sequence[StationSetup] = (),
    smart_charging: SmartChargingSettings | None = None,
    ownership: OwnershipSettings | None = None,
) -> web.Application:
    """The CSMS aiohttp application; the database opens and migrates on start-up.

    With ``stations`` the smart-charging loop runs too (``app[SMART_CHARGING]``). With Redis
    (``settings.redis_url``) every node must be given the same stations: each station is planned
    by the one node holding its lock (``app[STATION_OWNERSHIP]``, timed by ``ownership``), which
    hears its chargers' events from every node.
    """
    database = Database(settings.database_dsn, max_connections=settings.database_max_connections)
    chargers = ChargerRepository(database)
    transactions = TransactionRepository(database)
    device_model = DeviceModelRepository(database)
    connected = ConnectedChargers()
    redis_node = RedisNode.from_settings(settings, connected) if settings.redis_url else None
    state = live_state or (redis_node.live_state if redis_node else InProcessLiveState())
    service = ChargingService(
        chargers,
        transactions,
        state,
        authorizer or AcceptAllAuthorizer(),
        device_model=device_model,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        pending_retry_interval_s=settings.pending_retry_interval_s,
    )
    runtime = CsmsRuntime(
        settings=settings,
        database=database,
        chargers=chargers,
        transactions=transactions,
        device_model=device_model,
        live_state=state,
        service=service,
        connected=connected,
        commands=(
            redis_node.commands
            if redis_node
            else CommandBus(connected, default_timeout_s=settings.response_timeout_s)
        ),
        message_log=PostgresMessageLog(database),
        tasks=TaskOwner(),
        redis_node=redis_node,
        meter_series=MeterSeries(
            settings.database_dsn,
            batch_size=settings.meter_series_batch_size,
            flush_interval_s=settings.meter_series_flush_interval_s,
        ),
    )
    service.subscribe(runtime.meter_series.on_event)
    app = web.Application()
    if settings.plain_port is not None:
        app.middlewares.append(_ocpp_only_without_tls(settings.ocpp_path_prefix))
    app[CSMS] = runtime
    app.router.add_get(settings.ocpp_path_prefix.rstrip("/") + "/{charger_id}", _ocpp_endpoint)
    app.cleanup_ctx.append(_lifetime)
    app.on_shutdown.append(_close_sessions)
    if stations:
        loop = install(
            app,
            stations,
            service=service,
            commands=runtime.commands,
            live_state=state,
            tasks=runtime.tasks,
            settings=smart_charging,
            subscribe_events=redis_node is None,
        )
        if redis_node is not None:
            install_ownership(
                app,
                stations,
                loop,
                redis=redis_node.redis,
                node_id=redis_node.commands.node_id,
                keys=RedisKeys(settings.redis_key_prefix),
                service=service,
                live_state=state,
                transactions=transactions,
                tasks=runtime.tasks,
                settings=ownership,
            )
    return app


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    runtime = app[CSMS]
    await runtime.database.open()
    await warn_unreachable_profiles(runtime.chargers, runtime.settings)
    if runtime.redis_node is not None:
        await runtime.redis_node.start(runtime.tasks)
    runtime.tasks.start(runtime.message_log.run(), "csms-message-log")
    await runtime.meter_series.open()
    runtime.tasks.start(runtime.meter_series.run(), "csms-meter-series")
    settings = runtime.settings
    if settings.gc_freeze_every_s is not None:
        runtime.tasks.start(
            pace_collections(settings.gc_freeze_every_s, settings.gc_collect_every_s), "csms-gc-pacing"
        )
    try:
        yield
    finally:
        await runtime.message_log.flush()
        await runtime.meter_series.flush()
        await runtime.tasks.cancel_all()
        if runtime.redis_node is not None:
            await runtime.redis_node.close()
        await runtime.meter_series.close()
        await runtime.database.close()


async def _close_sessions(app: web.Application) -> None:
    sessions = list(app[CSMS].connected)
    await asyncio.gather(*(s.close(CLOSE_GOING_AWAY, "server shutting down") for s in sessions))


def _negotiate(request: web.Request) -> OcppVersion | None:
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    for name in offered:
        version = OcppVersion.from_subprotocol(name)
        if version is not None:
            return version
    return None


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(login, password)`` from an ``Authorization: Basic`` header, ``None`` if absent or malformed."""
    if header is None:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    login, separator, password = decoded.partition(":")
    return (login, password) if separator else None


async def _authenticate(request: web.Request, record: ChargerRecord, security_profile: int) -> bool:
    """HTTP Basic authentication of a connection meeting profile 1 or 2. A charger without a password
    is admitted over ws:// only (profile 1: legacy chargers on a trusted network); wss:// without a
    client certificate (profile 2) requires one."""
    if record.password_hash is None:
        if security_profile < 2:
            return True
        logger.warning(
            "charger %s: has no password, and security profile %d requires HTTP Basic authentication:"
            " set a password for this charger (network file: password: env:NAME, then fairwatt apply)",
            record.charger_id,
            security_profile,
        )
        return False
    credentials = _basic_credentials(request.headers.get("Authorization"))
    if credentials is None or credentials[0] != record.charger_id:
        return False
    return await asyncio.to_thread(verify_password, credentials[1], record.password_hash)


def _connection_profile(request: web.Request, charger_id: str) -> int:
    """The security profile this connection meets: 1 without TLS, 2 with TLS, 3 with a verified client
    certificate, which must then name the charger in the URL (else 403)."""
    transport = request.transport
    if transport is None or transport.get_extra_info("ssl_object") is None:
        return 1
    peer_certificate = transport.get_extra_info("peercert")
    if not peer_certificate:  # none asked for (profile 2 without a client CA) or none presented
        return 2
    identity = certificate_identity(peer_certificate)
    if identity is None or not identity.names(charger_id):
        logger.warning("charger %s: client certificate (%s) does not name it, rejected", charger_id, identity)
        raise web.HTTPForbidden(text="client certificate does not name this charge point\n")
    return 3


def _check_profile(record: ChargerRecord, offered: int, settings: CsmsSettings) -> None:
    """Refuse (403) a connection below the charger's security profile (its own, else the node's)."""
    required = required_profile(record.security_profile, settings.security_profile)
    if offered >= required:
        return
    logger.warning(
        "charger %s: security profile %d (%s) required, the connection offers profile %d (%s): refused%s",
        record.charger_id,
        required,
        "its own" if record.security_profile is not None else "the node's, none configured for it",
        offered,
        CONNECTION_KINDS[offered],
        unreachable_note(required, settings),
    )
    raise web.HTTPForbidden(
        text=f"this charge point must connect with security profile {required} or higher\n"
    )


def _ocpp_only_without_tls(prefix: str) -> Callable[..., Any]:
    """A TLS node's extra ws:// listener (``plain_port``) serves the OCPP endpoint only: the driver and
    operator APIs carry bearer tokens, which must not travel without TLS."""
    path_prefix = prefix.rstrip("/") + "/"

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        transport = request.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        if not tls and not request.path.startswith(path_prefix):
            raise web.HTTPNotFound(text="this port serves only the OCPP endpoint; use https\n")
        return await handler(request)

    return middleware


async def _ocpp_endpoint(request: web.Request) -> web.StreamResponse:
    runtime = request.app[CSMS]
    charger_id = request.match_info["charger_id"]
    if not _CHARGER_ID.match(charger_id):
        raise web.HTTPBadRequest(text=f"invalid charge point identity {charger_id!r}\n")
    version = _negotiate(request)
    if version is None:
        raise web.HTTPBadRequest(
            text="Sec-WebSocket-Protocol must offer one of: " + ", ".join(SUPPORTED_SUBPROTOCOLS) + "\n"
        )
    offered = _connection_profile(request, charger_id)
    if offered == 3:
        pki = request.app.get(PKI)
        if pki is not None and await pki.client_certificate_revoked(charger_id, request.transport):
            raise web.HTTPForbidden(text="client certificate is revoked\n")
    record = await runtime.chargers.get(charger_id)
    if record is None:
        if not runtime.settings.auto_register:
            logger.warning("charger %s: unknown charge point identity, rejected", charger_id)
            raise web.HTTPNotFound(text=f"unknown charge point {charger_id}\n")
        record = await runtime.chargers.register_unknown(charger_id, runtime.settings.auto_register_status)
        logger.info("charger %s: auto-registered", charger_id)
    _check_profile(record, offered, runtime.settings)
    if offered != 3 and not await _authenticate(request, record, offered):
        logger.warning("charger %s: basic authentication failed", charger_id)
        raise web.HTTPUnauthorized(
            headers={"WWW-Authenticate": 'Basic realm="fairwatt OCPP"'}, text="authentication required\n"
        )
    websocket = web.WebSocketResponse(
        protocols=(version.subprotocol,),
        # 2.0.1 Part 4 §3.3: the CSMS SHALL support RFC 7692 compression (used when the station offers
        # it); OCPP-J 1.6 §5.1 recommends none. Decompressed size is still bounded by max_msg_size.
        compress=runtime.settings.websocket_compression and version is OcppVersion.V201,
        max_msg_size=runtime.settings.hard_max_message_bytes,
        heartbeat=runtime.settings.websocket_ping_interval_s,
    )
    if not websocket.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="expected a WebSocket upgrade\n")
    await websocket.prepare(request)
    await _serve(
        runtime,
        charger_id,
        version,
        websocket,
        runtime.message_log,
        request.app.get(PKI),
        registered=record.registration_status,
    )
    return websocket


async def _serve(
    runtime: CsmsRuntime,
    charger_id: str,
    version: OcppVersion,
    websocket: web.WebSocketResponse,
    message_log: MessageLog,
    pki: PkiRuntime | None = None,
    *,
    registered: RegistrationStatus | None = None,
) -> None:
    try:
        last_state = await runtime.live_state.get(charger_id)
        answered = last_state.registration if last_state is not None else None
    except (RedisError, OSError) as exc:
        # Redis unreachable: serve the charger anyway, gated by the registry's decision (what its
        # next BootNotification will be answered) instead of the answer it was last given
        logger.warning("charger %s: live state unreadable (%s); gated as the registry says", charger_id, exc)
        answered = registered
    session = OcppSession(
        charger_id,
        version,
        WebSocketConnection(websocket),
        build_router(
            version,
            runtime.service,
            pki=pki,
            registration=answered,
        ),
        max_message_bytes=runtime.settings.max_message_bytes,
        message_log=message_log,
    )
    previous = runtime.connected.register(session)
    if previous is not None:
        logger.info("charger %s: new connection replaces the previous one", charger_id)
        runtime.tasks.start(
            previous.close(CLOSE_POLICY_VIOLATION, "replaced by a new connection"), f"close-{charger_id}"
        )
    await runtime.service.connection_changed(ChargerConnectionChanged(charger_id, True, utc_now()))
    logger.info("charger %s: connected with OCPP %s", charger_id, version.value)
    try:
        await session.run()
    except Exception:
        # Outermost handler of one connection: log, never let it reach the server.
        logger.exception("charger %s: session failed", charger_id)
    finally:
        if runtime.connected.unregister(session):
            await runtime.service.connection_changed(ChargerConnectionChanged(charger_id, False, utc_now()))
        await websocket.close()
        logger.info("charger %s: disconnected", charger_id)


async def run(
    host: str,
    port: int,
    settings: CsmsSettings,
    *,
    ready: Callable[[int], None] | None = None,
    stations: Sequence[StationSetup] = (),
    smart_charging: SmartChargingSettings | None = None,
    configure: Callable[[web.Application], None] | None = None,
) -> None:
    """Serve the CSMS on ``host:port`` until cancelled; ``ready`` gets the bound port once listening.

    With ``settings.plain_port`` the OCPP endpoint is served over ws:// on that port too.

    ``stations`` run the smart-charging loop (see :func:`create_app`); ``configure`` sees the app
    before it starts (to add start-up contexts of its own, such as the stations' price updates).
    """
    app = create_app(settings, stations=stations, smart_charging=smart_charging)
    if configure is not None:
        configure(app)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=build_server_context(settings))
        await site.start()
        bound_port = int(runner.addresses[0][1]) if runner.addresses else port
        logger.info(
            "OCPP endpoint listening on %s://%s:%d%s/{charger_id}",
            "ws" if settings.security_profile < 2 else "wss",
            host,
            bound_port,
            settings.ocpp_path_prefix,
        )
        if settings.plain_port is not None:
            plain = web.TCPSite(runner, host, settings.plain_port)
            await plain.start()
            logger.info("OCPP endpoint also listening on %s (ws://, security profile 1 chargers)", plain.name)
        if ready is not None:
            ready(bound_port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
