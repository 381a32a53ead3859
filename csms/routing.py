"""Charger -> node routing and the command channel between nodes, over Redis.

A charger's socket lives on one node. :class:`RoutedCommandBus` is a :class:`CommandBus` that
sends a command itself when the socket is on this node and forwards it otherwise:

1. The caller builds the request for both OCPP versions (it does not know which one the charger
   speaks; building is pure and cheap) and, in one round trip (a Lua script), reads the charger's
   route entry and publishes the request on the holding node's command channel. No route, a route
   to this node without a local socket, or a channel nobody listens on (the node died) answer
   ``NOT_CONNECTED`` at once.
2. The holding node picks the build for the charger's version, sends it, and publishes the
   :class:`CommandResult` (or the :class:`CommandError` message) on the caller's reply channel,
   keyed by the request id.
3. The caller waits up to the command's timeout plus ``forward_margin_s``; past that, ``TIMEOUT``.

Pub/sub rather than streams: a command is worth delivering only while its caller waits, so
at-most-once delivery with an immediate "nobody listening" signal (PUBLISH's receiver count) fits
better than a durable queue that would replay stale commands to a restarted node.

Route entries expire (``route_ttl_s``); the holding node renews those of its connected chargers
every third of that (and every heartbeat renews one), so the routes of a node that died vanish
within ``route_ttl_s`` even before its chargers reconnect elsewhere. Until then its chargers
already answer ``NOT_CONNECTED``: a dead node's command channel has no subscriber. That is why the
default TTL can be long (300 s): renewal costs one script call per charger per 100 s, 5,000/s for
500,000 chargers, a third of the heartbeats' load (OCPP-J chargers may skip heartbeats, so
heartbeats alone cannot keep routes alive).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import secrets
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from csms.commands.bus import CommandBus
from csms.commands.payloads import Built
from csms.commands.results import CommandOutcome, CommandResult, result_document
from csms.errors import CommandError, CsmsError, SettingsError
from csms.protocol.registry import ConnectedChargers
from csms.protocol.versions import OcppVersion
from csms.redis_state import RedisKeys, RedisLiveState
from csms.settings import CsmsSettings
from csms.tasks import TaskOwner

logger = logging.getLogger(__name__)

# KEYS[1] route; ARGV: channel prefix, channel suffix, this node, request. Returns {node, receivers}:
# node '' when there is no route, receivers -1 when the route points at the caller itself.
_FORWARD_SCRIPT = """
local node = redis.call('GET', KEYS[1])
if not node then
  return {'', 0}
end
if node == ARGV[3] then
  return {node, -1}
end
return {node, redis.call('PUBLISH', ARGV[1] .. node .. ARGV[2], ARGV[4])}
"""

# KEYS[1] route; ARGV: this node, ttl [ms]. Renew the route unless another node holds it now.
_RENEW_SCRIPT = """
local node = redis.call('GET', KEYS[1])
if node and node ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RENEW_BATCH = 1_000
# OCPP request ids (remoteStartId, requestId) must not collide between nodes: each node reserves
# blocks of this many from a Redis counter and takes the next block when 90 % of one is used.
_REQUEST_ID_BLOCK = 1 << 20
_REQUEST_ID_BLOCKS = (2**31 - 1) // _REQUEST_ID_BLOCK
_RECONNECT_DELAY_S = 1.0


class CommandChannelError(CsmsError):
    """Redis, which carries commands between nodes, cannot be reached."""


def default_node_id() -> str:
    """A node id unique per process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class ForwardedCommand:
    """A command on its way to the node holding the charger's socket."""

    request_id: str
    reply_to: str
    charger_id: str
    builds: dict[str, Any]
    """Per OCPP version value: ``{"action", "payload"}``, ``{"error"}`` or ``None`` (unsupported)."""
    timeout_s: float

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.request_id,
                "reply_to": self.reply_to,
                "charger_id": self.charger_id,
                "builds": self.builds,
                "timeout_s": self.timeout_s,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ForwardedCommand:
        document = json.loads(text)
        return cls(
            request_id=str(document["id"]),
            reply_to=str(document["reply_to"]),
            charger_id=str(document["charger_id"]),
            builds=dict(document["builds"]),
            timeout_s=float(document["timeout_s"]),
        )


