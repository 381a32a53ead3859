"""Domain events: what a charger told us, in one vocabulary for OCPP 1.6 and 2.0.1.

Addressing: an EVSE is the unit that charges one vehicle (a 1.6 ``connectorId`` maps to
``evse_id`` with ``connector_id`` 1); ``evse_id`` 0 means the whole charger.
Energy in Wh, power in W, current in A, time tz-aware UTC.

The device model (2.0.1 reports and events about components and variables) and the external
charging limits a charger reports (K11-K13) have no 1.6 counterpart; their types are here too,
so that live state, storage and the smart-charging loop share one vocabulary for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class RegistrationStatus(Enum):
    """The answer to a BootNotification (same names in 1.6 and 2.0.1)."""

    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class ConnectorStatus(Enum):
    """Connector availability as 2.0.1 names it; 1.6 occupied states map to OCCUPIED."""

    AVAILABLE = "Available"
    OCCUPIED = "Occupied"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class AuthorizationStatus(Enum):
    """The verdict on an id token (2.0.1 names; 1.6 translates the ones it lacks to Invalid)."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    CONCURRENT_TX = "ConcurrentTx"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    NO_CREDIT = "NoCredit"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class IdToken:
    """An identifier presented to start or stop charging; ``token_type`` is None for a 1.6 idTag."""

    value: str
    token_type: str | None = None


@dataclass(frozen=True, slots=True)
class Authorization:
    """The verdict on an id token, as a charger is told it (1.6 ``IdTagInfo``, 2.0.1 ``IdTokenInfoType``).

    ``expires_at`` is when the charger must drop the token from its authorization cache (1.6
    ``expiryDate``, 2.0.1 ``cacheExpiryDateTime``); ``None``: the verdict has no end date.
    ``group_id_token`` is the token's group (1.6 ``parentIdTag``, 2.0.1 ``groupIdToken``): a
    charger lets any token of the group stop a transaction another one started (2.0.1 C09).
    """

    status: AuthorizationStatus
    expires_at: datetime | None = None
    group_id_token: IdToken | None = None

    @property
    def accepted(self) -> bool:
        return self.status is AuthorizationStatus.ACCEPTED


