"""End to end: drivers' tiers and needs shape the profiles their chargers get.

The real server runs the smart-charging loop on a station of two EVSEs behind a 16 A feeder (one
``ocpp`` 1.6 charger each) and the driver API, over PostgreSQL. Two drivers, of tiers weighted 1
and 3 by the station's policy, start app sessions asking 40 kWh each, more than the feeder gives
both in the 4 hours they are planned to stay: the profiles the chargers hold give the higher tier
the larger share, three times the energy over the stay. Then the lower-tier driver says (PATCH) the
car leaves in an hour: the plan gives it the feeder now, and the other car waits.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16

from csms.server import CSMS, create_app
from csms.smart_charging import (
    SMART_CHARGING,
    EvseBinding,
    SmartChargingLoop,
    SmartChargingSettings,
    StationSetup,
)
from csms.smart_charging.drivers import SessionPolicy
from optimizer.types import Connection, Evse, FeederNode, Policy, Schedule, Site
from sessions.app import SESSIONS, SessionsSettings, install
from sessions.events import SessionState
from tests.cli.test_serve_stations import ProfiledCharger, wait_for
from tests.csms.chargers import connected
from tests.csms.conftest import make_settings
from tests.sessions.conftest import TOKEN_SECRET, RunningApi
from tests.sessions.helpers import event_log, register_charger, seed_driver

pytestmark = pytest.mark.asyncio

FEEDER_A = 16.0
KW_PER_A = 3 * 230.0 / 1000.0
EVSES = (
    Evse("A", Connection.THREE_PHASE, 230.0, 16.0, 6.0),
    Evse("B", Connection.THREE_PHASE, 230.0, 16.0, 6.0),
)
TIERS = SessionPolicy((("basic", 1.0), ("gold", 3.0)))


class AppCharger(ProfiledCharger):
    """A 1.6 charger that accepts remote starts (their idTags queue up) and keeps its profiles."""

    def __init__(self, charger_id: str, connection: Any) -> None:
        super().__init__(charger_id, connection)
        self.remote_starts: asyncio.Queue[str] = asyncio.Queue()

    @on(Action16.remote_start_transaction)
    async def on_remote_start(self, id_tag: str, **_: Any) -> Any:
        await self.remote_starts.put(id_tag)
        return result16.RemoteStartTransaction(status="Accepted")

    def planned_kwh(self, start: datetime, end: datetime) -> float:
        """The energy the held Tx profile allows between ``start`` and ``end`` [kWh]."""
        assert self.tx is not None
        schedule = self.tx["charging_schedule"]
        assert schedule["charging_rate_unit"] == "A"
        begins = datetime.fromisoformat(schedule["start_schedule"].replace("Z", "+00:00"))
        periods = schedule["charging_schedule_period"]
        total_kwh = 0.0
        for i, period in enumerate(periods):
            frm = begins + timedelta(seconds=period["start_period"])
            until = begins + timedelta(
                seconds=periods[i + 1]["start_period"] if i + 1 < len(periods) else schedule["duration"]
            )
            hours = (min(until, end) - max(frm, start)).total_seconds() / 3600.0
            total_kwh += max(hours, 0.0) * float(period["limit"]) * KW_PER_A
        return total_kwh


def plan_kwh(schedule: Schedule, evse_id: str, start: datetime, end: datetime) -> float:
    """The energy the loop's latest schedule plans on ``evse_id`` between ``start`` and ``end`` [kWh].

    The plan, not the profile a charger holds: a charger gets a new profile only when its first
    periods change, so the later periods it holds may be those of an earlier plan."""
    total_kwh = 0.0
    for t, current_a in enumerate(schedule.row(evse_id)):
        frm, until = schedule.period_start(t), schedule.period_start(t + 1)
        hours = (min(until, end) - max(frm, start)).total_seconds() / 3600.0
        total_kwh += max(hours, 0.0) * float(current_a) * KW_PER_A
    return total_kwh


@dataclass
class Station:
    api: RunningApi
    loop: SmartChargingLoop
    station_id: str
    prefix: str

    async def settle(self) -> None:
        """Wait until the loop has acted on everything (the timeout only guards against a hang)."""
        async with asyncio.timeout(120):
            await self.loop.wait_idle()


@pytest_asyncio.fixture
async def station(database_dsn: str) -> AsyncIterator[Station]:
    prefix = f"ND{uuid.uuid4().hex[:6]}"
    setup = StationSetup(
        station_id=f"{prefix}-station",
        site=Site(grid_limit_kw=22.0, root=FeederNode("feeder", limit_a=FEEDER_A, evse_ids=("A", "B"))),
        evses=tuple(EvseBinding(e, f"{prefix}-{e.evse_id}") for e in EVSES),
        policy=Policy(period_s=300, horizon_periods=72, deadline_s=10.0),
        session_policy=TIERS,
    )
    smart = SmartChargingSettings(quiet_s=0.01, max_delay_s=0.05, retry_backoff_s=0.01, apply_grace_s=0.0)
    app = create_app(make_settings(database_dsn), stations=[setup], smart_charging=smart)
    install(app, SessionsSettings(token_secret=TOKEN_SECRET))
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    try:
        async with aiohttp.ClientSession() as http:
            api = RunningApi(app[CSMS], app[SESSIONS], port, http, app)
            yield Station(api, app[SMART_CHARGING], setup.station_id, prefix)
    finally:
        await runner.cleanup()


async def start_session(station: Station, charger: AppCharger, driver: str, body: dict[str, Any]) -> str:
    """POST the session, let the charger start the transaction it is asked to; the session id."""
    api = station.api
    headers = api.headers(driver, **{"Idempotency-Key": f"{driver}-1"})
    async with api.http.post(f"{api.base_url}/v1/sessions", json=body, headers=headers) as response:
        assert response.status == 201, await response.text()
        session_id: str = (await response.json())["session_id"]
    id_tag = await asyncio.wait_for(charger.remote_starts.get(), 10)
    started = await charger.call(
        call16.StartTransaction(
            connector_id=1, id_tag=id_tag, meter_start=0, timestamp=datetime.now(UTC).isoformat()
        ),
        suppress=False,
    )
    charger.transaction_id = str(started.transaction_id)
    return session_id


async def test_the_higher_tier_gets_the_larger_share_and_a_patched_departure_replans(
    station: Station,
) -> None:
    api, prefix = station.api, station.prefix
    log = event_log(api)
    drivers = {"A": f"{prefix}-basic", "B": f"{prefix}-gold"}
    for evse_id, tier in (("A", "basic"), ("B", "gold")):
        await seed_driver(api, drivers[evse_id])
        await api.csms.database.pool.execute(
            "UPDATE drivers SET tier = $2 WHERE driver_id = $1", drivers[evse_id], tier
        )
        await register_charger(api, f"{prefix}-{evse_id}")
    async with AsyncExitStack() as stack:
        chargers: dict[str, AppCharger] = {}
        for evse_id in ("A", "B"):
            charger_id = f"{prefix}-{evse_id}"
            charger = await stack.enter_async_context(
                connected(AppCharger, api.charger_url(charger_id), charger_id, "ocpp1.6")
            )
            boot = await charger.call(
                call16.BootNotification(charge_point_vendor="V", charge_point_model="M"), suppress=False
            )
            assert boot.status == "Accepted"
            await wait_for(charger, lambda c=charger: c.tx_default is not None)
            chargers[evse_id] = charger

        session_ids = {}
        for evse_id, charger in chargers.items():
            driver = drivers[evse_id]
            body = {
                "charger_id": charger.id,
                "connector_id": 1,
                "payment_method_id": f"PM-{driver}",
                "energy_needed_kwh": 40,
            }
            session_ids[evse_id] = await start_session(station, charger, driver, body)
        for session_id in session_ids.values():
            await log.wait_state(session_id, SessionState.ACTIVE)
        await station.settle()

        state = station.loop.state(station.station_id)
        for evse_id, priority in (("A", 1.0), ("B", 3.0)):
            session = state.evses[evse_id].session
            assert session is not None
            assert (session.transaction_id, session.driver_energy_kwh, session.priority) == (
                chargers[evse_id].transaction_id,
                40.0,
                priority,
            )
        basic, gold = chargers["A"], chargers["B"]
        assert basic.holds_tx()
        assert gold.holds_tx()
        now = datetime.now(UTC)
        stay_end = now + Policy().default_stay  # no departure given: the solver's default stay
        plan = station.loop.schedule(station.station_id)
        assert plan is not None
        basic_kwh, gold_kwh = plan_kwh(plan, "A", now, stay_end), plan_kwh(plan, "B", now, stay_end)
        # 16 A for 4 h is about 44 kWh for 80 asked. Max-min fairness weighted 1:3 plans about 11 and
        # 30 kWh (of 1:1, or of the default 20 kWh each, it would plan them alike)
        assert gold_kwh > 2 * basic_kwh > 15.0, (basic_kwh, gold_kwh)
        assert basic.tx_limit_a(now) + gold.tx_limit_a(now) <= FEEDER_A

        # The basic driver leaves in an hour: what it can still get, it gets in that hour; the
        # gold car, staying longer, takes the feeder after.
        leaves = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
        async with api.http.patch(
            f"{api.base_url}/v1/sessions/{session_ids['A']}",
            json={"departure_at": leaves.isoformat()},
            headers=api.headers(drivers["A"]),
        ) as response:
            assert response.status == 200, await response.text()
        await station.settle()
        session = state.evses["A"].session
        assert session is not None
        assert session.driver_departure == leaves
        now = datetime.now(UTC)
        assert (basic.tx_limit_a(now), gold.tx_limit_a(now)) == (FEEDER_A, 0.0)
        plan = station.loop.schedule(station.station_id)
        assert plan is not None
        assert plan_kwh(plan, "A", now, leaves) == pytest.approx(FEEDER_A * KW_PER_A, rel=0.05)  # an hour
        assert plan_kwh(plan, "A", leaves, stay_end) == 0.0
        assert plan_kwh(plan, "B", leaves, stay_end) > 2 * plan_kwh(plan, "A", now, leaves)
        # what the chargers hold now agrees: their first periods changed, so both got new profiles
        assert basic.planned_kwh(now, leaves) == pytest.approx(FEEDER_A * KW_PER_A, rel=0.05)
