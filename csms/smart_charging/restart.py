"""A single node's start: what PostgreSQL knows of the stations' chargers, given back to the loop.

Without Redis, live state lives in the process and a restart (crash, deploy) forgets it, while
cars go on charging under the profiles their chargers hold. Before the loop's first solve,
:func:`resume_at_start` gives it back what the store knows:

- every transaction still open on the stations' chargers (started, not ended) is resumed
  (:func:`~csms.smart_charging.resuming.resume_transaction`: its start, meter start and latest
  energy reading) and live state names it the EVSE's active transaction again. One that started
  more than :data:`~csms.smart_charging.resuming.MAX_OPEN_AGE` ago is logged and left out, and of
  two open on one EVSE only the later is resumed;
- the registration status of the chargers that booted before (what the registry answers their
  BootNotification) goes back to live state: a charger reconnecting without booting again is
  gated as before (``BootGate``) and counts as accepted.

Nothing else: external limits (NotifyChargingLimit) and the EVs' charging needs
(NotifyEVChargingNeeds) are kept in live state only and come back when the charger sends them
again; drivers' needs are sent again by the sessions package (:mod:`sessions.needs`).

Real chargers reconnect after a CSMS outage without a BootNotification. :class:`Reconnections`
gives a station's charger, when it first connects after the start, what a boot gives it: its
failsafe again (the loop no longer knows what it holds) and a new Tx profile for its session; the
profiles sent to it before it came back could not reach it, so its sessions are planned under
control again instead of at their maximum.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from csms.domain.events import ChargerBooted, ChargerConnectionChanged, DomainEvent, RegistrationStatus
from csms.live_state import LiveState
from csms.smart_charging.loop import SmartChargingLoop
from csms.smart_charging.resuming import MissedStarts, resume_transaction, too_old
from csms.smart_charging.setup import StationSetup
from csms.storage.chargers import ChargerRepository
from csms.storage.transactions import TransactionRecord, TransactionRepository

logger = logging.getLogger(__name__)


def charger_ids(stations: Iterable[StationSetup]) -> tuple[str, ...]:
    """The chargers of ``stations``, each once, sorted."""
    return tuple(sorted({b.charger_id for setup in stations for b in setup.evses}))


async def resume_at_start(
    loop: SmartChargingLoop,
    stations: Sequence[StationSetup],
    *,
    transactions: TransactionRepository,
    chargers: ChargerRepository,
    live_state: LiveState,
    missed_starts: MissedStarts,
    now: datetime,
) -> int:
    """Give ``loop`` and ``live_state`` back what the store knows of the chargers of ``stations``;
    how many transactions were resumed. ``missed_starts`` notes them (its safety net leaves them)."""
    chosen = charger_ids(stations)
    for charger_id, status in (await chargers.booted_registrations(chosen)).items():
        await live_state.set_registration(charger_id, status)
    running: dict[tuple[str, int], TransactionRecord] = {}
    for record in await transactions.open_on(chosen):  # oldest first: a later one replaces it
        if record.evse_id is None or too_old(record, now):
            continue
        earlier = running.get((record.charger_id, record.evse_id))
        if earlier is not None:
            logger.warning(
                "charger %s: transaction %s on EVSE %d never ended, %s started there after it: not planned",
                record.charger_id,
                earlier.transaction_id,
                record.evse_id,
                record.transaction_id,
            )
        running[(record.charger_id, record.evse_id)] = record
    for (charger_id, evse_id), record in running.items():
        missed_starts.note(charger_id, record.transaction_id)
        await live_state.set_active_transaction(charger_id, evse_id, record.transaction_id)
        await resume_transaction(
            loop, transactions, charger_id, evse_id, record.transaction_id, now, why="restart", record=record
        )
    logger.info("smart charging: %d running transactions resumed from the store", len(running))
    return len(running)


class Reconnections:
    """A station's charger connecting for the first time since the start, registered as accepted,
    gets a boot's treatment in the loop; subscribe :meth:`on_event` to the charging service after
    the loop."""

    def __init__(
        self, loop: SmartChargingLoop, stations: Iterable[StationSetup], live_state: LiveState
    ) -> None:
        self._loop = loop
        self._live_state = live_state
        self._away = set(charger_ids(stations))  # not connected since the start

    async def on_event(self, event: DomainEvent) -> None:
        if not isinstance(event, ChargerConnectionChanged) or not event.connected:
            return
        if event.charger_id not in self._away:
            return
        self._away.discard(event.charger_id)
        charger = await self._live_state.get(event.charger_id)
        if charger is None or charger.registration is not RegistrationStatus.ACCEPTED:
            return  # never booted, or not accepted: its BootNotification comes first
        for station_id in self._loop.station_ids:
            self._loop.state(station_id).reachable_again(event.charger_id)
        logger.info(
            "charger %s: back without a boot since the start; its profiles are sent again", event.charger_id
        )
        await self._loop.on_event(
            ChargerBooted(event.charger_id, "", "", None, None, "first connection since the start", event.at)
        )
