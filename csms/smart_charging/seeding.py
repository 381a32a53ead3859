"""Seeding the stations' forecasts with their finished transactions from the transactions store.

A single node seeds every station that plans with a forecast with its transactions of the last
weeks at start-up (:func:`csms.smart_charging.app.install`). Across nodes, a node seeds a station
each time it takes it (:mod:`csms.smart_charging.ownership`), at start or from another node: the
sessions that ended while another node planned it never reached this node's loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from csms.smart_charging.forecasting import FinishedSession
from csms.smart_charging.loop import SmartChargingLoop
from csms.storage.transactions import TransactionRepository

logger = logging.getLogger(__name__)


async def seed_forecasts(
    loop: SmartChargingLoop,
    transactions: TransactionRepository,
    now: datetime,
    station_ids: Iterable[str] | None = None,
) -> int:
    """Teach the stations that plan with a forecast (of ``station_ids`` only when given) their
    transactions of the last weeks, replacing what they knew; returns how many were taken.

    The store is read first and the histories replaced after, with no await between: a session
    the loop records meanwhile is either in the store's answer or recorded after the seed.
    """
    chosen = None if station_ids is None else tuple(station_ids)
    keep, charger_ids = loop.forecast_window(chosen)
    if not charger_ids:
        return 0
    records = await transactions.finished_since(now - keep, charger_ids)
    taken = loop.seed_history(
        (
            (
                r.charger_id,
                r.evse_id,
                FinishedSession(
                    evse_id="", arrival=r.started_at, ended=r.ended_at, energy_kwh=r.energy_wh / 1000.0
                ),
            )
            for r in records
            if r.energy_wh is not None
        ),
        chosen,
    )
    logger.info(
        "forecast of %s: %d finished sessions of the last %d days learned",
        "every station" if chosen is None else ", ".join(chosen),
        taken,
        keep.days,
    )
    return taken
