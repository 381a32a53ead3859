"""A session's driver needs on their way to the smart-charging loop.

The driver gives a departure and an energy need when starting a session or later
(``sessions.api.session_needs``); they are stored with the session. Once its transaction is known
(the lifecycle makes it ACTIVE, or opens a session the charger started) and whenever the driver
changes them, they go to the planner with the driver's membership tier (``drivers.tier``) as a
:class:`~csms.domain.events.DriverNeeds` event through this node's charging service: the loop
hears it there, or, when another node plans the station, through the station's event fan-out
(:mod:`csms.fanout`); live state keeps the latest for a node taking the station over.

A single node (no Redis) forgets them when it restarts, with the rest of its live state: once the
smart-charging loop has resumed the transactions still running (its start-up context runs before
this package's), :func:`tell_planner_again` sends the needs of every ACTIVE session again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from redis.exceptions import RedisError

from csms.domain.events import DriverNeeds
from csms.server import CsmsRuntime
from sessions.events import SessionState
from sessions.session_store import SessionRecord, SessionStore

logger = logging.getLogger(__name__)


async def tell_planner(csms: CsmsRuntime, record: SessionRecord, *, even_if_unset: bool = False) -> bool:
    """Send the needs of ``record`` (an ACTIVE session with its transaction) and its driver's tier
    to the planner; whether they were sent.

    Without ``even_if_unset`` nothing is sent when the driver gave no need and has no tier (the
    planner assumes that already); a driver who cleared their needs sends it.
    """
    if record.state is not SessionState.ACTIVE or record.transaction_id is None:
        return False
    tier: str | None = None
    if record.driver_id is not None:
        tier = await csms.database.pool.fetchval(
            "SELECT tier FROM drivers WHERE driver_id = $1", record.driver_id
        )
    unset = tier is None and record.departure_at is None and record.energy_needed_kwh is None
    if unset and not even_if_unset:
        return False
    needs = DriverNeeds(
        charger_id=record.charger_id,
        evse_id=record.evse_id,
        transaction_id=record.transaction_id,
        energy_needed_kwh=record.energy_needed_kwh,
        departure=record.departure_at,
        tier=tier,
        at=datetime.now(UTC),
    )
    try:
        await csms.service.driver_needs(needs)
    except RedisError as exc:  # stored with the session: only the plan goes without them
        logger.warning(
            "charger %s: session %s's needs not passed to the planner: %s",
            record.charger_id,
            record.session_id,
            exc,
        )
        return False
    return True


async def tell_planner_again(csms: CsmsRuntime, store: SessionStore) -> int:
    """Send the needs and tier of every ACTIVE session with a transaction to the planner again (a
    single node's start: its live state forgot them); how many were sent. Sessions whose driver
    gave no need and has no tier send nothing, as when they started."""
    sent = 0
    for record in await store.active_with_transaction():
        sent += await tell_planner(csms, record)
    logger.info("drivers' needs of %d running sessions sent to the planner again", sent)
    return sent
