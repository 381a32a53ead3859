"""The connection interface the protocol layer talks to (the server adapts WebSockets to it)."""

from __future__ import annotations

from typing import Protocol


class Connection(Protocol):
    """A text-frame duplex channel to one charger.

    ``recv()`` returns the next text frame and raises
    :class:`csms.errors.ConnectionClosedError` once the channel is closed; ``send()`` raises the
    same error when the frame cannot be delivered.
    """

    async def recv(self) -> str: ...

    async def send(self, frame: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


# WebSocket close codes (RFC 6455 §7.4.1) the protocol layer uses.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
