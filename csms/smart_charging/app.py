"""Wiring the smart-charging loop into the CSMS aiohttp app: subscribed to events, run by the app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from aiohttp import web

from csms.domain.service import ChargingService
from csms.live_state import LiveState
from csms.protocol.session import utc_now
from csms.smart_charging.forecasting import FinishedSession
from csms.smart_charging.loop import SmartChargingLoop
from csms.smart_charging.sending import ProfileSender
from csms.smart_charging.setup import SmartChargingSettings, StationSetup
from csms.storage.transactions import TransactionRepository
from csms.tasks import TaskOwner

logger = logging.getLogger(__name__)

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
    of the stations this node owns, see :mod:`csms.smart_charging.ownership`).
    """
    loop = SmartChargingLoop(
        stations, commands=commands, live_state=live_state, tasks=tasks, settings=settings
    )
    if subscribe_events:
        service.subscribe(loop.on_event)
    app[SMART_CHARGING] = loop

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await seed_forecasts(loop, service.transactions, utc_now())
        task = tasks.start(loop.run(), "smart-charging")
        try:
            yield
        finally:
            task.cancel()

    app.cleanup_ctx.append(lifetime)
    return loop


async def seed_forecasts(loop: SmartChargingLoop, transactions: TransactionRepository, now: datetime) -> int:
    """Teach the stations that plan with a forecast their transactions of the last weeks; returns how many."""
    keep, charger_ids = loop.forecast_window()
    if not charger_ids:
        return 0
    records = await transactions.finished_since(now - keep, charger_ids)
    taken = loop.seed_history(
        (
            r.charger_id,
            r.evse_id,
            FinishedSession(
                evse_id="",
                arrival=r.started_at,
                ended=r.ended_at,
                energy_kwh=r.energy_wh / 1000.0,
            ),
        )
        for r in records
        if r.energy_wh is not None
    )
    logger.info("forecast: %d finished sessions of the last %d days learned", taken, keep.days)
    return taken
