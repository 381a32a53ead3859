"""The charging service: acts on domain events by updating live state and storage.

Protocol handlers of both OCPP versions call it with domain events and translate its decisions
back to their version. Everything a charger is told (transaction ids, registration) is stored
before the method returns, so the answer is only sent once it is durable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from csms.domain.events import (
    Authorization,
    AuthorizationStatus,
    ChargerBooted,
    ChargerConnectionChanged,
    ChargingLimitCleared,
    ChargingLimitSet,
    ChargingNeeds,
    ConnectorStatusChanged,
    DataTransferReceived,
    DeviceEventsReported,
    DeviceReportPart,
    DiagnosticsStatusChanged,
    DomainEvent,
    DriverNeeds,
    FirmwareStatusChanged,
    IdToken,
    MeterSample,
    RegistrationStatus,
    ReservationStatusChanged,
    SecurityEventReported,
    TransactionEnded,
    TransactionEventReceived,
    TransactionStarted,
)
from csms.live_state import ConnectorState, LiveState
from csms.storage.chargers import ChargerRepository
from csms.storage.device_model import DeviceModelRepository
from csms.storage.transactions import TransactionRepository

logger = logging.getLogger(__name__)

EventListener = Callable[[DomainEvent], Awaitable[None]]


class Authorizer(Protocol):
    """Decides whether an id token may charge (the sessions package provides the real one).

    The verdict carries what the charger is told with the status: until when it may keep the token
    in its authorization cache, and the token's group."""

    async def authorize(self, charger_id: str, id_token: IdToken) -> Authorization: ...


ACCEPTED = Authorization(AuthorizationStatus.ACCEPTED)


class AcceptAllAuthorizer:
    """Accepts every token: for stations with free charging and for development."""

    async def authorize(self, charger_id: str, id_token: IdToken) -> Authorization:
        """Always Accepted, with no end date and no group."""
        return ACCEPTED


@dataclass(frozen=True, slots=True)
class BootDecision:
    status: RegistrationStatus
    interval_s: int


@dataclass(frozen=True, slots=True)
class StartDecision:
    transaction_id: str
    authorization: Authorization | None
    replayed: bool


