"""Contract test: schemathesis generates requests from the served OpenAPI document for the session
operations and checks every answer against it (no 500, declared statuses, content types and
schemas), against the real server (in a thread of its own) and PostgreSQL.

A departure must lie within the next 7 days, which a schema cannot say: a generated one is moved
there (every other generated value is kept), so a valid request is still one the API accepts."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from csms.server import create_app
from csms.storage.chargers import ChargerRecord, ConnectorSpec
from sessions.app import SESSIONS, SessionsSettings, install
from sessions.auth import Role
from tests.csms.conftest import make_settings
from tests.sessions.conftest import TOKEN_SECRET


@dataclass
class ServedApi:
    base_url: str
    token: str


@pytest.fixture(scope="module")
def served_api(database_dsn: str) -> Iterator[ServedApi]:
    """The app on a free port, served by an event loop in a thread (schemathesis calls are blocking)."""
    loop = asyncio.new_event_loop()
    app = create_app(make_settings(database_dsn))
    install(app, SessionsSettings(token_secret=TOKEN_SECRET, session_create_per_minute=1000))
    runner = web.AppRunner(app)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    async def up() -> None:
        await runner.setup()
        await web.SockSite(runner, listener).start()
        pool = app[SESSIONS].csms.database.pool
        await pool.execute("INSERT INTO drivers (driver_id) VALUES ('contract') ON CONFLICT DO NOTHING")
        await pool.execute(
            """INSERT INTO payment_methods (payment_method_id, driver_id, provider_token)
               VALUES ('PM-contract', 'contract', 'tok') ON CONFLICT DO NOTHING"""
        )
        await app[SESSIONS].csms.chargers.save(
            ChargerRecord("CP-CONTRACT", connectors=(ConnectorSpec(1, 1, "Type2", 22.0),))
        )

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(up(), loop).result(30)
    token = app[SESSIONS].issuer.mint("contract", Role.DRIVER, ttl_s=3600)
    try:
        yield ServedApi(f"http://127.0.0.1:{port}", token)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def departing_soon(case: Any) -> Any:
    if isinstance(case.body, dict) and isinstance(case.body.get("departure_at"), str):
        case.body["departure_at"] = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    return case


def test_session_operations_keep_their_contract(served_api: ServedApi) -> None:
    schema = schemathesis.openapi.from_url(f"{served_api.base_url}/v1/openapi.json")
    # the live stream of an existing session never ends on its own: its contract is the e2e tests'
    operations = schema.include(path_regex=r"^/v1/sessions").exclude(path_regex=r"/live$")
    headers = {"Authorization": f"Bearer {served_api.token}"}
    checked = []
    for result in operations.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()

        @given(case=operation.as_strategy().map(departing_soon))
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def keeps_contract(case: Any) -> None:
            case.call_and_validate(headers=headers)

        keeps_contract()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert sorted(checked) == [
        "DELETE /v1/sessions/{session_id}",
        "GET /v1/sessions",
        "GET /v1/sessions/{session_id}",
        "GET /v1/sessions/{session_id}/receipt",
        "PATCH /v1/sessions/{session_id}",
        "POST /v1/sessions",
        "POST /v1/sessions/{session_id}/token",
    ]
