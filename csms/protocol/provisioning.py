"""Provisioning and availability: BootNotification, Heartbeat, StatusNotification (1.6 and 2.0.1)."""

from __future__ import annotations

from typing import Any

from csms.domain.events import ChargerBooted, ConnectorStatus, ConnectorStatusChanged, RegistrationStatus
from csms.domain.service import ChargingService
from csms.errors import CallRefusedError, OcppProtocolError, RpcErrorKind
from csms.protocol.convert import format_timestamp, parse_timestamp
from csms.protocol.router import IncomingCall, handles

_V16_STATUS = {
    "Available": ConnectorStatus.AVAILABLE,
    "Preparing": ConnectorStatus.OCCUPIED,
    "Charging": ConnectorStatus.OCCUPIED,
    "SuspendedEVSE": ConnectorStatus.OCCUPIED,
    "SuspendedEV": ConnectorStatus.OCCUPIED,
    "Finishing": ConnectorStatus.OCCUPIED,
    "Reserved": ConnectorStatus.RESERVED,
    "Unavailable": ConnectorStatus.UNAVAILABLE,
    "Faulted": ConnectorStatus.FAULTED,
}


# 2.0.1 TriggerMessage names of messages whose action is named differently.
_TRIGGERED_ACTION = {
    "SignChargingStationCertificate": "SignCertificate",
    "SignV2GCertificate": "SignCertificate",
    "SignCombinedCertificate": "SignCertificate",
}

# 2.0.1 requests of ours and the message that brings the charger's answer in.
_ANSWERED_BY = {
    "GetBaseReport": "NotifyReport",  # B02.FR.09
    "GetReport": "NotifyReport",  # B02.FR.09
    "GetMonitoringReport": "NotifyMonitoringReport",
    "GetChargingProfiles": "ReportChargingProfiles",
    "GetDisplayMessages": "NotifyDisplayMessages",
    "CustomerInformation": "NotifyCustomerInformation",
}


# Requests of ours never sent to a charger answered Pending: 1.6 §4.2 forbids them; a Pending
# 2.0.1 station answers them Rejected (B02.FR.05).
NOT_SENT_WHILE_PENDING_V16 = frozenset({"RemoteStartTransaction", "RemoteStopTransaction"})
NOT_SENT_WHILE_PENDING_V201 = frozenset({"RequestStartTransaction", "RequestStopTransaction"})


class BootGate:
    """Refuses requests while the charger's last BootNotification answer is a blocking status.

    2.0.1 answers any other request with SecurityError (B02.FR.09 Pending, B03.FR.07 Rejected),
    except, while Pending, what the CSMS asked for on this connection: the message a TriggerMessage
    requested, NotifyReport after GetBaseReport/GetReport (B02.FR.09), and the message that
    answers another request of ours (NotifyMonitoringReport after GetMonitoringReport, ...: a
    station should not send those while Pending, but they are what we asked for). 1.6 lets a
    Pending charger send requests, so only Rejected blocks there. The gate starts from the status
    the charger was last answered (``status``: reconnecting does not lift it); a charger never
    answered is not blocked.

    It also keeps our CALLs in line: while Pending, the actions ``not_sent_while_pending`` are
    refused before they are sent (the remote start and stop: 1.6 §4.2; 2.0.1 B02, a Pending
    station answers them Rejected, B02.FR.05); while Rejected, everything but a TriggerMessage for
    a BootNotification (2.0.1 B03.FR.08; a Rejected 1.6 charger answers nothing, §4.2).
    """

    def __init__(
        self,
        blocking: frozenset[RegistrationStatus],
        status: RegistrationStatus | None = None,
        *,
        not_sent_while_pending: frozenset[str] = frozenset(),
    ) -> None:
        self._blocking = blocking
        self._status = status
        self._not_sent_while_pending = not_sent_while_pending
        self._requested: set[str] = set()

    def answered(self, status: RegistrationStatus) -> None:
        """The charger's BootNotification was answered with ``status``."""
        self._status = status
        self._requested.clear()

    def note_sent(self, action: str, payload: dict[str, Any]) -> None:
        """Remember which messages a CALL to the charger asks it to send."""
        if action == "TriggerMessage":
            requested = str(payload.get("requestedMessage"))
            self._requested.add(_TRIGGERED_ACTION.get(requested, requested))
        elif action in _ANSWERED_BY:
            self._requested.add(_ANSWERED_BY[action])

    def check_send(self, action: str, payload: dict[str, Any]) -> None:
        """Refuse (CallRefusedError) a CALL of ours the charger may not be sent in its registration."""
        if self._status is RegistrationStatus.PENDING and action in self._not_sent_while_pending:
            raise CallRefusedError(f"registration is Pending: {action} is not sent before it is Accepted")
        if self._status is RegistrationStatus.REJECTED and not (
            action == "TriggerMessage" and payload.get("requestedMessage") == "BootNotification"
        ):
            raise CallRefusedError(f"registration is Rejected: {action} is not sent")

    def check(self, action: str) -> None:
        if action == "BootNotification" or self._status not in self._blocking:
            return
        if self._status is RegistrationStatus.PENDING and action in self._requested:
            return
        assert self._status is not None
        raise OcppProtocolError(
            RpcErrorKind.SECURITY_ERROR,
            f"registration is {self._status.value}: only BootNotification is accepted",
        )


