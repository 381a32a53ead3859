"""Applying a station's schedule at its chargers: Tx profiles and idle EVSEs' defaults, decreases first.

A ``SetChargingProfile`` goes to each EVSE whose near-term limits changed, decreases first: a
charger is only allowed more once those that must give it up have accepted their lower limits.
Idle EVSEs' defaults follow the room the plan leaves (:mod:`csms.smart_charging.idle`): those
that must go down are sent with the decreases, those that may go up with the increases.

Failures. A profile that is rejected, answered with a CALLERROR, times out or cannot be
delivered is logged with the charger id and re-sent once after ``retry_backoff_s``; if that
fails too, the EVSE is treated as uncontrollable for the rest of the session: the station is
planned as if it drew its maximum current, and what is left is shared among the others. We
cannot know what such a charger will let the car draw (it may run on our failsafe default, on
its own default, or ignore profiles altogether), and the only plan that keeps the site within
its limits whatever it does is the one that assumes the most it can draw.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any

from csms.live_state import LiveState
from csms.smart_charging.held import per_ampere
from csms.smart_charging.idle import idle_changes_a
from csms.smart_charging.planned import PlannedStation
from csms.smart_charging.sending import Failsafes, ProfileSender, log_refusal, resend_tx, send_tx
from csms.smart_charging.setup import SmartChargingSettings
from optimizer.profiles import limit_from_current
from optimizer.triggers import TriggerKind
from optimizer.types import Schedule

logger = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None], str], None]  # run in an owned task counted as busy
AddTrigger = Callable[[PlannedStation, TriggerKind, str], None]


class ScheduleApplier:
    """Sends a station's schedule to its chargers for the loop, and re-sends what they refuse once."""

    def __init__(
        self,
        *,
        commands: ProfileSender,
        live_state: LiveState,
        settings: SmartChargingSettings,
        failsafes: Failsafes,
        clock: Callable[[], datetime],
        spawn: Spawn,
        add: AddTrigger,
    ) -> None:
        self._commands = commands
        self._live_state = live_state
        self._settings = settings
        self._failsafes = failsafes
        self._clock = clock
        self._spawn = spawn
        self._add = add

    async def apply(self, station: PlannedStation, schedule: Schedule) -> None:
        """Send the profiles and idle defaults that changed, decreases before increases."""
        state = station.state
        now = schedule.start
        decreases: list[tuple[str, str]] = []
        increases: list[tuple[str, str]] = []
        for evse_id, transaction_id in zip(schedule.evse_ids, schedule.session_ids, strict=True):
            evse = state.evses[evse_id]
            if evse.session is None or evse.session.transaction_id != transaction_id:
                continue  # the session ended while solving; its trigger is pending
            if evse_id in station.retrying or not state.needs_profile(evse_id, schedule):
                continue
            first_a = limit_from_current(float(schedule.row(evse_id)[0]), evse.evse) / per_ampere(evse.evse)
            lower = first_a < evse.limit_in_force_a(now) - 1e-9
            (decreases if lower else increases).append((evse_id, transaction_id))
        idle_lower, idle_higher = self._idle_defaults(station, schedule, now)
        results = await asyncio.gather(
            *(self._send_tx(station, schedule, e, t) for e, t in decreases),
            self._send_defaults(station, idle_lower),
        )
        if not all(r is not False for r in results) or station.retrying:
            if increases:
                logger.info(
                    "station %s: %d higher limits held back until lower ones are in force",
                    state.station_id,
                    len(increases),
                )
            return
        await asyncio.gather(
            *(self._send_tx(station, schedule, e, t) for e, t in increases),
            self._send_defaults(station, idle_higher),
        )

    async def apply_idle(self, station: PlannedStation, now: datetime) -> None:
        """With no sessions to plan: send the idle EVSEs' defaults that changed."""
        lower, higher = self._idle_defaults(station, None, now)
        await self._send_defaults(station, lower + higher)

    def _idle_defaults(
        self, station: PlannedStation, schedule: Schedule | None, now: datetime
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """The idle EVSEs whose default must go down, and those whose default may go up (see ``idle``)."""
        state = station.state
        if all(evse.session is not None for evse in state.evses.values()):
            return [], []  # no idle EVSE: nothing to share
        static_a = self._failsafes.static_limits_a(state)
        return idle_changes_a(
            state, station.network, static_a, schedule, now, compare_periods=self._settings.compare_periods
        )

    async def _send_defaults(self, station: PlannedStation, defaults: Sequence[tuple[str, float]]) -> None:
        reachable = []
        for evse_id, limit_a in defaults:
            charger = await self._live_state.get(station.state.evses[evse_id].binding.charger_id)
            if charger is not None and charger.connected:
                reachable.append((evse_id, limit_a))  # a silent charger keeps what it holds
        defaults = reachable
        if defaults:
            logger.info(
                "station %s: idle defaults %s",
                station.state.station_id,
                ", ".join(f"{evse_id} {limit_a:.1f} A" for evse_id, limit_a in defaults),
            )
        await asyncio.gather(
            *(
                self._failsafes.send_limit(station.state, e, limit_a, retry=False, idle=True)
                for e, limit_a in defaults
            )
        )

    async def _send_tx(
        self, station: PlannedStation, schedule: Schedule, evse_id: str, transaction_id: str
    ) -> bool:
        binding = station.state.evses[evse_id].binding
        result = await send_tx(
            self._commands, self._settings, station.state, schedule, evse_id, transaction_id
        )
        if result.accepted:
            station.state.hold(evse_id, schedule, transaction_id, self._clock())
            logger.debug(
                "charger %s: Tx profile for EVSE %d accepted", binding.charger_id, binding.ocpp_evse_id
            )
            return True
        log_refusal(result, binding.ocpp_evse_id, "Tx profile", "re-sending once")
        station.retrying.add(evse_id)
        self._spawn(self._retry_tx(station, evse_id, transaction_id), f"retry-{binding.charger_id}")
        return False

    async def _retry_tx(self, station: PlannedStation, evse_id: str, transaction_id: str) -> None:
        try:
            await asyncio.sleep(self._settings.retry_backoff_s)
            resend = self._resend_tx(station, evse_id, transaction_id)
            detail = None if resend is None else await resend
        finally:
            station.retrying.discard(evse_id)
        self._add(station, TriggerKind.PROFILE_REJECTED, detail or f"{evse_id} re-send dropped")

    def _resend_tx(
        self, station: PlannedStation, evse_id: str, transaction_id: str
    ) -> Coroutine[Any, Any, str] | None:
        """The re-send of the latest plan's profile, unless the session or its plan is gone."""
        evse = station.state.evses[evse_id]
        schedule = station.schedule
        if evse.session is None or evse.session.transaction_id != transaction_id:
            return None
        if schedule is None or evse_id not in schedule.evse_ids:
            return None
        at = self._clock()
        return resend_tx(self._commands, self._settings, station.state, schedule, evse_id, transaction_id, at)
