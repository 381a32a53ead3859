"""Sending profiles for the loop: what it needs of the command bus, refusal (and drawing) logging,
failsafe defaults.

The failsafe ``TxDefaultProfile`` of an EVSE is the current every EVSE of the station may draw
at once without breaking a site limit (:func:`optimizer.failsafe.failsafe_currents_a`); a charger
applies it whenever it has no Tx profile in force, in particular when the central system is
silent. A charger that refuses its failsafe twice may draw its maximum then, so it is counted at
its maximum and the other EVSEs' failsafes are recomputed and re-sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from csms.commands import ChargingProfile, CommandResult
from csms.domain.events import MeterSample
from csms.smart_charging.held import per_ampere
from csms.smart_charging.setup import SmartChargingSettings
from csms.smart_charging.state import StationState
from optimizer.failsafe import failsafe_currents_a
from optimizer.profiles import limit_from_current
from optimizer.triggers import Trigger, TriggerKind
from optimizer.types import Schedule

logger = logging.getLogger(__name__)


class ProfileSender(Protocol):
    """What the loop needs of the command bus (the local :class:`CommandBus` or a routed one)."""

    async def set_charging_profile(
        self, charger_id: str, evse_id: int, profile: ChargingProfile, *, timeout_s: float | None = None
    ) -> CommandResult: ...

    async def get_charging_profiles(self, charger_id: str) -> CommandResult:
        """Ask for the charger's profiles from external limit sources (2.0.1 K09)."""
        ...


def log_refusal(result: CommandResult, ocpp_evse_id: int, what: str, then: str) -> None:
    """Log a profile the charger did not accept, with the charger id, the reason and what follows."""
    reason = result.status or result.error_code or result.outcome.value
    logger.warning(
        "charger %s: %s for EVSE %d not accepted (%s); %s",
        result.charger_id,
        what,
        ocpp_evse_id,
        reason,
        then,
    )


def log_drawing(sample: MeterSample, trigger: Trigger) -> None:
    """Log what a meter sample showed of a car against its limit (over it, under it, back within)."""
    if trigger.kind is TriggerKind.OVER_DRAWING:
        logger.warning(
            "charger %s: EVSE %d over its limit (%s); planning around it with what it draws",
            sample.charger_id,
            sample.evse_id,
            trigger.detail,
        )
    else:
        logger.info("charger %s: EVSE %d %s", sample.charger_id, sample.evse_id, trigger.detail)


async def send_tx(
    commands: ProfileSender,
    settings: SmartChargingSettings,
    state: StationState,
    schedule: Schedule,
    evse_id: str,
    transaction_id: str,
) -> CommandResult:
    """Send the EVSE the Tx profile following its row of ``schedule`` for ``transaction_id``."""
    evse = state.evses[evse_id]
    binding = evse.binding
    profile = ChargingProfile.tx(
        schedule,
        evse.evse,
        transaction_id=transaction_id,
        profile_id=settings.tx_profile_id_base + binding.ocpp_evse_id,
        max_periods=settings.max_profile_periods,
    )
    return await commands.set_charging_profile(
        binding.charger_id, binding.ocpp_evse_id, profile, timeout_s=settings.profile_timeout_s
    )


async def resend_tx(
    commands: ProfileSender,
    settings: SmartChargingSettings,
    state: StationState,
    schedule: Schedule,
    evse_id: str,
    transaction_id: str,
    at: datetime,
) -> str:
    """The one re-send of a Tx profile: held if accepted, else the EVSE is given up; what happened."""
    binding = state.evses[evse_id].binding
    result = await send_tx(commands, settings, state, schedule, evse_id, transaction_id)
    if result.accepted:
        state.hold(evse_id, schedule, transaction_id, at)
        logger.info(
            "charger %s: Tx profile for EVSE %d accepted on re-send", binding.charger_id, binding.ocpp_evse_id
        )
        return f"{evse_id} accepted on re-send"
    log_refusal(result, binding.ocpp_evse_id, "Tx profile", "planning it at its maximum")
    state.give_up(evse_id, transaction_id)
    return f"{evse_id} uncontrollable"


class Failsafes:
    """Sends failsafe defaults; ``on_refused(state, evse_id)`` hears of an EVSE that refused twice."""

    def __init__(
        self,
        commands: ProfileSender,
        settings: SmartChargingSettings,
        on_refused: Callable[[StationState, str], None],
    ) -> None:
        self._commands = commands
        self._settings = settings
        self._on_refused = on_refused

    async def send_all(self, targets: Sequence[tuple[StationState, str]]) -> None:
        """Send each (station, EVSE) its failsafe, concurrently."""
        await asyncio.gather(*(self.send(state, evse_id) for state, evse_id in targets))

    async def send(self, state: StationState, evse_id: str, *, retry: bool = True) -> None:
        """Send one EVSE its failsafe; re-send once after the back-off if it is not accepted."""
        site, evses = state.failsafe_site()
        if evse_id not in {e.evse_id for e in evses}:
            return  # it refused its failsafe: counted at its maximum
        await self.send_limit(state, evse_id, failsafe_currents_a(site, evses)[evse_id], retry=retry)

    def static_limits_a(self, state: StationState) -> dict[str, float]:
        """Every EVSE's static failsafe [A] (those that refused theirs are left out)."""
        site, evses = state.failsafe_site()
        return failsafe_currents_a(site, evses) if evses else {}

    async def send_limit(
        self, state: StationState, evse_id: str, limit_a: float, *, retry: bool = True, idle: bool = False
    ) -> None:
        """Send one EVSE a default profile of ``limit_a`` (its failsafe, or the room an idle EVSE has)."""
        evse = state.evses[evse_id]
        binding = evse.binding
        profile = ChargingProfile.failsafe(
            evse.evse,
            limit_a=limit_a,
            profile_id=self._settings.failsafe_profile_id_base + binding.ocpp_evse_id,
        )
        result = await self._commands.set_charging_profile(
            binding.charger_id, binding.ocpp_evse_id, profile, timeout_s=self._settings.profile_timeout_s
        )
        if result.accepted:
            evse.failsafe_a = limit_from_current(limit_a, evse.evse) / per_ampere(evse.evse)
            logger.info(
                "charger %s: failsafe %.1f A in force on EVSE %d",
                binding.charger_id,
                evse.failsafe_a,
                binding.ocpp_evse_id,
            )
            return
        if retry:
            log_refusal(result, binding.ocpp_evse_id, "failsafe profile", "re-sending once")
            await asyncio.sleep(self._settings.retry_backoff_s)
            await self.send_limit(state, evse_id, limit_a, retry=False)
            return
        if idle:
            # an idle EVSE's room, not its failsafe: it keeps the default it holds; the next solve retries
            log_refusal(result, binding.ocpp_evse_id, "idle default", "keeping the one it holds")
            return
        log_refusal(result, binding.ocpp_evse_id, "failsafe profile", "counting it at its maximum")
        evse.failsafe_refused = True
        self._on_refused(state, evse_id)
        await self.refresh(state)

    async def refresh(self, state: StationState) -> None:
        """Re-send the failsafes that changed (an EVSE now counts at its maximum)."""
        site, evses = state.failsafe_site()
        currents = failsafe_currents_a(site, evses) if evses else {}
        stale = []
        for evse_id, limit_a in currents.items():
            evse = state.evses[evse_id]
            wire_a = limit_from_current(limit_a, evse.evse) / per_ampere(evse.evse)
            if evse.failsafe_a is not None and abs(wire_a - evse.failsafe_a) > 1e-9:
                stale.append(evse_id)
        await asyncio.gather(*(self.send(state, e) for e in stale))
