"""Session events as they happen: wake-ups for live streams in this node, and relay across nodes.

The stored ``session_events`` are the truth; what travels here is only "session X has a new
event". A live stream (:mod:`sessions.api.sessions`) waits on :class:`LiveHub`, then reads
what it has not sent yet from PostgreSQL, so a lost wake-up delays an event but never drops it
(streams also re-read on a short poll). With Redis, :class:`SessionEventRelay` publishes every
event on one channel and delivers other nodes' events to this node's hub and listeners.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from csms.tasks import TaskOwner
from sessions.events import SessionEvent, SessionState

logger = logging.getLogger(__name__)

_RESUBSCRIBE_DELAY_S = 1.0


class LiveHub:
    """Wakes the live streams of a session in this process."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Event]] = {}

    @contextmanager
    def watch(self, session_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``session_id`` has something new (clear it before reading)."""
        wake = asyncio.Event()
        self._watchers.setdefault(session_id, set()).add(wake)
        try:
            yield wake
        finally:
            watchers = self._watchers.get(session_id)
            if watchers is not None:
                watchers.discard(wake)
                if not watchers:
                    del self._watchers[session_id]

    def notify(self, session_id: str) -> None:
        for wake in self._watchers.get(session_id, ()):
            wake.set()

    def watching(self, session_id: str) -> int:
        return len(self._watchers.get(session_id, ()))


def event_to_json(event: SessionEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "session_id": event.session_id,
        "kind": event.kind,
        "state": event.state.value,
        "at": event.at.isoformat(),
        "data": event.data,
    }


def event_from_json(document: dict[str, Any]) -> SessionEvent:
    return SessionEvent(
        seq=int(document["seq"]),
        session_id=str(document["session_id"]),
        kind=str(document["kind"]),
        state=SessionState(document["state"]),
        at=datetime.fromisoformat(document["at"]),
        data=dict(document["data"]),
    )


class SessionEventRelay:
    """Publishes this node's session events on Redis and hands other nodes' to ``deliver``."""

    def __init__(
        self,
        redis: Redis,
        channel: str,
        node_id: str,
        deliver: Callable[[SessionEvent], Awaitable[None]],
    ) -> None:
        self._redis = redis
        self._channel = channel
        self._node_id = node_id
        self._deliver = deliver
        self._pubsub: PubSub | None = None

    async def open(self, tasks: TaskOwner) -> None:
        """Subscribe (confirmed before this returns), then listen in a task of ``tasks``."""
        pubsub = self._redis.pubsub()
        self._pubsub = pubsub
        await pubsub.subscribe(self._channel)
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "subscribe":
                break
        tasks.start(self._listen(pubsub), f"sessions-event-relay-{self._node_id}")

    async def close(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None

    async def publish(self, event: SessionEvent) -> None:
        """Tell the other nodes (at most once: their streams also poll PostgreSQL)."""
        message = json.dumps({"node": self._node_id, "event": event_to_json(event)})
        try:
            await self._redis.publish(self._channel, message)
        except RedisError as exc:
            logger.warning("session %s: event %d not relayed: %s", event.session_id, event.seq, exc)

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            except RedisError as exc:
                logger.warning("session event relay failed (%s), resubscribing", exc)
                await asyncio.sleep(_RESUBSCRIBE_DELAY_S)
                continue
            if message is None or message["type"] != "message":
                continue
            data = message["data"]
            try:
                document = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
                if document["node"] == self._node_id:
                    continue
                event = event_from_json(document["event"])
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("ignoring a malformed relayed session event: %s", exc)
                continue
            await self._deliver(event)