class RoutedCommandBus(CommandBus):
    """A :class:`CommandBus` that reaches chargers connected to any node sharing ``redis``.

    :meth:`open` subscribes to this node's channels and starts the listener and the route renewer
    as tasks of the app's :class:`TaskOwner`; :meth:`close` ends the subscription.
    """

    def __init__(
        self,
        connected: ConnectedChargers,
        redis: Redis,
        node_id: str,
        *,
        default_timeout_s: float,
        keys: RedisKeys | None = None,
        route_ttl_s: float = 300.0,
        forward_margin_s: float = 2.0,
    ) -> None:
        super().__init__(connected, default_timeout_s=default_timeout_s)
        self._connected = connected
        self._redis = redis
        self.node_id = node_id
        self._keys = keys or RedisKeys()
        self._route_ttl_s = route_ttl_s
        self._forward_margin_s = forward_margin_s
        self._forward = redis.register_script(_FORWARD_SCRIPT)
        self._renew = redis.register_script(_RENEW_SCRIPT)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._pubsub: PubSub | None = None
        self._tasks: TaskOwner | None = None
        self._next_request_id = 1
        self._request_ids_end = 1
        self._reserving = False

    async def open(self, tasks: TaskOwner) -> None:
        """Subscribe to this node's command and reply channels, then start listening."""
        pubsub = self._redis.pubsub()
        self._pubsub = pubsub
        self._tasks = tasks
        await self._reserve_request_ids()
        channels = (self._keys.commands(self.node_id), self._keys.replies(self.node_id))
        await pubsub.subscribe(*channels)
        # Wait for both confirmations, so a command published after open() returns is received.
        confirmed = 0
        while confirmed < len(channels):
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "subscribe":
                confirmed += 1
        tasks.start(self._listen(pubsub), f"csms-command-channel-{self.node_id}")
        tasks.start(self._renew_routes_forever(), f"csms-route-renewal-{self.node_id}")
        logger.info("node %s: listening for commands on %s", self.node_id, channels[0])

    async def close(self) -> None:
        """End the subscription (the listener task is cancelled by the task owner)."""
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None

    def next_request_id(self) -> int:
        """A request id no other node hands out (from this node's reserved block)."""
        request_id = self._next_request_id
        self._next_request_id = request_id % (2**31 - 1) + 1
        remaining = self._request_ids_end - self._next_request_id
        if remaining < _REQUEST_ID_BLOCK // 10 and not self._reserving and self._tasks is not None:
            self._reserving = True
            self._tasks.start(self._reserve_request_ids(), f"csms-request-ids-{self.node_id}")
        return request_id

    async def _reserve_request_ids(self) -> None:
        try:
            reserved = int(await self._redis.incr(self._keys.request_ids()))
        finally:
            self._reserving = False
        start = ((reserved - 1) % _REQUEST_ID_BLOCKS) * _REQUEST_ID_BLOCK + 1
        self._next_request_id, self._request_ids_end = start, start + _REQUEST_ID_BLOCK
        logger.info("node %s: request ids from %d", self.node_id, start)

    async def node_of(self, charger_id: str) -> str | None:
        """The node holding ``charger_id``'s socket per the routing table, ``None`` if none."""
        node = await self._redis.get(self._keys.route(charger_id))
        return None if node is None else _text(node)

    async def _deliver(
        self,
        charger_id: str,
        build: Callable[[OcppVersion], Built],
        timeout_s: float | None,
        validate: bool = True,
    ) -> CommandResult:
        session = self._connected.get(charger_id)
        if session is not None and not session.closed:
            return await super()._deliver(charger_id, build, timeout_s, validate)
        # the node holding the socket validates what it sends
        return await self._send_remote(charger_id, build, timeout_s or self._default_timeout_s)

    async def _send_remote(
        self, charger_id: str, build: Callable[[OcppVersion], Built], timeout_s: float
    ) -> CommandResult:
        builds = {version.value: _build_document(build, version) for version in OcppVersion}
        actions = {b["action"] for b in builds.values() if b is not None and "action" in b}
        action = actions.pop() if len(actions) == 1 else None
        request = ForwardedCommand(
            request_id=uuid.uuid4().hex,
            reply_to=self._keys.replies(self.node_id),
            charger_id=charger_id,
            builds=builds,
            timeout_s=timeout_s,
        )
        prefix, suffix = self._keys.commands("\0").split("\0")
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request.request_id] = answer
        try:
            try:
                node, receivers = await self._forward(
                    keys=[self._keys.route(charger_id)],
                    args=[prefix, suffix, self.node_id, request.to_json()],
                )
            except RedisError as exc:
                raise CommandChannelError(f"charger {charger_id}: cannot forward the command: {exc}") from exc
            if receivers <= 0:
                if node:
                    logger.info(
                        "charger %s: routed to node %s, which does not hold it", charger_id, _text(node)
                    )
                return CommandResult(charger_id, action, CommandOutcome.NOT_CONNECTED)
            try:
                async with asyncio.timeout(timeout_s + self._forward_margin_s):
                    reply = await answer
            except TimeoutError:
                logger.warning("charger %s: no answer from node %s in time", charger_id, _text(node))
                return CommandResult(charger_id, action, CommandOutcome.TIMEOUT)
        finally:
            self._waiting.pop(request.request_id, None)
        if "error" in reply:
            raise CommandError(str(reply["error"]))
        return result_from_document(reply["result"])

    async def _listen(self, pubsub: PubSub) -> None:
        commands = self._keys.commands(self.node_id)
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            except RedisError as exc:
                logger.warning("node %s: command channel failed (%s), resubscribing", self.node_id, exc)
                await asyncio.sleep(_RECONNECT_DELAY_S)
                continue
            if message is None or message["type"] != "message":
                continue
            if _text(message["channel"]) == commands:
                self._accept_command(_text(message["data"]))
            else:
                self._accept_reply(_text(message["data"]))

    def _accept_command(self, text: str) -> None:
        try:
            request = ForwardedCommand.from_json(text)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("node %s: ignoring malformed forwarded command: %s", self.node_id, exc)
            return
        assert self._tasks is not None
        self._tasks.start(self._serve(request), f"csms-forwarded-{request.charger_id}-{request.request_id}")

    def _accept_reply(self, text: str) -> None:
        try:
            reply = json.loads(text)
            request_id = str(reply["id"])
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("node %s: ignoring malformed command reply: %s", self.node_id, exc)
            return
        waiting = self._waiting.get(request_id)
        if waiting is not None and not waiting.done():
            waiting.set_result(reply)

    async def _serve(self, request: ForwardedCommand) -> None:
        """Run a forwarded command against the local socket and publish the answer."""
        reply: dict[str, Any] = {"id": request.request_id}
        try:
            result = await self._send_here(request)
        except CommandError as exc:
            reply["error"] = str(exc)
        else:
            reply["result"] = result_document(result)
        try:
            await self._redis.publish(request.reply_to, json.dumps(reply))
        except RedisError as exc:
            logger.warning(
                "charger %s: could not return the forwarded command's answer: %s", request.charger_id, exc
            )

    async def _send_here(self, request: ForwardedCommand) -> CommandResult:
        charger_id = request.charger_id
        session = self._connected.get(charger_id)
        if session is None or session.closed:
            return CommandResult(charger_id, None, CommandOutcome.NOT_CONNECTED)
        document = request.builds.get(session.version.value)
        if document is not None and "error" in document:
            raise CommandError(str(document["error"]))
        built: Built = None if document is None else (str(document["action"]), dict(document["payload"]))
        logger.info("charger %s: forwarded %s", charger_id, "command" if built is None else built[0])
        return await super()._deliver(charger_id, lambda _version: built, request.timeout_s)

    async def renew_routes(self) -> int:
        """Renew the route entries of this node's connected chargers; how many were renewed."""
        charger_ids = [s.charger_id for s in self._connected if not s.closed]
        ttl_ms = max(1, round(self._route_ttl_s * 1000))
        renewed = 0
        for start in range(0, len(charger_ids), _RENEW_BATCH):
            async with self._redis.pipeline(transaction=False) as pipe:
                for charger_id in itertools.islice(charger_ids, start, start + _RENEW_BATCH):
                    await self._renew(
                        keys=[self._keys.route(charger_id)], args=[self.node_id, ttl_ms], client=pipe
                    )
                renewed += sum(int(r) for r in await pipe.execute())
        return renewed

    async def _renew_routes_forever(self) -> None:
        while True:
            await asyncio.sleep(self._route_ttl_s / 3)
            try:
                await self.renew_routes()
            except RedisError as exc:
                logger.warning("node %s: renewing routes failed: %s", self.node_id, exc)


