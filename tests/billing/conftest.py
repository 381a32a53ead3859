"""Fixtures for the billing tests: a fresh migrated database per test (cloned from a template),
the local test gateway as a real process on a free port, and the error-log guard for billing."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from csms.storage.database import CSMS_MIGRATIONS, Database
from tests.csms.conftest import ADMIN_DSN, fail_on_error_logs

__all__ = ["fail_on_error_logs"]

ALL_MIGRATIONS = [CSMS_MIGRATIONS, "sessions.migrations", "billing.migrations"]


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


_TABLES = (
    "billing_redeemed_codes, billing_promotions, "
    "billing_notifications, billing_ledger, billing_payments, billing_holds, billing_line_items, "
    "billing_documents, billing_rating_queue, billing_ratings, session_events, charging_sessions, "
    "meter_samples, payment_methods, driver_tokens, drivers, tariff_assignments, tariffs, chargers, stations"
)


@pytest.fixture(scope="session")
def billing_dsn() -> Iterator[str]:
    """One migrated database for the billing tests, emptied before each test."""
    name = f"fairwatt_billing_test_{uuid.uuid4().hex[:10]}"
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))

    async def migrate() -> None:
        database = Database(dsn)
        for package in ALL_MIGRATIONS[1:]:
            database.add_migrations(package)
        await database.open()
        await database.close()

    try:
        asyncio.run(migrate())
        yield dsn
    finally:
        asyncio.run(_admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
def database_dsn(billing_dsn: str) -> str:
    """The billing database, empty (billing's workers see only this test's rows)."""

    async def empty() -> None:
        connection = await asyncpg.connect(billing_dsn)
        try:
            await connection.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
        finally:
            await connection.close()

    asyncio.run(empty())
    return billing_dsn


@pytest_asyncio.fixture
async def database(database_dsn: str) -> AsyncIterator[Database]:
    db = Database(database_dsn, max_connections=5)
    for package in ALL_MIGRATIONS[1:]:
        db.add_migrations(package)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture(autouse=True)
def fail_on_billing_errors(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Also fail a test whose billing or sessions log shows an ERROR it did not ask for."""
    yield
    if request.node.get_closest_marker("allow_error_logs"):
        return
    errors = [
        r
        for r in caplog.get_records("call")
        if r.levelno >= logging.ERROR and r.name.split(".")[0] in {"billing", "sessions"}
    ]
    if errors:
        pytest.fail("unexpected error log: " + "; ".join(f"{r.name}: {r.getMessage()}" for r in errors))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class GatewayProcess:
    """``python -m billing.test_gateway`` on a free port, with its control endpoints."""

    def __init__(self, state_path: Path) -> None:
        self.port = free_port()
        self.state_path = state_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "billing.test_gateway",
                "--port",
                str(self.port),
                "--state",
                str(self.state_path),
            ]
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the test gateway did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    async def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.url + path, json=body) as response,
        ):
            assert response.status < 300, await response.text()
            return await response.json()

    async def fault(self, operation: str, fault: str, *, count: int = 1, delay_s: float = 5.0) -> None:
        await self.control(
            "POST",
            "/_control/faults",
            {"operation": operation, "fault": fault, "count": count, "delay_s": delay_s},
        )

    async def state(self) -> dict[str, Any]:
        state: dict[str, Any] = await self.control("GET", "/_control/state")
        return state

    async def movements_by_session(self) -> dict[str, list[dict[str, Any]]]:
        """Money movements (captures and automatic charges) grouped by our session id."""
        found: dict[str, list[dict[str, Any]]] = {}
        for movement in (await self.state())["movements"]:
            found.setdefault(movement["metadata"].get("session_id", "?"), []).append(movement)
        return found


@pytest.fixture(scope="session")
def gateway_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path_factory.mktemp("gateway") / "state.json")
    process.start()
    try:
        yield process
    finally:
        process.kill()


@pytest_asyncio.fixture
async def gateway(gateway_process: GatewayProcess) -> GatewayProcess:
    """The test gateway process, running and with nothing remembered."""
    if gateway_process.process is None or gateway_process.process.poll() is not None:
        gateway_process.start()
    await gateway_process.control("POST", "/_control/reset")
    return gateway_process
