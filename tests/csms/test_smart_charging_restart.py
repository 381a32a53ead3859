"""End to end: the server restarts while a car charges, and the new server plans that car.

A station of two EVSEs (an ``ocpp`` 1.6 charger each, 16 A) behind a 20 A feeder, on one node
without Redis. A car charges on A and its charger reports energy; the server stops (the app's
cleanup) and a new one starts on the same PostgreSQL. Before any charger is back, the new loop has
the car's session with the energy it got; its profiles cannot reach A's charger yet, so A counts
at its maximum. The chargers reconnect without a BootNotification (as real chargers do after a
CSMS outage), keeping the profiles they hold: each gets its failsafe again and A a new Tx
profile. A second car starts on B: the Tx profiles the two chargers hold then keep the feeder
within its 20 A. A loop that had not resumed A's car would give B the feeder while A goes on
under the old server's profile (and A would never get a new one).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from ocpp.v16 import call as call16

from csms.server import create_app
from csms.smart_charging import (
    SMART_CHARGING,
    EvseBinding,
    SmartChargingLoop,
    SmartChargingSettings,
    StationSetup,
)
from optimizer.types import Connection, Evse, FeederNode, Policy, Site
from tests.cli.test_serve_stations import ProfiledCharger, wait_for
from tests.csms.chargers import connected
from tests.csms.conftest import make_settings
from tests.csms.test_e2e_v201_station_reports import BOOT, LimitedStation, drain, plug_in

pytestmark = pytest.mark.asyncio

FEEDER_A = 20.0
EVSES = (
    Evse("A", Connection.THREE_PHASE, 230.0, 16.0, 6.0),
    Evse("B", Connection.THREE_PHASE, 230.0, 16.0, 6.0),
)
SETTINGS = SmartChargingSettings(quiet_s=0.01, max_delay_s=0.05, retry_backoff_s=0.01, apply_grace_s=0.0)


@dataclass
class Server:
    runner: web.AppRunner
    loop: SmartChargingLoop
    port: int

    def url(self, charger_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{charger_id}"

    async def settle(self) -> None:
        """Wait until the loop has acted on everything (the timeout only guards against a hang)."""
        async with asyncio.timeout(120):
            await self.loop.wait_idle()


@asynccontextmanager
async def serving(database_dsn: str, setup: StationSetup) -> AsyncIterator[Server]:
    """Our server with the station's loop on a free port; stopped (the app's cleanup) on exit."""
    app = create_app(
        make_settings(database_dsn, auto_register=True), stations=[setup], smart_charging=SETTINGS
    )
    runner = web.AppRunner(app)
    await runner.setup()  # the start-up contexts: the database opens, the loop resumes
    try:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        await web.SockSite(runner, listener).start()
        yield Server(runner, app[SMART_CHARGING], listener.getsockname()[1])
    finally:
        await runner.cleanup()


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def start_car(charger: ProfiledCharger, meter_start_wh: int, at: datetime) -> None:
    started = await charger.call(
        call16.StartTransaction(
            connector_id=1, id_tag=f"TAG-{charger.id}", meter_start=meter_start_wh, timestamp=stamp(at)
        ),
        suppress=False,
    )
    charger.transaction_id = str(started.transaction_id)


async def test_a_car_charging_through_a_restart_is_planned_by_the_new_server(database_dsn: str) -> None:
    prefix = f"RR{uuid.uuid4().hex[:6]}"
    ids = {e.evse_id: f"{prefix}-{e.evse_id}" for e in EVSES}
    setup = StationSetup(
        station_id=f"{prefix}-station",
        site=Site(grid_limit_kw=22.0, root=FeederNode("feeder", limit_a=FEEDER_A, evse_ids=("A", "B"))),
        evses=tuple(EvseBinding(e, ids[e.evse_id]) for e in EVSES),
        policy=Policy(period_s=300, horizon_periods=24, deadline_s=5.0),
    )
    arrival = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

    async with serving(database_dsn, setup) as first, AsyncExitStack() as chargers:
        a = await chargers.enter_async_context(
            connected(ProfiledCharger, first.url(ids["A"]), ids["A"], "ocpp1.6")
        )
        b = await chargers.enter_async_context(
            connected(ProfiledCharger, first.url(ids["B"]), ids["B"], "ocpp1.6")
        )
        for charger in (a, b):
            boot = call16.BootNotification(charge_point_vendor="V", charge_point_model="M")
            assert (await charger.call(boot, suppress=False)).status == "Accepted"
            await wait_for(charger, lambda c=charger: c.tx_default is not None)
        await start_car(a, 1000, arrival)
        reading = {"value": "4000", "unit": "Wh", "measurand": "Energy.Active.Import.Register"}
        await a.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=int(a.transaction_id),
                meter_value=[{"timestamp": stamp(datetime.now(UTC)), "sampled_value": [reading]}],
            ),
            suppress=False,
        )
        await wait_for(a, a.holds_tx)
        await first.settle()
    # the first server stopped with the chargers connected; they hold what it sent them
    held = {"A": (a.tx, a.tx_default), "B": (b.tx, b.tx_default)}

    async with serving(database_dsn, setup) as second, AsyncExitStack() as chargers:
        session = second.loop.state(setup.station_id).evses["A"].session
        assert session is not None  # before its charger is back
        assert (session.transaction_id, session.arrival, session.meter_start_wh, session.delivered_wh) == (
            a.transaction_id,
            arrival,
            1000.0,
            3000.0,
        )
        assert second.loop.state(setup.station_id).evses["B"].session is None
        # its first plan cannot reach A's charger (sent, re-sent): A counts at its maximum meanwhile
        await second.settle()
        assert session.uncontrollable

        # back without a BootNotification, holding the profiles the first server sent
        a2 = await chargers.enter_async_context(
            connected(ProfiledCharger, second.url(ids["A"]), ids["A"], "ocpp1.6")
        )
        a2.tx, a2.tx_default = held["A"]
        a2.transaction_id = a.transaction_id
        b2 = await chargers.enter_async_context(
            connected(ProfiledCharger, second.url(ids["B"]), ids["B"], "ocpp1.6")
        )
        b2.tx, b2.tx_default = held["B"]
        await wait_for(a2, lambda: a2.tx_default is not held["A"][1] and a2.tx is not held["A"][0])
        await wait_for(b2, lambda: b2.tx_default is not held["B"][1])
        assert a2.holds_tx()

        await start_car(b2, 0, datetime.now(UTC))
        await wait_for(b2, b2.holds_tx)
        await second.settle()
        session = second.loop.state(setup.station_id).evses["A"].session
        assert session is not None
        assert not session.uncontrollable
        now = datetime.now(UTC)
        for minutes in range(0, 120, 5):  # the plan's first two hours
            at = now + timedelta(minutes=minutes)
            a_a, b_a = a2.tx_limit_a(at), b2.tx_limit_a(at)
            assert a_a + b_a <= FEEDER_A + 1e-9, (minutes, a_a, b_a)
        assert a2.tx_limit_a(now) >= 6.0
        assert b2.tx_limit_a(now) >= 6.0


async def test_a_station_back_after_a_restart_is_asked_for_the_limits_it_holds(database_dsn: str) -> None:
    """An EMS limit the old server was told of comes back: the 2.0.1 station, reconnecting without
    a boot, is asked for its external limits and its car is planned under them."""
    charger_id = f"RL{uuid.uuid4().hex[:6]}"
    evse = Evse("A", Connection.THREE_PHASE, 230.0, 16.0, 6.0)
    setup = StationSetup(
        station_id=f"{charger_id}-station",
        site=Site(grid_limit_kw=22.0, root=FeederNode("feeder", limit_a=FEEDER_A, evse_ids=("A",))),
        evses=(EvseBinding(evse, charger_id),),
        policy=Policy(period_s=300, horizon_periods=24, deadline_s=5.0, default_energy_kwh=200.0),
    )
    async with (
        serving(database_dsn, setup) as first,
        connected(LimitedStation, first.url(charger_id), charger_id, "ocpp2.0.1") as station,
    ):
        assert (await station.call(BOOT, suppress=False)).status == "Accepted"
        await first.settle()

    async with serving(database_dsn, setup) as second:
        assert second.loop.state(setup.station_id).external.limits == {}  # nothing kept across
        async with connected(LimitedStation, second.url(charger_id), charger_id, "ocpp2.0.1") as station:
            async with asyncio.timeout(30):  # guards against a hang only
                await station.reported.wait()
            await second.settle()
            assert list(second.loop.state(setup.station_id).external.limits) == [(charger_id, 1, "EMS")]
            await plug_in(station, "TX-BACK")
            await second.settle()
            sent = [request for action, request in await drain(station) if action == "SetChargingProfile"]
            tx = [
                s["charging_profile"]
                for s in sent
                if s["charging_profile"]["charging_profile_purpose"] == "TxProfile"
            ]
            periods = tx[-1]["charging_schedule"][0]["charging_schedule_period"]
            assert max(float(p["limit"]) for p in periods) == 10.0  # the EVSE's 16 A held to the EMS's 10 A
