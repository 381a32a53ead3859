"""Provisioning and availability: BootNotification, Heartbeat, StatusNotification (1.6 and 2.0.1)."""

from __future__ import annotations

from typing import Any

from csms.domain.events import ChargerBooted, ConnectorStatus, ConnectorStatusChanged, RegistrationStatus
from csms.domain.service import ChargingService
from csms.errors import OcppProtocolError, RpcErrorKind
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


class BootGate:
    """Refuses requests after this connection's BootNotification was answered with a blocking status.

    2.0.1 (use cases B02 Pending, B03 Rejected) answers any other request with SecurityError;
    1.6 lets a Pending charger send requests, so only Rejected blocks there. A charger that reconnects without
    booting again is not blocked (it was never answered on this connection).
    """

    def __init__(self, blocking: frozenset[RegistrationStatus]) -> None:
        self._blocking = blocking
        self.status: RegistrationStatus | None = None

    def check(self, action: str) -> None:
        if action != "BootNotification" and self.status in self._blocking:
            assert self.status is not None
            raise OcppProtocolError(
                RpcErrorKind.SECURITY_ERROR,
                f"registration is {self.status.value}: only BootNotification is accepted",
            )


class _Provisioning:
    """What both versions share: the boot decision's answer and Heartbeat."""

    def __init__(self, service: ChargingService, gate: BootGate) -> None:
        self._service = service
        self._gate = gate

    async def _booted(self, call: IncomingCall, boot: ChargerBooted) -> dict[str, Any]:
        decision = await self._service.charger_booted(boot)
        self._gate.status = decision.status
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
