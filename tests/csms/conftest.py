"""Fixtures for the CSMS tests: a throw-away PostgreSQL database per session, the real server on a
free port, and a guard that fails any test whose log shows an unexpected error."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from redis.asyncio import Redis

from csms.redis_state import RedisKeys
from csms.server import CSMS, CsmsRuntime, create_app
from csms.settings import CsmsSettings
from tests.csms.nodes import REDIS_URL
from tests.csms.protocol_stations import ServiceCsms, service_csms

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_error_logs: the test expects ERROR log records")
    config.addinivalue_line("markers", "csms_settings(**overrides): CsmsSettings fields for the csms fixture")


@pytest.fixture(scope="session")
def database_dsn() -> Iterator[str]:
    """A uniquely named database for this test session, dropped afterwards."""
    name = f"fairwatt_csms_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(ADMIN_DSN)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


SERVER_LOGGERS = frozenset(
    {"csms", "sessions", "billing", "demand_response", "fairwatt", "optimizer", "tariffs"}
    | {"aiohttp", "asyncio"}
)


@pytest.fixture(autouse=True)
def fail_on_error_logs(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test whose server log shows an ERROR it did not ask for (a swallowed exception)."""
    caplog.set_level(logging.INFO)
    yield
    if request.node.get_closest_marker("allow_error_logs"):
        return
    # Only the server side counts: the simulated chargers' ``ocpp`` logger reports their own errors.
    errors = [
        r
        for r in caplog.get_records("call")
        if r.levelno >= logging.ERROR and r.name.split(".")[0] in SERVER_LOGGERS
    ]
    if errors:
        pytest.fail("unexpected error log: " + "; ".join(f"{r.name}: {r.getMessage()}" for r in errors))


@dataclass
class RunningCsms:
    runtime: CsmsRuntime
    port: int

    def url(self, charger_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charger_id}"


def make_settings(database_dsn: str, **overrides: object) -> CsmsSettings:
    return CsmsSettings(database_dsn=database_dsn, response_timeout_s=5.0, **overrides)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def csms(database_dsn: str, request: pytest.FixtureRequest) -> AsyncIterator[RunningCsms]:
    """The real CSMS app on 127.0.0.1 and a free port (settings overridable with ``csms_settings``)."""
    marker = request.node.get_closest_marker("csms_settings")
    overrides = dict(marker.kwargs) if marker else {}
    app = create_app(make_settings(database_dsn, **overrides))
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    site = web.SockSite(runner, listener)
    await site.start()
    try:
        yield RunningCsms(app[CSMS], port)
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def service(database_dsn: str) -> AsyncIterator[ServiceCsms]:
    """The charging service on the real PostgreSQL, without a server (``protocol_stations``)."""
    async with service_csms(database_dsn) as opened:
        yield opened


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[Redis]:
    """A client of the real Redis (``REDIS_URL``)."""
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def keys(redis: Redis) -> AsyncIterator[RedisKeys]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefixed = RedisKeys(f"fairwatt-test:{uuid.uuid4().hex}:")
    try:
        yield prefixed
    finally:
        stale = [key async for key in redis.scan_iter(match=prefixed.prefix + "*")]
        if stale:
            await redis.delete(*stale)
