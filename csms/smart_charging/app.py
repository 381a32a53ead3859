"""Wiring the smart-charging loop into the CSMS aiohttp app: subscribed to events, run by the app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from csms.domain.service import ChargingService
from csms.live_state import LiveState
from csms.protocol.session import utc_now
from csms.smart_charging.loop import SmartChargingLoop
from csms.smart_charging.restart import Reconnections, resume_at_start
from csms.smart_charging.resuming import MissedStarts
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
    database is open and its task is owned (and cancelled on shutdown) by ``tasks``. Before its
    first solve, a single node gives it back what the store knows of the stations' chargers (their
    running transactions, see :mod:`csms.smart_charging.restart`) and seeds the forecasts. With
    ``subscribe_events=False`` the loop hears only what is fed to it (across nodes: the events
    of the stations this node owns, see :mod:`csms.smart_charging.ownership`), and the ownership
    does both when it takes a station, not here.
    """
    missed_starts = MissedStarts(service.transactions)
    loop = SmartChargingLoop(
        stations,
        commands=commands,
        live_state=live_state,
        tasks=tasks,
        settings=settings,
        missed_starts=missed_starts,
    )
    if subscribe_events:
        service.subscribe(loop.on_event)
        service.subscribe(Reconnections(loop, stations, live_state).on_event)
    app[SMART_CHARGING] = loop

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        if subscribe_events:  # across nodes, the ownership does this for each station it takes
            now = utc_now()
            await seed_forecasts(loop, service.transactions, now)
            await resume_at_start(
                loop,
                stations,
                transactions=service.transactions,
                chargers=service.chargers,
                live_state=live_state,
                missed_starts=missed_starts,
                now=now,
            )
        task = tasks.start(loop.run(), "smart-charging")
        try:
            yield
        finally:
            task.cancel()

    app.cleanup_ctx.append(lifetime)
    return loop
