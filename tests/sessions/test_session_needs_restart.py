"""A single node restarts while an app session charges: its driver's needs reach the new planner.

The real server (smart-charging loop and driver API, no Redis) over PostgreSQL. A gold-tier driver
starts a session asking 30 kWh by a departure; the ``ocpp`` 1.6 charger starts the transaction.
The server stops and a new one starts on the same database: before any charger is back, the new
loop has resumed the transaction, and the session's stored needs and the driver's tier are in it
again (sent once the loop resumed the transaction).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from ocpp.v16 import call as call16

from csms.server import CSMS, create_app
from csms.smart_charging import SMART_CHARGING, EvseBinding, SmartChargingSettings, StationSetup
from csms.smart_charging.drivers import SessionPolicy
from optimizer.types import Connection, Evse, FeederNode, Policy, Site
from sessions.app import SESSIONS, SessionsSettings, install
from sessions.events import SessionState
from tests.csms.chargers import connected
from tests.csms.conftest import make_settings
from tests.sessions.conftest import TOKEN_SECRET, RunningApi
from tests.sessions.helpers import event_log, register_charger, seed_driver
from tests.sessions.test_session_needs_e2e import AppCharger

pytestmark = pytest.mark.asyncio

EVSES = (
    Evse("A", Connection.THREE_PHASE, 230.0, 16.0, 6.0),
    Evse("B", Connection.THREE_PHASE, 230.0, 16.0, 6.0),
)
TIERS = SessionPolicy((("basic", 1.0), ("gold", 3.0)))
SMART = SmartChargingSettings(quiet_s=0.01, max_delay_s=0.05, retry_backoff_s=0.01, apply_grace_s=0.0)


@asynccontextmanager
async def serving(database_dsn: str, setup: StationSetup) -> AsyncIterator[RunningApi]:
    """The CSMS with the station's loop and the driver API on a free port; stopped on exit."""
    app = create_app(make_settings(database_dsn), stations=[setup], smart_charging=SMART)
    install(app, SessionsSettings(token_secret=TOKEN_SECRET))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        await web.SockSite(runner, listener).start()
        async with aiohttp.ClientSession() as http:
            yield RunningApi(app[CSMS], app[SESSIONS], listener.getsockname()[1], http, app)
    finally:
        await runner.cleanup()


async def test_the_drivers_needs_of_a_running_session_survive_a_restart(database_dsn: str) -> None:
    prefix = f"NR{uuid.uuid4().hex[:6]}"
    setup = StationSetup(
        station_id=f"{prefix}-station",
        site=Site(grid_limit_kw=22.0, root=FeederNode("feeder", limit_a=16.0, evse_ids=("A", "B"))),
        evses=tuple(EvseBinding(e, f"{prefix}-{e.evse_id}") for e in EVSES),
        policy=Policy(period_s=300, horizon_periods=24, deadline_s=5.0),
        session_policy=TIERS,
    )
    charger_id, driver = f"{prefix}-A", f"{prefix}-gold"
    departure = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)

    async with serving(database_dsn, setup) as api:
        await seed_driver(api, driver)
        await api.csms.database.pool.execute("UPDATE drivers SET tier = 'gold' WHERE driver_id = $1", driver)
        await register_charger(api, charger_id)
        log = event_log(api)
        async with connected(AppCharger, api.charger_url(charger_id), charger_id, "ocpp1.6") as charger:
            boot = call16.BootNotification(charge_point_vendor="V", charge_point_model="M")
            assert (await charger.call(boot, suppress=False)).status == "Accepted"
            body = {
                "charger_id": charger_id,
                "connector_id": 1,
                "payment_method_id": f"PM-{driver}",
                "energy_needed_kwh": 30,
                "departure_at": departure.isoformat(),
            }
            headers = api.headers(driver, **{"Idempotency-Key": f"{driver}-1"})
            async with api.http.post(f"{api.base_url}/v1/sessions", json=body, headers=headers) as response:
                assert response.status == 201, await response.text()
                session_id = (await response.json())["session_id"]
            id_tag = await asyncio.wait_for(charger.remote_starts.get(), 10)
            started = await charger.call(
                call16.StartTransaction(
                    connector_id=1, id_tag=id_tag, meter_start=0, timestamp=datetime.now(UTC).isoformat()
                ),
                suppress=False,
            )
            await log.wait_state(session_id, SessionState.ACTIVE)
    transaction_id = str(started.transaction_id)

    async with serving(database_dsn, setup) as api:
        session = api.app[SMART_CHARGING].state(setup.station_id).evses["A"].session
        assert session is not None
        assert session.transaction_id == transaction_id
        assert (session.driver_energy_kwh, session.driver_departure, session.priority) == (
            30.0,
            departure,
            3.0,
        )
        # live state keeps them again for whoever asks (the loop of a later node)
        state = await api.csms.live_state.get(charger_id)
        assert state is not None
        assert state.driver_needs[1].transaction_id == transaction_id
