"""External limits asked for when a charger boots or comes back (OCPP 2.0.1 K09).

A charger tells of a limit set on it from outside (NotifyChargingLimit) once, when it is set. After
our restart, or when a charger rebooted, the loop may hold none of them, or ones the charger
has since dropped. So when a station's charger is accepted after a boot, or first connects after
our start, the loop asks it for the profiles of the external sources (GetChargingProfiles with
``chargingLimitSource`` EMS, Other, SO). Each ReportChargingProfiles that follows sets the limit
again (:mod:`csms.protocol.smart_charging`). Once the charger has answered (``Accepted`` or
``NoProfiles``), the limits the loop kept from before the question are dropped; those the charger
still holds come back with its reports, usually before the coalesced re-solve (and the charger
applies them meanwhile anyway: never faster than its limit, K11.FR.01). A 1.6 charger has no such
request, and a charger that refuses or fails to answer leaves the loop with what it knew.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from csms.commands import CommandOutcome
from csms.domain.events import ChargingLimitCleared, DomainEvent
from csms.smart_charging.sending import ProfileSender
from csms.smart_charging.state import StationState

logger = logging.getLogger(__name__)


async def ask_external_limits(
    commands: ProfileSender,
    charger_id: str,
    states: Iterable[StationState],
    feed: Callable[[DomainEvent], Awaitable[None]],
    clock: Callable[[], datetime],
) -> None:
    """Ask ``charger_id`` for its external limits; once it answers, feed the clearing of the
    limits ``states`` kept from before the question."""
    asked_at = clock()
    result = await commands.get_charging_profiles(charger_id)
    if result.outcome is CommandOutcome.NOT_SUPPORTED_BY_VERSION:
        return
    if result.status not in ("Accepted", "NoProfiles"):
        logger.info(
            "charger %s: external limits not reported (%s); planning with what we know",
            charger_id,
            result.status or result.error_code or result.outcome.value,
        )
        return
    stale = {
        (evse_id, source)
        for state in states
        for (limit_charger, evse_id, source), limit in state.external.limits.items()
        if limit_charger == charger_id and limit.at < asked_at
    }
    for evse_id, source in sorted(stale):
        logger.info(
            "charger %s: %s limit on EVSE %d kept from before it answered: dropped",
            charger_id,
            source,
            evse_id,
        )
        await feed(ChargingLimitCleared(charger_id, evse_id, source, clock()))
