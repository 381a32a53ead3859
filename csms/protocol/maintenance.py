"""Firmware, diagnostics/logs, security events and vendor data transfer (1.6 and 2.0.1); for 2.0.1
also a local controller's firmware publishing (L03), customer information (N09/N10) and the
display messages a station reports (O04)."""

from __future__ import annotations

import logging
from typing import Any

from csms.domain.events import (
    DataTransferReceived,
    DiagnosticsStatusChanged,
    FirmwareStatusChanged,
    SecurityEventReported,
)
from csms.domain.service import ChargingService
from csms.protocol.convert import data_as_text, parse_timestamp
from csms.protocol.router import IncomingCall, handles

logger = logging.getLogger(__name__)


class _CommonMaintenance:
    """Handlers whose payloads read the same in both versions."""

    def __init__(self, service: ChargingService) -> None:
        self._service = service

    @handles("FirmwareStatusNotification")
    async def firmware_status_notification(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        await self._service.firmware_status(
            FirmwareStatusChanged(call.charger_id, p["status"], p.get("requestId"), call.received_at)
        )
        return {}

    @handles("LogStatusNotification")
    async def log_status_notification(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        await self._service.diagnostics_status(
            DiagnosticsStatusChanged(call.charger_id, p["status"], p.get("requestId"), call.received_at)
        )
        return {}

    @handles("SecurityEventNotification")
    async def security_event_notification(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        await self._service.security_event(
            SecurityEventReported(
                call.charger_id, p["type"], p.get("techInfo"), parse_timestamp(p["timestamp"])
            )
        )
        return {}

    @handles("DataTransfer")
    async def data_transfer(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        known = await self._service.data_transfer(
            DataTransferReceived(
                call.charger_id, p["vendorId"], p.get("messageId"), data_as_text(p.get("data"))
            )
        )
        return {"status": "Accepted" if known else "UnknownVendorId"}


class MaintenanceV16(_CommonMaintenance):
    @handles("DiagnosticsStatusNotification")
    async def diagnostics_status_notification(self, call: IncomingCall) -> dict[str, Any]:
        await self._service.diagnostics_status(
            DiagnosticsStatusChanged(call.charger_id, call.payload["status"], None, call.received_at)
        )
        return {}

    @handles("SignedFirmwareStatusNotification")
    async def signed_firmware_status_notification(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        await self._service.firmware_status(
            FirmwareStatusChanged(call.charger_id, p["status"], p.get("requestId"), call.received_at)
        )
        return {}


class MaintenanceV201(_CommonMaintenance):
    """2.0.1 has no DiagnosticsStatusNotification: logs report through LogStatusNotification.

    The messages below answer requests of ours (PublishFirmware, CustomerInformation,
    GetDisplayMessages); what they carry is kept by the message log.
    """

    @handles("PublishFirmwareStatusNotification")
    async def publish_firmware_status_notification(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        logger.info(
            "charger %s: firmware publishing %s (request %s)%s",
            call.charger_id,
            p["status"],
            p.get("requestId", "-"),
            ": " + ", ".join(p["location"]) if p.get("location") else "",
        )
        return {}

    @handles("NotifyCustomerInformation")
    async def notify_customer_information(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        logger.info(
            "charger %s: customer information %d part %d (%d characters)%s",
            call.charger_id,
            p["requestId"],
            p["seqNo"],
            len(p["data"]),
            ", more to follow" if p.get("tbc") else "",
        )
        return {}

    @handles("NotifyDisplayMessages")
    async def notify_display_messages(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        logger.info(
            "charger %s: display messages report %d: %d messages%s",
            call.charger_id,
            p["requestId"],
            len(p.get("messageInfo", ())),
            ", more to follow" if p.get("tbc") else "",
        )
        return {}