@dataclass(frozen=True, slots=True)
class ChargerBooted:
    charger_id: str
    vendor: str
    model: str
    serial_number: str | None
    firmware_version: str | None
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class ChargerConnectionChanged:
    """The charger's WebSocket opened (``connected``) or closed: drivers see it offline at once."""

    charger_id: str
    connected: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class ConnectorStatusChanged:
    charger_id: str
    evse_id: int
    connector_id: int
    status: ConnectorStatus
    ocpp_status: str
    error_code: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One measured value, scaled to its base unit (Wh, W, A, V, Percent, ...)."""

    charger_id: str
    evse_id: int
    transaction_id: str | None
    sampled_at: datetime
    measurand: str
    value: float
    unit: str
    phase: str | None
    location: str | None
    context: str | None


@dataclass(frozen=True, slots=True)
class TransactionStarted:
    """A charging session began; ``transaction_id`` is None in 1.6, where we assign it."""

    charger_id: str
    evse_id: int
    connector_id: int
    transaction_id: str | None
    id_token: IdToken | None
    meter_start_wh: float | None
    started_at: datetime
    message_id: str
    remote_start_id: int | None = None
    reservation_id: int | None = None
    offline: bool = False


@dataclass(frozen=True, slots=True)
class TransactionEnded:
    """A transaction ended. ``began_at`` and ``meter_start_wh`` are the start as the ending message
    itself tells it (2.0.1: the Ended event's ``Transaction.Begin`` reading; ``None`` in 1.6): the
    start of a transaction whose Started event never came (see :func:`csms.protocol.convert.begin_time`)."""

    charger_id: str
    transaction_id: str
    ended_at: datetime
    meter_stop_wh: float | None
    reason: str | None
    id_token: IdToken | None
    message_id: str
    began_at: datetime | None = None
    meter_start_wh: float | None = None


@dataclass(frozen=True, slots=True)
class TransactionEventReceived:
    """A 2.0.1 TransactionEvent as a whole: its ``seq_no`` makes replays detectable."""

    charger_id: str
    transaction_id: str
    seq_no: int
    event_type: str
    trigger_reason: str
    charging_state: str | None
    offline: bool
    at: datetime
    message_id: str
    evse_id: int | None = None
    """The EVSE the event names (its own ``evse``, else the transaction's stored one; ``None``: unknown
    yet). A Started event without ``evse`` opens the transaction on EVSE 0; a later event naming it
    fills it in (E01/E02)."""
    id_token: IdToken | None = None
    """The token that authorised the charge, when a Started or Updated event carries one (``None`` for
    Ended, whose token is the stop's): a station that starts on plug-in sends it later (E02, Updated
    with triggerReason Authorized)."""


@dataclass(frozen=True, slots=True)
class ChargingNeeds:
    """What an EV asked for (2.0.1 NotifyEVChargingNeeds), kept for the solver."""

    charger_id: str
    evse_id: int
    requested_energy_transfer: str
    energy_amount_wh: float | None
    departure_time: datetime | None
    ev_max_current_a: float | None
    ev_max_power_w: float | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DriverNeeds:
    """What the driver of a transaction asked for in the app, for the planner (not from the charger).

    Published by the sessions package through :meth:`ChargingService.driver_needs` whenever the
    session's transaction is known and whenever the driver changes them, always the whole of it:
    ``None`` is "not given" (the car's own needs or the station's defaults apply).
    ``energy_needed_kwh`` is the session's total [kWh]; ``tier`` is the driver's membership tier,
    which the station planning the EVSE turns into a priority weight.
    """

    charger_id: str
    evse_id: int
    transaction_id: str
    energy_needed_kwh: float | None
    departure: datetime | None
    tier: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class ReservationStatusChanged:
    """A 2.0.1 charger ended a reservation itself: ``status`` is ``Expired`` or ``Removed``."""

    charger_id: str
    reservation_id: int
    status: str
    at: datetime


@dataclass(frozen=True, slots=True)
class FirmwareStatusChanged:
    charger_id: str
    status: str
    request_id: int | None
    at: datetime


@dataclass(frozen=True, slots=True)
class DiagnosticsStatusChanged:
    """DiagnosticsStatusNotification (1.6) or LogStatusNotification (both)."""

    charger_id: str
    status: str
    request_id: int | None
    at: datetime


@dataclass(frozen=True, slots=True)
class SecurityEventReported:
    charger_id: str
    event_type: str
    tech_info: str | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class DataTransferReceived:
    charger_id: str
    vendor_id: str
    message_id: str | None
    data: str | None


@dataclass(frozen=True, slots=True)
class ComponentVariable:
    """A variable of a component of the 2.0.1 device model (``ComponentType`` + ``VariableType``).

    ``evse_id``/``connector_id`` are ``None`` when the component is not on an EVSE/connector;
    a missing instance is ``""`` (a missing instance and an empty one name the same variable).
    """

    component: str
    variable: str
    component_instance: str = ""
    variable_instance: str = ""
    evse_id: int | None = None
    connector_id: int | None = None


@dataclass(frozen=True, slots=True)
class ReportedVariable:
    """One attribute of a variable as a NotifyReport states it, with the variable's characteristics.

    ``attribute_type`` is ``Actual``, ``Target``, ``MinSet`` or ``MaxSet``; ``value`` is ``None``
    for a write-only variable. ``data_type`` is ``None`` when the report carried no
    ``variableCharacteristics`` (a ConfigurationInventory may leave them out).
    """

    target: ComponentVariable
    attribute_type: str = "Actual"
    value: str | None = None
    mutability: str = "ReadWrite"
    persistent: bool = False
    constant: bool = False
    data_type: str | None = None
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values_list: str | None = None
    supports_monitoring: bool | None = None


@dataclass(frozen=True, slots=True)
class DeviceReportPart:
    """One NotifyReport message: part ``seq_no`` (from 0) of report ``request_id``; ``more`` (tbc)
    says that further parts follow."""

    charger_id: str
    request_id: int
    seq_no: int
    more: bool
    generated_at: datetime
    variables: tuple[ReportedVariable, ...]
    message_id: str


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One ``EventDataType`` of a NotifyEvent: a monitored or hard-wired event on a variable.

    ``trigger``: ``Alerting`` (a threshold crossed, or a problem cleared: ``cleared``), ``Delta``
    or ``Periodic``; ``cause`` is the ``event_id`` of the event that caused this one.
    """

    event_id: int
    occurred_at: datetime
    trigger: str
    actual_value: str
    notification_type: str
    target: ComponentVariable
    cause: int | None = None
    tech_code: str | None = None
    tech_info: str | None = None
    cleared: bool | None = None
    transaction_id: str | None = None
    variable_monitoring_id: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceEventsReported:
    """One NotifyEvent message (part ``seq_no`` from 0; ``more``: further parts follow)."""

    charger_id: str
    generated_at: datetime
    seq_no: int
    more: bool
    events: tuple[DeviceEvent, ...]
    message_id: str


@dataclass(frozen=True, slots=True)
class LimitPeriod:
    """From ``start`` on, at most ``limit`` in its schedule's rate unit (A per phase, or W)."""

    start: datetime
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class LimitSchedule:
    """A charging schedule of an external limit, in absolute time.

    ``rate_unit`` is ``"A"`` (per phase) or ``"W"``; ``periods`` are in time order, the first
    starting where the schedule starts; ``end`` is ``None`` when the last period lasts.
    """

    schedule_id: int
    rate_unit: str
    periods: tuple[LimitPeriod, ...]
    end: datetime | None = None

    def limit_at(self, moment: datetime) -> float | None:
        """The limit in force at ``moment`` (``None`` before the start or from the end on)."""
        if not self.periods or moment < self.periods[0].start:
            return None
        if self.end is not None and moment >= self.end:
            return None
        limit = self.periods[0].limit
        for period in self.periods:
            if period.start > moment:
                break
            limit = period.limit
        return limit

    def lowest_between(self, start: datetime, end: datetime) -> float | None:
        """The lowest limit in force at any moment of ``[start, end)`` (``None``: none is)."""
        found: list[float] = []
        for index, period in enumerate(self.periods):
            until = self.periods[index + 1].start if index + 1 < len(self.periods) else self.end
            if self.end is not None and (until is None or until > self.end):
                until = self.end
            if until is not None and until <= period.start:
                continue  # the schedule ends before this period starts
            if period.start < end and (until is None or until > start):
                found.append(period.limit)
        return min(found) if found else None


@dataclass(frozen=True, slots=True)
class ChargingLimitSet:
    """NotifyChargingLimit: a limit an external system (``source``: EMS, SO, Other, CSO) put on
    an EVSE (``evse_id`` 0: on the whole charger, the total of its EVSEs).

    ``schedules`` may be empty (the charger need not say the limit itself); several apply at once.
    """

    charger_id: str
    evse_id: int
    source: str
    grid_critical: bool | None
    schedules: tuple[LimitSchedule, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class ChargingLimitCleared:
    """ClearedChargingLimit: ``source`` released its limit on ``evse_id`` (0: the whole charger)."""

    charger_id: str
    evse_id: int
    source: str
    at: datetime


DomainEvent = (
    ChargerBooted
    | ChargerConnectionChanged
    | ConnectorStatusChanged
    | MeterSample
    | TransactionStarted
    | TransactionEnded
    | TransactionEventReceived
    | ChargingNeeds
    | DriverNeeds
    | ReservationStatusChanged
    | FirmwareStatusChanged
    | DiagnosticsStatusChanged
    | SecurityEventReported
    | DataTransferReceived
    | DeviceReportPart
    | DeviceEventsReported
    | ChargingLimitSet
    | ChargingLimitCleared
)