def _build_document(build: Callable[[OcppVersion], Built], version: OcppVersion) -> dict[str, Any] | None:
    try:
        built = build(version)
    except CommandError as exc:
        return {"error": str(exc)}
    return None if built is None else {"action": built[0], "payload": built[1]}


def result_from_document(document: dict[str, Any]) -> CommandResult:
    """The :class:`CommandResult` written by :func:`result_document`."""
    return CommandResult(
        charger_id=document["charger_id"],
        action=document["action"],
        outcome=CommandOutcome(document["outcome"]),
        status=document["status"],
        payload=dict(document["payload"]),
        error_code=document["error_code"],
        error_description=document["error_description"],
    )


@dataclass(frozen=True, slots=True)
class RedisNode:
    """This node's share of a multi-node CSMS: Redis live state and the routed command bus."""

    redis: Redis
    live_state: RedisLiveState
    commands: RoutedCommandBus

    @classmethod
    def from_settings(cls, settings: CsmsSettings, connected: ConnectedChargers) -> RedisNode:
        """Connect lazily to ``settings.redis_url`` (which must be set)."""
        if settings.redis_url is None:
            raise SettingsError("a Redis node needs settings.redis_url")
        # a blocking pool: under a burst (10,000 chargers' heartbeats) callers wait for a
        # connection instead of failing with MaxConnectionsError, which chargers saw as
        # InternalError on 2 % of heartbeats in the load benchmark
        pool = BlockingConnectionPool.from_url(
            settings.redis_url,
            decode_responses=True,
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_pool_timeout_s,
        )
        redis = Redis.from_pool(pool)  # the client owns the pool and closes it
        node_id = settings.node_id or default_node_id()
        keys = RedisKeys(settings.redis_key_prefix)
        live_state = RedisLiveState(
            redis, node_id, keys=keys, route_ttl_s=settings.route_ttl_s, node_ttl_s=settings.node_ttl_s
        )
        commands = RoutedCommandBus(
            connected,
            redis,
            node_id,
            default_timeout_s=settings.response_timeout_s,
            keys=keys,
            route_ttl_s=settings.route_ttl_s,
        )
        return cls(redis, live_state, commands)

    async def start(self, tasks: TaskOwner) -> None:
        """Mark this node alive and subscribe to its channels; the listener, the route renewer and
        the liveness renewer (which also writes live state Redis missed) run as ``tasks``."""
        await self.live_state.mark_alive()
        await self.commands.open(tasks)
        tasks.start(self.live_state.keep_alive_forever(), f"csms-node-alive-{self.commands.node_id}")

    async def close(self) -> None:
        """End the subscription, say this node is gone and close the connections (after the tasks
        are cancelled)."""
        await self.commands.close()
        try:
            await self.live_state.flush_pending()
            await self.redis.delete(self.live_state.keys.node_alive(self.commands.node_id))
        except RedisError as exc:
            logger.warning(
                "node %s: not marked gone (%s); its liveness key expires", self.commands.node_id, exc
            )
        await self.redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
