"""An in-memory connection for protocol-layer tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from csms.errors import ConnectionClosedError


class MemoryConnection:
    """Frames pushed by the test are received by the session; frames the session sends are queued."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[str | None] = asyncio.Queue()
        self.outgoing: asyncio.Queue[str] = asyncio.Queue()
        self.closed_with: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def recv(self) -> str:
        frame = await self.incoming.get()
        if frame is None:
            raise ConnectionClosedError("closed")
        return frame

    async def send(self, frame: str) -> None:
        if self.closed_with.done():
            raise ConnectionClosedError("closed")
        await self.outgoing.put(frame)

    async def close(self, code: int, reason: str) -> None:
        if not self.closed_with.done():
            self.closed_with.set_result((code, reason))
        await self.incoming.put(None)

    async def exchange(self, frame: str) -> list[Any]:
        await self.incoming.put(frame)
        answer: list[Any] = json.loads(await self.outgoing.get())
        return answer
