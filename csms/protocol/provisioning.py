"""Provisioning and availability: BootNotification, Heartbeat, StatusNotification (1.6 and 2.0.1)."""

from __future__ import annotations

from typing import Any

from csms.domain.events import ChargerBooted, ConnectorStatus, ConnectorStatusChanged
from csms.domain.service import ChargingService
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


class ProvisioningV16:
    def __init__(self, service: ChargingService) -> None:
        self._service = service

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
        decision = await self._service.charger_booted(boot)
        return {
            "status": decision.status.value,
            "currentTime": format_timestamp(call.received_at),
            "interval": decision.interval_s,
        }

    @handles("Heartbeat")
    async def heartbeat(self, call: IncomingCall) -> dict[str, Any]:
        await self._service.heartbeat(call.charger_id, call.received_at)
        return {"currentTime": format_timestamp(call.received_at)}

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


class ProvisioningV201:
    def __init__(self, service: ChargingService) -> None:
        self._service = service

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
        decision = await self._service.charger_booted(boot)
        return {
            "status": decision.status.value,
            "currentTime": format_timestamp(call.received_at),
            "interval": decision.interval_s,
        }

    @handles("Heartbeat")
    async def heartbeat(self, call: IncomingCall) -> dict[str, Any]:
        await self._service.heartbeat(call.charger_id, call.received_at)
        return {"currentTime": format_timestamp(call.received_at)}

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