class ChargingService:
    """Domain operations for charger events; listeners receive every event after it is stored."""

    def __init__(
        self,
        chargers: ChargerRepository,
        transactions: TransactionRepository,
        live_state: LiveState,
        authorizer: Authorizer,
        *,
        device_model: DeviceModelRepository,
        heartbeat_interval_s: int,
        pending_retry_interval_s: int,
    ) -> None:
        self.chargers = chargers
        self.transactions = transactions
        self.device_model = device_model
        self.live_state = live_state
        self._authorizer = authorizer
        self._heartbeat_interval_s = heartbeat_interval_s
        self._pending_retry_interval_s = pending_retry_interval_s
        self._listeners: list[EventListener] = []

    def use_authorizer(self, authorizer: Authorizer) -> None:
        """Decide id tokens with ``authorizer`` (while the app is assembled, before it starts)."""
        self._authorizer = authorizer

    def subscribe(self, listener: EventListener) -> None:
        """Call ``listener`` with every domain event once it is stored."""
        self._listeners.append(listener)

    async def _publish(self, event: DomainEvent) -> None:
        for listener in self._listeners:
            await listener(event)

    async def charger_booted(self, boot: ChargerBooted) -> BootDecision:
        """Record the boot; the registry decides Accepted/Pending/Rejected."""
        status = await self.chargers.record_boot(boot) or RegistrationStatus.REJECTED
        await self.live_state.set_registration(boot.charger_id, status)
        await self.live_state.touch_heartbeat(boot.charger_id, boot.at)
        await self._publish(boot)
        logger.info("charger %s: booted (%s %s), %s", boot.charger_id, boot.vendor, boot.model, status.value)
        interval_s = (
            self._heartbeat_interval_s
            if status is RegistrationStatus.ACCEPTED
            else self._pending_retry_interval_s
        )
        return BootDecision(status, interval_s)

    async def connection_changed(self, change: ChargerConnectionChanged) -> None:
        """The charger's WebSocket opened or closed on this node."""
        await self.live_state.set_connected(change.charger_id, change.connected, change.at)
        await self._publish(change)

    async def heartbeat(self, charger_id: str, at: datetime) -> None:
        """Note that the charger is alive."""
        await self.live_state.touch_heartbeat(charger_id, at)

    async def connector_status_changed(self, change: ConnectorStatusChanged) -> None:
        """Keep the connector's status current."""
        state = ConnectorState(change.status, change.ocpp_status, change.error_code, change.at)
        await self.live_state.set_connector(change.charger_id, change.evse_id, change.connector_id, state)
        await self._publish(change)

    async def authorize(self, charger_id: str, id_token: IdToken) -> Authorization:
        """The authorizer's verdict on ``id_token``."""
        return await self._authorizer.authorize(charger_id, id_token)

    async def transaction_started(self, started: TransactionStarted) -> StartDecision:
        """Store a 1.6 start and assign its transaction id (the same id for a replay)."""
        authorization = await self._authorize_optional(started.charger_id, started.id_token)
        outcome = await self.transactions.start_v16(started)
        await self.live_state.set_active_transaction(
            started.charger_id, started.evse_id, outcome.transaction_id
        )
        if not outcome.replayed:
            await self._publish(started)
        logger.info(
            "charger %s: transaction %s started on EVSE %d%s",
            started.charger_id,
            outcome.transaction_id,
            started.evse_id,
            " (replay)" if outcome.replayed else "",
        )
        return StartDecision(outcome.transaction_id, authorization, outcome.replayed)

    async def transaction_ended(
        self, ended: TransactionEnded, evse_id: int | None, samples: Sequence[MeterSample]
    ) -> Authorization | None:
        """Close a 1.6 transaction with its final samples."""
        authorization = await self._authorize_optional(ended.charger_id, ended.id_token)
        found = await self.transactions.end_v16(ended, samples)
        if not found:
            logger.warning(
                "charger %s: stop for unknown transaction %s", ended.charger_id, ended.transaction_id
            )
        await self._clear_active(ended.charger_id, ended.transaction_id)
        await self._publish(ended)
        return authorization

    async def meter_sampled(self, samples: Sequence[MeterSample]) -> None:
        """Store meter samples."""
        await self.transactions.add_samples(samples)
        for sample in samples:
            await self._publish(sample)

    async def transaction_event(
        self,
        event: TransactionEventReceived,
        *,
        evse_id: int | None,
        id_token: IdToken | None,
        started: TransactionStarted | None,
        ended: TransactionEnded | None,
        samples: Sequence[MeterSample],
    ) -> Authorization | None:
        """Store a 2.0.1 TransactionEvent; a replayed seqNo changes nothing."""
        authorization = await self._authorize_optional(event.charger_id, id_token)
        fresh = await self.transactions.apply_event_v201(
            event, started, ended, samples, evse_id, authorized_by=event.id_token
        )
        if ended is not None:
            await self._clear_active(event.charger_id, event.transaction_id)
        elif evse_id is not None:
            await self.live_state.set_active_transaction(event.charger_id, evse_id, event.transaction_id)
        if not fresh:
            logger.info(
                "charger %s: transaction %s event %d replayed",
                event.charger_id,
                event.transaction_id,
                event.seq_no,
            )
            return authorization
        for domain_event in (started, event, *samples, ended):
            if domain_event is not None:
                await self._publish(domain_event)
        return authorization

    async def charging_needs(self, needs: ChargingNeeds) -> None:
        """Keep what the EV needs (energy, departure) for the solver."""
        await self.live_state.set_charging_needs(needs)
        await self._publish(needs)

    async def driver_needs(self, needs: DriverNeeds) -> None:
        """Keep what a driver asked for (energy, departure, tier) for the solver, on any node: the
        station's planner hears it like the charger's own events (across nodes through the fan-out)."""
        await self.live_state.set_driver_needs(needs)
        logger.info(
            "charger %s: driver needs for transaction %s on EVSE %d: %s kWh by %s, tier %s",
            needs.charger_id,
            needs.transaction_id,
            needs.evse_id,
            "?" if needs.energy_needed_kwh is None else f"{needs.energy_needed_kwh:g}",
            "?" if needs.departure is None else needs.departure.isoformat(),
            needs.tier or "-",
        )
        await self._publish(needs)

    async def reservation_status(self, change: ReservationStatusChanged) -> None:
        """The charger ended a reservation (expired or removed): the reservations' owner hears it."""
        logger.info(
            "charger %s: reservation %d %s", change.charger_id, change.reservation_id, change.status.lower()
        )
        await self._publish(change)

    async def firmware_status(self, change: FirmwareStatusChanged) -> None:
        await self.live_state.set_firmware_status(change.charger_id, change.status)
        await self._publish(change)

    async def diagnostics_status(self, change: DiagnosticsStatusChanged) -> None:
        await self.live_state.set_diagnostics_status(change.charger_id, change.status)
        await self._publish(change)

    async def security_event(self, report: SecurityEventReported) -> None:
        logger.warning(
            "charger %s: security event %s (%s)", report.charger_id, report.event_type, report.tech_info or ""
        )
        await self._publish(report)

    async def data_transfer(self, transfer: DataTransferReceived) -> bool:
        """Whether the vendor extension is known; none is yet, so the answer is always ``False``."""
        logger.info(
            "charger %s: data transfer from vendor %s (%s)",
            transfer.charger_id,
            transfer.vendor_id,
            transfer.message_id or "",
        )
        await self._publish(transfer)
        return False

    async def device_report(self, part: DeviceReportPart) -> None:
        """Store a NotifyReport part: the variables it reports replace what earlier reports said (and
        a complete FullInventory removes what it left out)."""
        stored = await self.device_model.store_report_part(part)
        logger.info(
            "charger %s: report %d part %d, %d variable attributes%s%s",
            part.charger_id,
            part.request_id,
            part.seq_no,
            len(part.variables),
            ", more to follow" if part.more else "",
            "" if stored.fresh else " (sent again, ignored)",
        )
        if stored.removed is not None:
            logger.info(
                "charger %s: full inventory %d complete, %d variable attributes it left out removed",
                part.charger_id,
                part.request_id,
                stored.removed,
            )
        if stored.fresh:
            await self._publish(part)

    async def device_events(self, reported: DeviceEventsReported) -> None:
        """Store the events of a NotifyEvent, where operators read them."""
        await self.device_model.store_events(reported)
        for event in reported.events:
            target = event.target
            logger.info(
                "charger %s: event %d %s %s.%s = %r%s",
                reported.charger_id,
                event.event_id,
                event.trigger,
                target.component,
                target.variable,
                event.actual_value,
                " (cleared)" if event.cleared else "",
            )
        await self._publish(reported)

    async def charging_limit_set(self, limit: ChargingLimitSet) -> None:
        """An external system limits the charger (an EVSE of it, or all): keep it for the planner."""
        await self.live_state.set_charging_limit(limit)
        logger.info(
            "charger %s: external limit from %s on EVSE %d%s, %d schedules",
            limit.charger_id,
            limit.source,
            limit.evse_id,
            " (grid critical)" if limit.grid_critical else "",
            len(limit.schedules),
        )
        await self._publish(limit)

    async def charging_limit_cleared(self, cleared: ChargingLimitCleared) -> None:
        """The external system released its limit."""
        await self.live_state.clear_charging_limit(cleared)
        logger.info(
            "charger %s: external limit from %s on EVSE %d cleared",
            cleared.charger_id,
            cleared.source,
            cleared.evse_id,
        )
        await self._publish(cleared)

    async def _authorize_optional(self, charger_id: str, id_token: IdToken | None) -> Authorization | None:
        return None if id_token is None else await self._authorizer.authorize(charger_id, id_token)

    async def _clear_active(self, charger_id: str, transaction_id: str) -> None:
        state = await self.live_state.get(charger_id)
        if state is None:
            return
        for evse_id, active in state.active_transactions.items():
            if active == transaction_id:
                await self.live_state.set_active_transaction(charger_id, evse_id, None)
