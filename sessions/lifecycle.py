"""The session lifecycle: ``INITIATED -> ACTIVE -> STOPPING -> COMPLETED``, plus ``FAILED``.

Driven from two sides. The API creates app sessions (INITIATED), sends the remote start and
stops them (STOPPING). The charger's domain events (heard from :class:`ChargingService` on the
node holding its socket) confirm them: a started transaction makes the matching app session
ACTIVE, or opens a session the charger started itself (RFID, free vend, Plug & Charge, offline);
meter samples become ``progress`` events; an ended transaction COMPLETES the session with its
final meter value. A start the charger refuses, or does not confirm within
``remote_start_timeout_s``, FAILS the session.

Every transition is stored with its event (:class:`SessionStore`), then delivered to this node's
live streams, to the subscribed listeners (billing, the solver) and, with Redis, to other nodes.
A session becoming ACTIVE first tells the planner its driver's needs and tier (``sessions.needs``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from csms.commands.results import CommandOutcome, CommandResult
from csms.domain.events import (
    ConnectorStatusChanged,
    DomainEvent,
    IdToken,
    MeterSample,
    TransactionEnded,
    TransactionEventReceived,
    TransactionStarted,
)
from csms.server import CsmsRuntime
from csms.smart_charging.state import ENERGY_REGISTER, POWER_IMPORT
from csms.tasks import TaskOwner
from sessions.estimates import Cost, estimate_cost
from sessions.estimates import snapshot as session_snapshot
from sessions.events import SessionEvent, SessionListener, SessionOrigin, SessionState
from sessions.late_events import LateEvents, driver_of, origin_of
from sessions.live import LiveHub, SessionEventRelay
from sessions.needs import tell_planner
from sessions.ports import CompletionSink
from sessions.session_store import Changes, NewSession, SessionRecord, SessionStore
from sessions.tariff_store import TariffStore
from tariffs.errors import TariffError

logger = logging.getLogger(__name__)

APP_TOKEN_PREFIX = "FW"
"""App sessions start with a token of their own (``FW`` + 18 hex digits, within 1.6's 20 characters)."""

_FAILURE_REASONS = {
    CommandOutcome.REJECTED: "the charger rejected the start request",
    CommandOutcome.TIMEOUT: "the charger did not answer the start request",
    CommandOutcome.NOT_CONNECTED: "the charger is not connected",
    CommandOutcome.CALL_ERROR: "the charger answered the start request with an error",
    CommandOutcome.NOT_SUPPORTED_BY_VERSION: "the charger cannot start a session remotely",
    CommandOutcome.NOT_REGISTERED: "the charger is not accepted by the network yet",
}


def new_app_token() -> str:
    return APP_TOKEN_PREFIX + uuid.uuid4().hex[:18].upper()


def failure_reason(result: CommandResult) -> str:
    reason = _FAILURE_REASONS.get(result.outcome, "the charger did not accept the start request")
    detail = result.status or result.error_code
    return f"{reason} ({detail})" if detail else reason


@dataclass
class _Reading:
    energy_wh: float | None = None
    power_w: float | None = None


class SessionLifecycle:
    """Owns every session transition in this node."""

    def __init__(
        self,
        store: SessionStore,
        csms: CsmsRuntime,
        tariffs: TariffStore,
        *,
        remote_start_timeout_s: float,
        listeners: Sequence[SessionListener],
        completion_sinks: Sequence[CompletionSink],
        hub: LiveHub,
        relay_channel: str = "sessions:events",
    ) -> None:
        self.store = store
        self.hub = hub
        self._csms = csms
        self._tariffs = tariffs
        self._timeout_s = remote_start_timeout_s
        self._listeners = listeners
        self._sinks = completion_sinks
        self._tasks = TaskOwner()
        self._pending: dict[tuple[str, str], _Reading] = {}
        self._late = LateEvents(store, csms)
        self._feeds: dict[int, asyncio.Queue[SessionEvent]] = {}
        """One queue and worker per listener: each hears events in the order they were stored here."""
        self._relay: SessionEventRelay | None = None
        node = csms.redis_node
        if node is not None:
            self._relay = SessionEventRelay(
                node.redis,
                csms.settings.redis_key_prefix + relay_channel,
                node.commands.node_id,
                self._delivered_from_elsewhere,
            )
        csms.service.subscribe(self.on_domain_event)

    async def start(self) -> None:
        """Listen to other nodes and resume the start timeouts of sessions still waiting."""
        if self._relay is not None:
            await self._relay.open(self._tasks)
        now = datetime.now(UTC)
        for record in await self.store.waiting_for_charger():
            elapsed_s = (now - record.created_at).total_seconds()
            self._schedule_timeout(record.session_id, max(0.0, self._timeout_s - elapsed_s))

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        if self._relay is not None:
            await self._relay.close()

    # -- publishing ------------------------------------------------------------------------------

    async def _published(self, event: SessionEvent) -> None:
        self._deliver_here(event)
        if event.kind == "state" and event.state is SessionState.COMPLETED:
            for sink in self._sinks:
                self._tasks.start(sink.session_completed(event.session_id), f"session-completed-{event.seq}")
        if self._relay is not None:
            await self._relay.publish(event)

    def _deliver_here(self, event: SessionEvent) -> None:
        self.hub.notify(event.session_id)
        for listener in self._listeners:
            feed = self._feeds.get(id(listener))
            if feed is None:
                feed = self._feeds[id(listener)] = asyncio.Queue()
                self._tasks.start(_feed(listener, feed), f"session-listener-{len(self._feeds)}")
            feed.put_nowait(event)

    async def _delivered_from_elsewhere(self, event: SessionEvent) -> None:
        self._deliver_here(event)

    # -- the API's side --------------------------------------------------------------------------

    async def created(self, event: SessionEvent) -> None:
        """Publish the INITIATED event of an app session the API just stored."""
        await self._published(event)

    def begin_remote_start(self, record: SessionRecord) -> None:
        """Send the remote start of a new app session and start its confirmation timeout."""
        self._tasks.start(self._send_remote_start(record), f"session-remote-start-{record.session_id}")
        self._schedule_timeout(record.session_id, self._timeout_s)

    async def _send_remote_start(self, record: SessionRecord) -> None:
        assert record.id_token is not None
        result = await self._csms.commands.remote_start(
            record.charger_id,
            record.evse_id,
            IdToken(record.id_token, "Central"),
            remote_start_id=record.remote_start_id,
        )
        if not result.accepted:
            logger.info(
                "charger %s: session %s not started: %s", record.charger_id, record.session_id, result
            )
            await self.fail(record.session_id, failure_reason(result))

    async def fail(self, session_id: str, reason: str) -> bool:
        """FAIL an INITIATED session (``False`` when it has moved on already)."""
        moved = await self.store.transition(
            session_id,
            SessionState.FAILED,
            [SessionState.INITIATED],
            Changes(failure_reason=reason),
            {"state": SessionState.FAILED.value, "reason": reason},
        )
        if moved is not None:
            await self._published(moved[1])
        return moved is not None

    def _schedule_timeout(self, session_id: str, delay_s: float) -> None:
        self._tasks.start(self._time_out(session_id, delay_s), f"session-start-timeout-{session_id}")

    async def _time_out(self, session_id: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if await self.fail(session_id, f"the charger did not start charging within {self._timeout_s:g} s"):
            return
        record = await self.store.get(session_id)
        if record is not None and record.state is SessionState.STOPPING and record.transaction_ref is None:
            await self._complete(record, Changes(ended_at=datetime.now(UTC)), "stopped before charging began")

    async def stop_session(self, record: SessionRecord) -> tuple[SessionRecord, CommandResult | None]:
        """The driver stops: STOPPING, then RemoteStop/RequestStop once the transaction is known.

        Stopping a session that is stopping already sends the stop again; stopping a finished one
        changes nothing.
        """
        if record.state in (SessionState.INITIATED, SessionState.ACTIVE):
            moved = await self.store.transition(
                record.session_id,
                SessionState.STOPPING,
                [record.state],
                Changes(),
                {**await self.snapshot(record), "state": SessionState.STOPPING.value, "reason": "driver"},
            )
            if moved is not None:
                await self._published(moved[1])
        current = await self.store.get(record.session_id) or record
        result = None
        if current.state is SessionState.STOPPING and current.transaction_id is not None:
            result = await self._csms.commands.remote_stop(current.charger_id, current.transaction_id)
            if not result.accepted:
                logger.warning(
                    "charger %s: stop of session %s not accepted: %s",
                    current.charger_id,
                    current.session_id,
                    result.outcome.value,
                )
        return current, result

    # -- the charger's side ----------------------------------------------------------------------

    async def on_domain_event(self, event: DomainEvent) -> None:
        """Listener of :class:`csms.domain.service.ChargingService` (events already stored)."""
        if isinstance(event, MeterSample):
            self._sampled(event)
        elif isinstance(event, TransactionStarted):
            await self._transaction_started(event)
        elif isinstance(event, TransactionEventReceived):
            await self._late.on_event(event)
        elif isinstance(event, TransactionEnded):
            await self._transaction_ended(event)
        elif isinstance(event, ConnectorStatusChanged):
            await self._status_changed(event)

    async def _transaction_started(self, started: TransactionStarted) -> None:
        row = await self._csms.database.pool.fetchrow(
            """SELECT id, transaction_id FROM transactions WHERE charger_id = $1 AND (
                   ($2::text IS NOT NULL AND transaction_id = $2)
                   OR ($2::text IS NULL AND ocpp_version = '1.6' AND evse_id = $3 AND started_at = $4))""",
            started.charger_id,
            started.transaction_id,
            started.evse_id,
            started.started_at,
        )
        if row is None:
            logger.warning("charger %s: started transaction not found in storage", started.charger_id)
            return
        transaction_id: str = row["transaction_id"]
        if await self.store.by_transaction(started.charger_id, transaction_id) is not None:
            return  # this transaction's session exists already (a replay, or a later event)
        priced = await self._tariffs.for_charger(started.charger_id)
        changes = Changes(
            transaction_ref=row["id"],
            transaction_id=transaction_id,
            meter_start_wh=started.meter_start_wh,
            started_at=started.started_at,
            reservation_id=started.reservation_id,
            offline=started.offline,
            tariff_id=priced.tariff_id if priced else None,
            time_zone=priced.time_zone if priced else None,
        )
        token = started.id_token.value if started.id_token else None
        waiting = await self.store.awaiting_start(
            started.charger_id, started.evse_id, token, started.remote_start_id
        )
        if waiting is not None and waiting.state is SessionState.INITIATED:
            data = {"state": SessionState.ACTIVE.value, "transaction_id": transaction_id}
            moved = await self.store.transition(
                waiting.session_id, SessionState.ACTIVE, [SessionState.INITIATED], changes, data
            )
            if moved is not None:
                logger.info("charger %s: session %s is active", started.charger_id, waiting.session_id)
                await tell_planner(self._csms, moved[0])
                await self._published(moved[1])
                return
        if waiting is not None and waiting.state is SessionState.STOPPING:
            attached = await self.store.attach_transaction(waiting.session_id, changes)
            if attached is not None:
                self._tasks.start(self._stop_late(attached), f"session-late-stop-{attached.session_id}")
                return
        driver_id = waiting.driver_id if waiting is not None else await self._driver_of(token)
        new = NewSession(
            driver_id=driver_id,
            charger_id=started.charger_id,
            evse_id=started.evse_id,
            connector_id=started.connector_id,
            state=SessionState.ACTIVE,
            origin=SessionOrigin.APP if waiting is not None else origin_of(started.id_token),
            id_token=token,
            reservation_id=started.reservation_id,
            transaction_ref=row["id"],
            transaction_id=transaction_id,
            tariff_id=changes.tariff_id,
            time_zone=changes.time_zone or "UTC",
            meter_start_wh=started.meter_start_wh,
            offline=started.offline,
            started_at=started.started_at,
        )
        created = await self.store.create(new, {"state": SessionState.ACTIVE.value})
        if created is not None:
            logger.info(
                "charger %s: session %s started at the charger (%s)",
                started.charger_id,
                created[0].session_id,
                new.origin.value,
            )
            await tell_planner(self._csms, created[0])  # the driver's tier; needs come by PATCH
            await self._published(created[1])

    async def _stop_late(self, record: SessionRecord) -> None:
        """The driver stopped before the charger started: stop the transaction it started now."""
        assert record.transaction_id is not None
        result = await self._csms.commands.remote_stop(record.charger_id, record.transaction_id)
        if not result.accepted:
            logger.warning("charger %s: late stop of %s: %s", record.charger_id, record.session_id, result)

    async def _driver_of(self, id_token: str | None) -> str | None:
        return await driver_of(self._csms.database, id_token)

    async def _transaction_ended(self, ended: TransactionEnded) -> None:
        self._late.forget(ended.charger_id, ended.transaction_id)
        await self._flush((ended.charger_id, ended.transaction_id))
        record = await self.store.by_transaction(ended.charger_id, ended.transaction_id)
        changes = Changes(meter_stop_wh=ended.meter_stop_wh, ended_at=ended.ended_at)
        if record is None:
            await self._ended_unseen(ended)
            return
        if not record.state.final:
            await self._complete(record, changes, ended.reason)

    async def _complete(self, record: SessionRecord, changes: Changes, reason: str | None) -> None:
        final = replace(
            record,
            state=SessionState.COMPLETED,
            meter_stop_wh=record.meter_stop_wh if record.meter_stop_wh is not None else changes.meter_stop_wh,
            ended_at=record.ended_at or changes.ended_at,
            power_w=0.0,
        )
        data = {**await self.snapshot(final), "reason": reason}
        moved = await self.store.transition(
            record.session_id,
            SessionState.COMPLETED,
            [SessionState.ACTIVE, SessionState.STOPPING],
            changes,
            data,
        )
        if moved is not None:
            logger.info(
                "charger %s: session %s completed, %.0f Wh",
                record.charger_id,
                record.session_id,
                final.energy_wh,
            )
            await self._published(moved[1])

    async def _ended_unseen(self, ended: TransactionEnded) -> None:
        """A transaction reported only when it ended (offline): its session enters at COMPLETED."""
        transaction = await self._csms.transactions.get(ended.charger_id, ended.transaction_id)
        row = await self._csms.database.pool.fetchval(
            "SELECT id FROM transactions WHERE charger_id = $1 AND transaction_id = $2",
            ended.charger_id,
            ended.transaction_id,
        )
        if transaction is None or row is None:
            logger.warning("charger %s: ended transaction %s unknown", ended.charger_id, ended.transaction_id)
            return
        priced = await self._tariffs.for_charger(ended.charger_id)
        token = transaction.id_token or (ended.id_token.value if ended.id_token else None)
        new = NewSession(
            driver_id=await self._driver_of(token),
            charger_id=ended.charger_id,
            evse_id=transaction.evse_id or 0,
            state=SessionState.COMPLETED,
            origin=origin_of(ended.id_token or (IdToken(token) if token else None)),
            id_token=token,
            transaction_ref=row,
            transaction_id=ended.transaction_id,
            tariff_id=priced.tariff_id if priced else None,
            time_zone=priced.time_zone if priced else "UTC",
            meter_start_wh=transaction.meter_start_wh,
            meter_stop_wh=transaction.meter_stop_wh,
            offline=True,
            started_at=transaction.started_at or ended.ended_at,
            ended_at=transaction.ended_at or ended.ended_at,
        )
        created = await self.store.create(new, {"state": SessionState.COMPLETED.value, "offline": True})
        if created is not None:
            await self._published(created[1])

    def _sampled(self, sample: MeterSample) -> None:
        """Coalesce one message's samples into one progress event (written once the handler yields)."""
        if sample.transaction_id is None or sample.phase is not None:
            return
        if sample.measurand not in (ENERGY_REGISTER, POWER_IMPORT):
            return
        key = (sample.charger_id, sample.transaction_id)
        reading = self._pending.get(key)
        if reading is None:
            reading = self._pending[key] = _Reading()
            self._tasks.start(self._flush(key), f"session-progress-{sample.charger_id}")
        if sample.measurand == ENERGY_REGISTER:
            reading.energy_wh = sample.value
        else:
            reading.power_w = sample.value

    async def _flush(self, key: tuple[str, str]) -> None:
        reading = self._pending.pop(key, None)
        if reading is None:
            return
        record = await self.store.by_transaction(*key)
        if record is None or record.state.final:
            return
        current = replace(
            record,
            meter_last_wh=reading.energy_wh if reading.energy_wh is not None else record.meter_last_wh,
            power_w=reading.power_w if reading.power_w is not None else record.power_w,
        )
        if current.meter_start_wh is None:
            current = replace(current, meter_start_wh=reading.energy_wh)
        event = await self.store.record_progress(
            record.session_id, reading.energy_wh, reading.power_w, await self.snapshot(current)
        )
        if event is not None:
            await self._published(event)

    async def _status_changed(self, change: ConnectorStatusChanged) -> None:
        if change.evse_id == 0:
            return
        record = await self.store.open_on_evse(change.charger_id, change.evse_id)
        if record is None:
            return
        data = {**await self.snapshot(record), "charger_status": change.ocpp_status}
        event = await self.store.record_progress(record.session_id, None, None, data)
        if event is not None:
            await self._published(event)

    # -- reading ---------------------------------------------------------------------------------

    async def cost(self, record: SessionRecord, now: datetime | None = None) -> Cost | None:
        """What the session costs so far under the tariff in force when it started (None: no tariff)."""
        if record.tariff_id is None or record.started_at is None:
            return None
        versions = await self._tariffs.versions(record.tariff_id)
        if versions is None:
            return None
        try:
            return estimate_cost(record, versions, now or datetime.now(UTC))
        except TariffError as exc:
            logger.warning("session %s: no cost estimate: %s", record.session_id, exc)
            return None

    async def snapshot(self, record: SessionRecord, now: datetime | None = None) -> dict[str, Any]:
        """The session as the API and live events show it (see :func:`sessions.estimates.snapshot`)."""
        at = now or datetime.now(UTC)
        return session_snapshot(record, await self.cost(record, at), at)


async def _feed(listener: SessionListener, events: asyncio.Queue[SessionEvent]) -> None:
    """Hand ``events`` to ``listener`` one at a time, in order; a failing call is logged and skipped."""
    while True:
        event = await events.get()
        try:
            await listener(event)
        except Exception:
            # The outermost handler of another package's listener: log it and keep the feed going.
            logger.exception("session %s: a listener failed on event %d", event.session_id, event.seq)