class _Provisioning:
    """What both versions share: the boot decision's answer and Heartbeat."""

    def __init__(self, service: ChargingService, gate: BootGate) -> None:
        self._service = service
        self._gate = gate

    async def _booted(self, call: IncomingCall, boot: ChargerBooted) -> dict[str, Any]:
        decision = await self._service.charger_booted(boot)
        self._gate.answered(decision.status)
        return {
            "status": decision.status.value,
            "currentTime": format_timestamp(call.received_at),
            "interval": decision.interval_s,
        }

    @handles("Heartbeat")
    async def heartbeat(self, call: IncomingCall) -> dict[str, Any]:
        await self._service.heartbeat(call.charger_id, call.received_at)
        return {"currentTime": format_timestamp(call.received_at)}


class ProvisioningV16(_Provisioning):
    @handles("BootNotification")
    async def boot_notification(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        boot = ChargerBooted(
            charger_id=call.charger_id,
            vendor=p["chargePointVendor"],
            model=p["chargePointModel"],
            serial_number=p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber"),
            firmware_version=p.get("firmwareVersion"),
            reason=None,
            at=call.received_at,
        )
        return await self._booted(call, boot)

    @handles("StatusNotification")
    async def status_notification(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        error_code = p["errorCode"]
        change = ConnectorStatusChanged(
            charger_id=call.charger_id,
            evse_id=p["connectorId"],
            connector_id=0 if p["connectorId"] == 0 else 1,
            status=_V16_STATUS[p["status"]],
            ocpp_status=p["status"],
            error_code=None if error_code == "NoError" else error_code,
            at=parse_timestamp(p["timestamp"]) if "timestamp" in p else call.received_at,
        )
        await self._service.connector_status_changed(change)
        return {}


class ProvisioningV201(_Provisioning):
    @handles("BootNotification")
    async def boot_notification(self, call: IncomingCall) -> dict[str, Any]:
        station = call.payload["chargingStation"]
        boot = ChargerBooted(
            charger_id=call.charger_id,
            vendor=station["vendorName"],
            model=station["model"],
            serial_number=station.get("serialNumber"),
            firmware_version=station.get("firmwareVersion"),
            reason=call.payload["reason"],
            at=call.received_at,
        )
        return await self._booted(call, boot)

    @handles("StatusNotification")
    async def status_notification(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        change = ConnectorStatusChanged(
            charger_id=call.charger_id,
            evse_id=p["evseId"],
            connector_id=p["connectorId"],
            status=ConnectorStatus(p["connectorStatus"]),
            ocpp_status=p["connectorStatus"],
            error_code=None,
            at=parse_timestamp(p["timestamp"]),
        )
        await self._service.connector_status_changed(change)
        return {}
