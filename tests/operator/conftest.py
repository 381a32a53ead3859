"""Fixtures for the operator API tests: the CSMS app planning the example network's stations, with
the driver, operator and demand-response APIs and /metrics, on a free port over a throw-away
database; operator keys of two CPOs; the ``fairwatt`` CLI pointed at it."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web

from csms.server import CSMS, CsmsRuntime, create_app
from demand_response import api as demand_response_api
from demand_response.app import install as install_demand_response
from fairwatt.cli import main
from fairwatt.commands.stations import station_setup
from fairwatt.config.network import load_network
from fairwatt.operator import OperatorSettings, install_observability, operator_api
from fairwatt.operator.keys import mint_key
from sessions.app import SESSIONS, SessionsRuntime, SessionsSettings, install
from tests.csms.conftest import database_dsn, fail_on_error_logs, make_settings

__all__ = ["database_dsn", "fail_on_error_logs"]

TOKEN_SECRET = "operator-test-secret-of-at-least-32-bytes"
CHARGER_PASSWORD = "charger-password-1"
ENVIRON = {"DEPOT_1_PASSWORD": CHARGER_PASSWORD}
EXAMPLE = Path(__file__).parents[2] / "examples" / "network.yaml"


@dataclass
class RunningOperatorApi:
    csms: CsmsRuntime
    sessions: SessionsRuntime
    port: int
    http: aiohttp.ClientSession
    app: web.Application
    acme_key: str
    other_key: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def charger_url(self, charger_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charger_id}"

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.acme_key}"}

    async def call(
        self, method: str, path: str, *, key: str | None = None, json: object = None
    ) -> tuple[int, Any]:
        async with self.http.request(
            method, self.base_url + path, headers=self.headers(key), json=json
        ) as response:
            return response.status, await response.json(content_type=None)


def network_files(text: str | None = None) -> dict[str, object]:
    """The request body of diff/apply for ``text`` (default: the example network)."""
    return {"files": {"network.yaml": text if text is not None else EXAMPLE.read_text(encoding="utf-8")}}


@pytest_asyncio.fixture
async def operator(database_dsn: str) -> AsyncIterator[RunningOperatorApi]:
    """The real CSMS + driver and operator APIs on 127.0.0.1 and a free port."""
    network = load_network(EXAMPLE)  # its stations are planned by the smart-charging loop
    now = datetime.now(UTC)
    setups = [station_setup(s.station, now) for s in network.stations]
    app = create_app(make_settings(database_dsn), stations=setups)
    install_demand_response(app, network.demand_response, stations=setups, start_vens=False)
    runtime = install(
        app,
        SessionsSettings(token_secret=TOKEN_SECRET),
        extra_api=[operator_api(OperatorSettings(environ=ENVIRON)), demand_response_api.register],
    )
    install_observability(app)
    _, acme_key = mint_key(runtime.issuer, "acme", "alice")
    _, other_key = mint_key(runtime.issuer, "other", "bob")
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    try:
        async with aiohttp.ClientSession() as http:
            yield RunningOperatorApi(app[CSMS], app[SESSIONS], port, http, app, acme_key, other_key)
    finally:
        await runner.cleanup()  # first: the app's background work must not hold locks TRUNCATE needs
        connection = await asyncpg.connect(database_dsn)
        try:
            await connection.execute(
                """TRUNCATE network_resources, operator_audit_log, operator_key_revocations, stations,
                   tariffs, tariff_assignments, chargers, connectors, transactions, transaction_events,
                   ocpp_messages, charging_sessions, session_events, device_model_variables,
                   device_model_reports, device_events CASCADE"""
            )
        finally:
            await connection.close()


class Cli:
    """Runs ``fairwatt`` in a worker thread (its HTTP client blocks) and returns its output."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    async def json(self, *argv: str) -> Any:
        code, out, err = await self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(
    operator: RunningOperatorApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    monkeypatch.setenv("FAIRWATT_SERVER", operator.base_url)
    monkeypatch.setenv("FAIRWATT_API_KEY", operator.acme_key)
    return Cli(capsys)


async def next_received(charger: Any, action: str) -> dict[str, Any]:
    while True:
        got, request = await asyncio.wait_for(charger.received.get(), timeout=5)
        if got == action:
            return dict(request)
