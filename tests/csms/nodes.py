"""Central-system nodes for the tests that run several of them on one PostgreSQL and Redis: a
``create_app`` node in this process on a free port, and a node in a process of its own."""

from __future__ import annotations

import asyncio
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from csms.smart_charging import SMART_CHARGING
from csms.smart_charging.ownership import STATION_OWNERSHIP

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Node:
    """A ``create_app`` node in this process, on a free port."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.runner = web.AppRunner(app)
        self.port = 0

    async def start(self) -> None:
        await self.runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]
        await web.SockSite(self.runner, listener).start()

    async def stop(self) -> None:
        if self.port:
            self.port = 0
            await self.runner.cleanup()

    def url(self, charger_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charger_id}"

    @property
    def owned(self) -> frozenset[str]:
        return self.app[STATION_OWNERSHIP].owned

    def history_size(self, station_id: str) -> int:
        """How many finished sessions this node's loop knows for the station's forecast."""
        history = self.app[SMART_CHARGING].state(station_id).history
        assert history is not None
        return len(history)


@dataclass
class NodeProcess:
    """A node in a process of its own, serving on ``port``."""

    process: asyncio.subprocess.Process
    port: int

    def url(self, charger_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charger_id}"

    async def kill(self) -> None:
        """SIGKILL: none of the node's shutdown code runs."""
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


@asynccontextmanager
async def listening(
    process: asyncio.subprocess.Process, node_id: str, stop: Callable[[asyncio.subprocess.Process], None]
) -> AsyncIterator[NodeProcess]:
    """The node ``process`` once it wrote its port on stdout; ``stop`` ends it afterwards if it still runs."""
    assert process.stdout is not None
    try:
        line = await process.stdout.readline()
        assert line, f"node {node_id} exited before listening"
        yield NodeProcess(process, int(line))
    finally:
        if process.returncode is None:
            stop(process)
            await process.wait()
