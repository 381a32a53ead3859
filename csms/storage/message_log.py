"""The OCPP message log: every frame per charger, written in batches by one background task.

Sessions call :meth:`PostgresMessageLog.record`, which never blocks; :meth:`run` drains the queue
into PostgreSQL. The app owns the task (started and cancelled in its cleanup context);
:meth:`flush` waits until everything recorded so far is stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from csms.protocol.session import LoggedMessage
from csms.storage.database import Database

logger = logging.getLogger(__name__)

_INSERT = """
    INSERT INTO ocpp_messages (charger_id, direction, message_type_id, action, unique_id, payload, logged_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)"""


class PostgresMessageLog:
    """A bounded queue of messages and the writer that stores them."""

    def __init__(self, database: Database, *, max_queued: int = 100_000, batch_size: int = 500) -> None:
        self._database = database
        self._queue: asyncio.Queue[LoggedMessage] = asyncio.Queue(max_queued)
        self._batch_size = batch_size
        self.dropped = 0
        self._observers: list[Callable[[LoggedMessage], None]] = []

    def add_observer(self, observer: Callable[[LoggedMessage], None]) -> None:
        """Also show every recorded message to ``observer`` (metrics: messages by action); must not block."""
        self._observers.append(observer)

    def record(self, message: LoggedMessage) -> None:
        """Queue ``message``; when the queue is full it is dropped and counted."""
        for observer in self._observers:
            observer(message)
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                logger.warning("charger %s: message log full, %d dropped", message.charger_id, self.dropped)

    async def flush(self) -> None:
        """Return once every message recorded so far is stored."""
        await self._queue.join()

    async def run(self) -> None:
        """Write queued messages in batches until cancelled."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception:
                # Outermost handler of the writer task: losing log lines must not stop logging.
                logger.exception("message log: %d messages could not be stored", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[LoggedMessage]) -> None:
        rows: list[tuple[Any, ...]] = [
            (
                m.charger_id,
                m.direction.value,
                m.message_type_id,
                m.action,
                m.unique_id,
                m.payload,
                m.logged_at,
            )
            for m in batch
        ]
        async with self._database.pool.acquire() as connection:
            await connection.executemany(_INSERT, rows)
