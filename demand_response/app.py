"""Wiring demand response into a CSMS app made with stations: ``install(app, programs, stations=...)``.

Call it after :func:`csms.server.create_app` (with the same ``stations``, so the smart-charging
loop runs) and before the app starts. It registers the ``dr_events`` migration, subscribes the
telemetry to the charging service's domain events, and adds a start-up context that restores the
stored events, runs the enforcer and one VEN per program (owned tasks, cancelled on shutdown).
The operator API (:func:`demand_response.api.register`) finds it at ``app[DEMAND_RESPONSE]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from csms.protocol.session import utc_now
from csms.server import CSMS
from csms.smart_charging import SMART_CHARGING, SmartChargingLoop, StationSetup
from demand_response.config import Program
from demand_response.enforcer import Clock, Enforcer
from demand_response.errors import DemandResponseError
from demand_response.store import MIGRATIONS, EventStore
from demand_response.telemetry import Telemetry
from demand_response.ven import Ven
from optimizer.types import CapWindow, PricePeriod


@dataclass
class DemandResponseRuntime:
    """What demand response runs in one app (``app[DEMAND_RESPONSE]``)."""

    programs: tuple[Program, ...]
    enforcer: Enforcer
    store: EventStore
    telemetry: Telemetry
    vens: dict[str, Ven] = field(default_factory=dict)


DEMAND_RESPONSE = web.AppKey("demand_response", DemandResponseRuntime)


class LoopView:
    """The enforcer's read-only view of the smart-charging loop's stations."""

    def __init__(self, loop: SmartChargingLoop) -> None:
        self._loop = loop

    def grid_limit_kw(self, station_id: str) -> float:
        return self._loop.state(station_id).site.grid_limit_kw

    def caps(self, station_id: str) -> tuple[CapWindow, ...]:
        return self._loop.state(station_id).site.caps

    def prices(self, station_id: str) -> tuple[PricePeriod, ...]:
        return self._loop.state(station_id).site.prices

    def active_sessions(self, station_id: str) -> int:
        return sum(1 for evse in self._loop.state(station_id).evses.values() if evse.session is not None)


def install(
    app: web.Application,
    programs: Sequence[Program],
    *,
    stations: Sequence[StationSetup],
    clock: Clock = utc_now,
    ven_retry_s: float = 10.0,
    start_vens: bool = True,
) -> DemandResponseRuntime:
    """Add demand response for ``programs`` over ``stations`` (the loop's) to the CSMS ``app``.

    Every station can take manual events; a program's stations must be among ``stations``. With
    ``start_vens=False`` the VENs are built but not run (the benchmark feeds them distributions).
    """
    if SMART_CHARGING not in app:
        raise DemandResponseError(
            "demand response needs the smart-charging loop: create the app with stations"
        )
    known = {s.station_id for s in stations}
    for program in programs:
        missing = [s for s in program.stations if s not in known]
        if missing:
            raise DemandResponseError(f"program {program.name}: no station {missing[0]!r} is configured")
    csms = app[CSMS]
    loop = app[SMART_CHARGING]
    csms.database.add_migrations(MIGRATIONS)
    store = EventStore(csms.database)
    telemetry = Telemetry({s.station_id: [(b.charger_id, b.ocpp_evse_id) for b in s.evses] for s in stations})
    csms.service.subscribe(telemetry.on_event)
    enforcer = Enforcer(
        programs, [s.station_id for s in stations], sink=loop, view=LoopView(loop), store=store, clock=clock
    )
    runtime = DemandResponseRuntime(tuple(programs), enforcer, store, telemetry)
    for program in programs:
        runtime.vens[program.name] = Ven(program, enforcer, telemetry, clock=clock, retry_s=ven_retry_s)
    app[DEMAND_RESPONSE] = runtime

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await enforcer.restore()
        tasks = [csms.tasks.start(enforcer.run(), "dr-enforcer")]
        if start_vens:
            tasks += [csms.tasks.start(ven.run(), f"dr-ven-{name}") for name, ven in runtime.vens.items()]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app.cleanup_ctx.append(lifetime)
    return runtime
