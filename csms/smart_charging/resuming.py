"""Transactions the smart-charging loop did not see start, resumed from the transactions store.

The loop knows a charging session from its TransactionStarted event. Where it missed that event,
:func:`resume_transaction` tells it the same: a TransactionStarted with the stored start time and
meter start (the time of the resume when the store has no start), then the transaction's latest
energy register reading, so the energy the car already got counts. It is called

- by a node taking a station over (:mod:`csms.smart_charging.ownership`), for the transactions
  live state names;
- at a single node's start, for the transactions still open in PostgreSQL
  (:mod:`csms.smart_charging.restart`);
- by :class:`MissedStarts`, the safety net for a start the loop never heard (a lost message, a
  restart between the charger's start and our storing it): the first meter sample naming an open
  transaction on an EVSE the loop thinks idle resumes it, once per transaction.

At start and in the safety net, a transaction that started more than :data:`MAX_OPEN_AGE` ago is
not resumed (and logged): a charger that never sent the end is not a car that is still there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from csms.domain.events import DomainEvent, MeterSample, TransactionStarted
from csms.protocol.session import utc_now
from csms.storage.transactions import TransactionRecord, TransactionRepository

logger = logging.getLogger(__name__)

MAX_OPEN_AGE = timedelta(hours=72)
"""How long ago an open transaction may have started and still be taken for a car at the EVSE."""


class EventSink(Protocol):
    """What hears the resumed transaction's events: the smart-charging loop."""

    async def on_event(self, event: DomainEvent) -> None: ...


def too_old(record: TransactionRecord, now: datetime, max_age: timedelta = MAX_OPEN_AGE) -> bool:
    """Whether ``record`` started longer than ``max_age`` before ``now`` (logged when it did)."""
    if record.started_at is None or record.started_at >= now - max_age:
        return False
    logger.warning(
        "charger %s: transaction %s on EVSE %s open since %s, over %.0f h: not planned (its end never came?)",
        record.charger_id,
        record.transaction_id,
        record.evse_id,
        record.started_at.isoformat(),
        max_age.total_seconds() / 3600,
    )
    return True


async def resume_transaction(
    loop: EventSink,
    transactions: TransactionRepository,
    charger_id: str,
    evse_id: int,
    transaction_id: str,
    now: datetime,
    *,
    why: str,
    record: TransactionRecord | None = None,
) -> None:
    """Tell ``loop`` of ``transaction_id`` running on ``evse_id`` (OCPP EVSE id) of ``charger_id``.

    ``record`` is the stored transaction when the caller has read it already (else it is read
    here); ``why`` says who resumes it (the event's message id, and the log line).
    """
    if record is None:
        record = await transactions.get(charger_id, transaction_id)
    started_at = record.started_at if record is not None and record.started_at is not None else now
    await loop.on_event(
        TransactionStarted(
            charger_id=charger_id,
            evse_id=evse_id,
            connector_id=1,
            transaction_id=transaction_id,
            id_token=None,
            meter_start_wh=None if record is None else record.meter_start_wh,
            started_at=started_at,
            message_id=why,
        )
    )
    energy = await transactions.latest_energy(charger_id, transaction_id)
    if energy is not None:
        await loop.on_event(energy)
    logger.info(
        "charger %s: transaction %s on EVSE %d resumed (%s), started %s, %s",
        charger_id,
        transaction_id,
        evse_id,
        why,
        started_at.isoformat(),
        "no energy reading yet" if energy is None else f"energy register {energy.value:.0f} Wh",
    )


class MissedStarts:
    """The safety net: resumes an open transaction whose meter sample reaches an EVSE the loop
    thinks idle. Each transaction is looked up at most once (the latest ``remembered`` ones are
    remembered), so the readings of an ended one cost one query, and a car the loop saw leave
    (its connector Available) is not brought back by a late reading."""

    def __init__(
        self,
        transactions: TransactionRepository,
        *,
        clock: Callable[[], datetime] = utc_now,
        max_age: timedelta = MAX_OPEN_AGE,
        remembered: int = 10_000,
    ) -> None:
        self._transactions = transactions
        self._clock = clock
        self._max_age = max_age
        self._remembered = remembered
        self._seen: dict[tuple[str, str], None] = {}  # (charger, transaction), oldest first

    def note(self, charger_id: str, transaction_id: str) -> bool:
        """Remember a transaction as resumed or looked up; whether it is new."""
        key = (charger_id, transaction_id)
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._remembered:
            del self._seen[next(iter(self._seen))]
        return True

    async def idle_sample(self, loop: EventSink, sample: MeterSample) -> None:
        """``sample`` reached an EVSE ``loop`` thinks idle: resume the transaction it names, if the
        store has it open. Runs inline in the sample's handler (one query, once per transaction)."""
        transaction_id = sample.transaction_id
        if transaction_id is None or not self.note(sample.charger_id, transaction_id):
            return
        record = await self._transactions.get(sample.charger_id, transaction_id)
        if record is None or record.ended_at is not None:
            return
        now = self._clock()
        if too_old(record, now, self._max_age):
            return
        logger.warning(
            "charger %s: EVSE %d reports transaction %s, whose start the planner never heard",
            sample.charger_id,
            sample.evse_id,
            transaction_id,
        )
        await resume_transaction(
            loop,
            self._transactions,
            sample.charger_id,
            sample.evse_id,
            transaction_id,
            now,
            why="missed start",
            record=record,
        )
