"""Domain events: what a charger told us, in one vocabulary for OCPP 1.6 and 2.0.1.

Addressing: an EVSE is the unit that charges one vehicle (a 1.6 ``connectorId`` maps to
``evse_id`` with ``connector_id`` 1); ``evse_id`` 0 means the whole charger.
Energy in Wh, power in W, current in A, time tz-aware UTC.
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
    charger_id: str
    transaction_id: str
    ended_at: datetime
    meter_stop_wh: float | None
    reason: str | None
    id_token: IdToken | None
    message_id: str


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


DomainEvent = (
    ChargerBooted
    | ChargerConnectionChanged
    | ConnectorStatusChanged
    | MeterSample
    | TransactionStarted
    | TransactionEnded
    | TransactionEventReceived
    | ChargingNeeds
    | ReservationStatusChanged
    | FirmwareStatusChanged
    | DiagnosticsStatusChanged
    | SecurityEventReported
    | DataTransferReceived
)
