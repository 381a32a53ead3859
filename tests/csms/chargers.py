"""Simulated chargers for end-to-end tests, built on the ``ocpp`` package over aiohttp."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201


def basic_auth(login: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP Basic authentication."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


class ChargerDisconnectedError(Exception):
    """The CSMS closed the WebSocket."""


class ClientConnection:
    """An aiohttp client WebSocket with the recv()/send() the ``ocpp`` ChargePoint expects."""

    def __init__(self, websocket: aiohttp.ClientWebSocketResponse) -> None:
        self.websocket = websocket

    async def recv(self) -> str:
        message = await self.websocket.receive()
        if message.type is aiohttp.WSMsgType.TEXT:
            text: str = message.data
            return text
        raise ChargerDisconnectedError(str(message.type))

    async def send(self, frame: str) -> None:
        await self.websocket.send_str(frame)


class Charger16(ChargePoint16):  # type: ignore[misc]
    """A 1.6 charger that accepts remote commands and records them in ``received``."""

    def __init__(self, charger_id: str, connection: ClientConnection) -> None:
        super().__init__(charger_id, connection, response_timeout=5)
        self.received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    @on(Action16.remote_start_transaction)
    async def on_remote_start(self, **request: Any) -> Any:
        await self.received.put(("RemoteStartTransaction", request))
        return result16.RemoteStartTransaction(status="Accepted")

    @on(Action16.remote_stop_transaction)
    async def on_remote_stop(self, **request: Any) -> Any:
        await self.received.put(("RemoteStopTransaction", request))
        return result16.RemoteStopTransaction(status="Accepted")

    @on(Action16.set_charging_profile)
    async def on_set_charging_profile(self, **request: Any) -> Any:
        await self.received.put(("SetChargingProfile", request))
        return result16.SetChargingProfile(status="Accepted")

    @on(Action16.reset)
    async def on_reset(self, **request: Any) -> Any:
        await self.received.put(("Reset", request))
        return result16.Reset(status="Rejected")


class SlowCharger16(Charger16):
    """Says when an UnlockConnector arrives and answers it only once ``release`` is set."""

    def __init__(self, charger_id: str, connection: ClientConnection) -> None:
        super().__init__(charger_id, connection)
        self.unlock_arrived = asyncio.Event()
        self.release = asyncio.Event()

    @on(Action16.unlock_connector)
    async def on_unlock(self, **request: Any) -> Any:
        self.unlock_arrived.set()
        await self.release.wait()
        return result16.UnlockConnector(status="Unlocked")


class Charger201(ChargePoint201):  # type: ignore[misc]
    """A 2.0.1 charging station that accepts remote commands and records them in ``received``."""

    def __init__(self, charger_id: str, connection: ClientConnection) -> None:
        super().__init__(charger_id, connection, response_timeout=5)
        self.received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    @on(Action201.request_start_transaction)
    async def on_request_start(self, **request: Any) -> Any:
        await self.received.put(("RequestStartTransaction", request))
        return result201.RequestStartTransaction(status="Accepted")

    @on(Action201.request_stop_transaction)
    async def on_request_stop(self, **request: Any) -> Any:
        await self.received.put(("RequestStopTransaction", request))
        return result201.RequestStopTransaction(status="Accepted")

    @on(Action201.set_charging_profile)
    async def on_set_charging_profile(self, **request: Any) -> Any:
        await self.received.put(("SetChargingProfile", request))
        return result201.SetChargingProfile(status="Accepted")


@asynccontextmanager
async def connected(
    charger_class: type[Any],
    url: str,
    charger_id: str,
    subprotocol: str,
    *,
    password: str | None = None,
) -> AsyncIterator[Any]:
    """A charger of ``charger_class`` connected to ``url`` and serving CSMS requests."""
    headers = {"Authorization": basic_auth(charger_id, password)} if password is not None else {}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, protocols=(subprotocol,), headers=headers) as websocket,
    ):
        charger = charger_class(charger_id, ClientConnection(websocket))
        charger.websocket = websocket
        serving = asyncio.create_task(charger.start())
        try:
            yield charger
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
