"""Wiring the smart-charging loop into the CSMS aiohttp app: subscribed to events, run by the app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from csms.domain.service import ChargingService
from csms.live_state import LiveState
from csms.protocol.session import utc_now
from csms.smart_charging.loop import SmartChargingLoop
from csms.smart_charging.seeding import seed_forecasts
from csms.smart_charging.sending import ProfileSender
from csms.smart_charging.setup import SmartChargingSettings, StationSetup
from csms.tasks import TaskOwner

SMART_CHARGING = web.AppKey("smart_charging", SmartChargingLoop)


def install(
    app: web.Application,
    stations: Sequence[StationSetup],
    *,
    service: ChargingService,
    commands: ProfileSender,
    live_state: LiveState,
    tasks: TaskOwner,
    settings: SmartChargingSettings | None = None,
    subscribe_events: bool = True,
) -> SmartChargingLoop:
    """Create the loop for ``stations``, subscribe it to ``service`` and run it while the app runs.

    Call it after the app's own start-up context is registered: the loop starts once the
    database is open and its task is owned (and cancelled on shutdown) by ``tasks``. With
    ``subscribe_events=False`` the loop hears only what is fed to it (across nodes: the events
    of the stations this node owns, see :mod:`csms.smart_charging.ownership`), and the forecasts
    are seeded by the ownership when it takes a station, not here.
    """
    loop = SmartChargingLoop(
        stations, commands=commands, live_state=live_state, tasks=tasks, settings=settings
    )
    if subscribe_events:
        service.subscribe(loop.on_event)
    app[SMART_CHARGING] = loop

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        if subscribe_events:  # across nodes, each station is seeded when this node takes it
            await seed_forecasts(loop, service.transactions, utc_now())
        task = tasks.start(loop.run(), "smart-charging")
        try:
            yield
        finally:
            task.cancel()

    app.cleanup_ctx.append(lifetime)
    return loop
