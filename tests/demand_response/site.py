"""A served CSMS with one 4-EVSE station, demand response installed, and ``ocpp``-package chargers."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from ocpp.v16 import call as call16

from csms.server import CSMS, create_app
from csms.smart_charging import (
    SMART_CHARGING,
    EvseBinding,
    SmartChargingLoop,
    SmartChargingSettings,
    StationSetup,
)
from demand_response.app import DEMAND_RESPONSE, DemandResponseRuntime, install
from demand_response.config import Program
from demand_response.events import DrEvent
from optimizer.types import Connection, Evse, FeederNode, Policy, RateUnit, Site
from tests.csms.chargers import connected
from tests.csms.conftest import make_settings
from tests.csms.test_smart_charging_e2e import SmartCharger16, SmartCharger201, arrive, boot
from tests.demand_response.vtn import RecordingVtn

COUNT = 4
MAX_A = 16.0
METER_W = MAX_A * 3 * 230.0  # each 1.6 charger reports drawing its maximum (11.04 kW)


def evse_of(i: int) -> Evse:
    if i % 2:  # the 2.0.1 chargers take profiles in W
        return Evse(f"E{i}", Connection.THREE_PHASE, 230.0, MAX_A, 6.0, rate_unit=RateUnit.WATT, step=100.0)
    return Evse(f"E{i}", Connection.THREE_PHASE, 230.0, MAX_A, 6.0)


EVSES = tuple(evse_of(i) for i in range(COUNT))
GRID_KW = sum(e.max_power_kw for e in EVSES)  # 44.16 kW: uncapped, every car may draw its maximum
SITE = Site(grid_limit_kw=GRID_KW, root=FeederNode("main", evse_ids=tuple(e.evse_id for e in EVSES)))


@dataclass
class RunningSite:
    station_id: str
    loop: SmartChargingLoop
    dr: DemandResponseRuntime
    chargers: list[Any]
    app: web.Application

    async def settle(self) -> None:
        async with asyncio.timeout(30):
            await self.loop.wait_idle()

    def offered_kw(self, at: datetime) -> float:
        """The sum of the limits in force at the chargers at ``at`` [kW]."""
        return float(
            sum(
                c.holder.limit_in_force_a(e, at) * e.kw_per_a
                for e, c in zip(EVSES, self.chargers, strict=True)
            )
        )

    def highest_kw(
        self, start: datetime, end: datetime, step: timedelta = timedelta(milliseconds=250)
    ) -> float:
        """The highest sum of limits in force over ``[start, end)``, sampled every ``step``."""
        at, highest = start, 0.0
        while at < end:
            highest = max(highest, self.offered_kw(at))
            at += step
        return highest

    def dr_caps(self) -> list[Any]:
        return [c for c in self.loop.state(self.station_id).site.caps if c.source.startswith("dr:")]


@dataclass
class VtnRig:
    """The VTN, our site, and the program's name (the events' key)."""

    vtn: RecordingVtn
    site: RunningSite
    program: str

    def event(self, event_id: str) -> DrEvent:
        event = self.site.dr.enforcer.event(self.program, event_id)
        assert event is not None, event_id
        return event

    def windows(self, event_id: str) -> list[tuple[datetime, datetime, float]]:
        """The event's caps in the loop: (start, end, limit [kW] to 3 decimals) by start."""
        source = f"dr:{self.program}:{event_id}"
        return sorted(
            (c.start, c.end, round(float(c.limit_kw or 0.0), 3))
            for c in self.site.dr_caps()
            if c.source == source
        )


async def eventually(predicate: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Wait for a condition that follows a remote party's timer (the VEN's poll, a window's end)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - the condition is another process's, no event to await
            await asyncio.sleep(0.05)


def setup_of(prefix: str) -> StationSetup:
    return StationSetup(
        station_id=f"{prefix}-station",
        site=SITE,
        evses=tuple(EvseBinding(e, f"{prefix}-{i}") for i, e in enumerate(EVSES)),
        policy=Policy(period_s=60, horizon_periods=10, deadline_s=5.0),
    )


@asynccontextmanager
async def running_site(
    database_dsn: str,
    programs: Callable[[str], Sequence[Program]],
    *,
    prefix: str | None = None,
    chargers: bool = True,
) -> AsyncIterator[RunningSite]:
    """The CSMS on a free port with DR for ``programs(station_id)``; chargers booted and charging."""
    prefix = prefix or f"DR{uuid.uuid4().hex[:6]}"
    setup = setup_of(prefix)
    settings = SmartChargingSettings(quiet_s=0.01, max_delay_s=0.05, retry_backoff_s=0.01, apply_grace_s=0.0)
    app = create_app(
        make_settings(database_dsn, auto_register=True), stations=[setup], smart_charging=settings
    )
    install(app, programs(setup.station_id), stations=[setup], ven_retry_s=0.5)
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    await web.SockSite(runner, listener).start()
    try:
        async with AsyncExitStack() as stack:
            connected_chargers: list[Any] = []
            for i in range(COUNT if chargers else 0):
                charger_id = f"{prefix}-{i}"
                url = f"ws://127.0.0.1:{port}/ocpp/{charger_id}"
                kind, protocol = (SmartCharger201, "ocpp2.0.1") if i % 2 else (SmartCharger16, "ocpp1.6")
                charger = await stack.enter_async_context(connected(kind, url, charger_id, protocol))
                await boot(charger)
                await arrive(charger, i)
                if isinstance(charger, SmartCharger16):
                    await charger.call(
                        call16.MeterValues(
                            connector_id=1,
                            transaction_id=int(str(charger.holder.transaction_id)),
                            meter_value=[
                                {
                                    "timestamp": datetime.now(UTC).isoformat(),
                                    "sampled_value": [
                                        {
                                            "value": str(METER_W),
                                            "measurand": "Power.Active.Import",
                                            "unit": "W",
                                        }
                                    ],
                                }
                            ],
                        ),
                        suppress=False,
                    )
                connected_chargers.append(charger)
            site = RunningSite(
                setup.station_id, app[SMART_CHARGING], app[DEMAND_RESPONSE], connected_chargers, app
            )
            assert app[CSMS].commands is not None
            await site.settle()
            yield site
    finally:
        await runner.cleanup()
