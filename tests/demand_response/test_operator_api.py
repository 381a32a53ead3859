"""The operator API's manual peak events and the ``fairwatt dr`` commands against the served app."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from csms.server import CSMS, create_app
from csms.smart_charging import SMART_CHARGING, SmartChargingLoop, SmartChargingSettings
from demand_response import api as dr_api
from demand_response.app import install as install_dr
from fairwatt.cli import main
from sessions.app import SessionsSettings
from sessions.app import install as install_sessions
from sessions.auth import Role, TokenIssuer
from tests.csms.conftest import make_settings
from tests.demand_response.site import GRID_KW, setup_of

pytestmark = pytest.mark.asyncio
SECRET = "test-secret-of-at-least-thirty-two-bytes"


@dataclass
class Served:
    base_url: str
    http: aiohttp.ClientSession
    loop: SmartChargingLoop
    station_id: str
    other_station: str
    issuer: TokenIssuer

    cpo_id: str

    def headers(self, cpo_id: str | None = None, role: Role = Role.OPERATOR) -> dict[str, str]:
        token = self.issuer.mint("op-1", role, cpo_id=cpo_id or self.cpo_id)
        return {"Authorization": f"Bearer {token}"}

    @property
    def other_cpo(self) -> str:
        return self.cpo_id.removesuffix("-A") + "-B"

    def dr_caps(self) -> list[Any]:
        return [c for c in self.loop.state(self.station_id).site.caps if c.source.startswith("dr:")]


@pytest_asyncio.fixture
async def served(database_dsn: str) -> AsyncIterator[Served]:
    prefix = f"OP{uuid.uuid4().hex[:6]}"
    mine, theirs = setup_of(prefix), setup_of(prefix + "x")
    app = create_app(
        make_settings(database_dsn, auto_register=True),
        stations=[mine, theirs],
        smart_charging=SmartChargingSettings(quiet_s=0.01, max_delay_s=0.05),
    )
    install_dr(app, [], stations=[mine, theirs])
    sessions = install_sessions(app, SessionsSettings(token_secret=SECRET), extra_api=[dr_api.register])
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    pool = app[CSMS].database.pool
    await pool.execute(
        "INSERT INTO stations (station_id, cpo_id) VALUES ($1, $3), ($2, $4)",
        mine.station_id,
        theirs.station_id,
        f"{prefix}-A",
        f"{prefix}-B",
    )
    try:
        async with aiohttp.ClientSession() as http:
            yield Served(
                f"http://127.0.0.1:{port}",
                http,
                app[SMART_CHARGING],
                mine.station_id,
                theirs.station_id,
                sessions.issuer,
                f"{prefix}-A",
            )
    finally:
        await runner.cleanup()


async def call(served: Served, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    headers = kwargs.pop("headers", None) or served.headers()
    async with served.http.request(method, served.base_url + path, headers=headers, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def test_an_operator_declares_lists_and_cancels_a_peak_event(served: Served) -> None:
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    body = {
        "stations": [served.station_id],
        "cut_percent": 20,
        "start": start.isoformat(),
        "duration_s": 7200,
    }
    status, event = await call(served, "POST", dr_api.PATH, json=body)
    assert status == 201, event
    assert (event["program"], event["manual"], event["cut_percent"], event["status"]) == (
        "manual",
        True,
        20.0,
        "far",
    )
    caps = served.dr_caps()
    assert [(c.start, c.end, c.limit_kw) for c in caps] == [
        (start, start + timedelta(hours=2), pytest.approx(0.8 * GRID_KW))
    ]

    status, listed = await call(served, "GET", dr_api.PATH)
    assert status == 200
    assert [e["event_id"] for e in listed["events"]] == [event["event_id"]]
    status, theirs = await call(served, "GET", dr_api.PATH, headers=served.headers(served.other_cpo))
    assert theirs == {"events": []}  # another CPO does not see it
    status, problem = await call(
        served, "DELETE", f"{dr_api.PATH}/{event['event_id']}", headers=served.headers(served.other_cpo)
    )
    assert status == 404

    status, cancelled = await call(served, "DELETE", f"{dr_api.PATH}/{event['event_id']}")
    assert (status, cancelled["status"]) == (200, "cancelled")
    assert served.dr_caps() == []
    status, problem = await call(served, "DELETE", f"{dr_api.PATH}/{event['event_id']}")
    assert status == 409
    assert "already cancelled" in problem["detail"]


@pytest.mark.parametrize(
    ("change", "status", "detail"),
    [
        ({"cut_percent": 0}, 400, "'cut_percent'"),
        ({"cut_percent": "20%"}, 400, "'cut_percent'"),
        ({"start": "2026-07-01T17:00:00"}, 400, "UTC offset"),
        ({"start": "tomorrow"}, 400, "ISO 8601"),
        ({"duration_s": -5}, 400, "'duration_s'"),
        ({"stations": []}, 400, "'stations'"),
        ({"stations": ["nowhere"]}, 404, "no station 'nowhere' of yours"),
    ],
)
async def test_bad_declarations_are_problems_with_a_plain_detail(
    served: Served, change: dict[str, Any], status: int, detail: str
) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)
    body = {"stations": [served.station_id], "cut_percent": 20, "start": start.isoformat(), "duration_s": 60}
    answer, problem = await call(served, "POST", dr_api.PATH, json={**body, **change})
    assert answer == status
    assert detail in problem["detail"]
    assert served.dr_caps() == []


async def test_only_operators_of_the_station_may_declare(served: Served) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)
    body = {
        "stations": [served.other_station],
        "cut_percent": 20,
        "start": start.isoformat(),
        "duration_s": 60,
    }
    status, _ = await call(served, "POST", dr_api.PATH, json=body)
    assert status == 404
    status, _ = await call(served, "POST", dr_api.PATH, json=body, headers=served.headers(role=Role.DRIVER))
    assert status == 403
    status, document = await call(served, "GET", "/v1/openapi.json")
    assert set(document["paths"][dr_api.PATH]) == {"get", "post"}
    assert "delete" in document["paths"][dr_api.PATH + "/{event_id}"]


async def test_the_cli_declares_lists_and_cancels(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = served.headers()["Authorization"].removeprefix("Bearer ")
    monkeypatch.setenv("FAIRWATT_API_KEY", token)
    server = ["--server", served.base_url, "--time-zone", "Europe/Paris"]
    declare = ["dr", "declare", "--stations", served.station_id, "--cut", "25%", "--start", "17:00"]
    assert await asyncio.to_thread(main, [*declare, "--duration", "2h", *server, "--json"]) == 0
    event = json.loads(capsys.readouterr().out)
    start = datetime.fromisoformat(event["start"])
    paris = start.astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (17, 0)
    assert start > datetime.now(UTC)
    assert datetime.fromisoformat(event["end"]) - start == timedelta(hours=2)
    assert [c.limit_kw for c in served.dr_caps()] == [pytest.approx(0.75 * GRID_KW)]

    assert await asyncio.to_thread(main, ["dr", "list", *server]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["EVENT_ID", "PROGRAM", "STATIONS", "CUT"]
    assert table[1].split()[:4] == [event["event_id"], "manual", served.station_id, "25%"]
    assert "17:00:00" in table[1]

    assert await asyncio.to_thread(main, ["dr", "cancel", event["event_id"], *server]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert served.dr_caps() == []

    assert await asyncio.to_thread(main, ["dr", "cancel", event["event_id"], *server]) == 1
    assert "already cancelled" in capsys.readouterr().err
    assert await asyncio.to_thread(main, [*declare, "--duration", "soon", *server]) != 0
    assert "--duration soon" in capsys.readouterr().err
