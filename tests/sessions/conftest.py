"""Fixtures for the driver API tests: the CSMS app with the sessions API installed, on a free port,
over a throw-away PostgreSQL database; an HTTP client; tokens."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from csms.server import CSMS, CsmsRuntime, create_app
from sessions.app import SESSIONS, SessionsRuntime, SessionsSettings, install
from sessions.auth import Role
from tests.csms.conftest import database_dsn, fail_on_error_logs, make_settings

__all__ = ["database_dsn", "fail_on_error_logs"]

TOKEN_SECRET = "test-secret-of-at-least-thirty-two-bytes"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sessions_settings(**overrides): SessionsSettings fields")


@dataclass
class RunningApi:
    csms: CsmsRuntime
    sessions: SessionsRuntime
    port: int
    http: aiohttp.ClientSession
    app: web.Application

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def charger_url(self, charger_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charger_id}"

    def driver_token(self, driver_id: str) -> str:
        return self.sessions.issuer.mint(driver_id, Role.DRIVER)

    def headers(self, driver_id: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.driver_token(driver_id)}", **extra}


@pytest_asyncio.fixture
async def api(database_dsn: str, request: pytest.FixtureRequest) -> AsyncIterator[RunningApi]:
    """The real CSMS + driver API app on 127.0.0.1 and a free port."""
    csms_marker = request.node.get_closest_marker("csms_settings")
    sessions_marker = request.node.get_closest_marker("sessions_settings")
    app = create_app(make_settings(database_dsn, **(dict(csms_marker.kwargs) if csms_marker else {})))
    install(
        app,
        SessionsSettings(
            token_secret=TOKEN_SECRET, **(dict(sessions_marker.kwargs) if sessions_marker else {})
        ),
    )
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    try:
        async with aiohttp.ClientSession() as http:
            yield RunningApi(app[CSMS], app[SESSIONS], port, http, app)
    finally:
        await runner.cleanup()
