"""The device model (2.0.1): NotifyReport (B07/B08), NotifyEvent (N07), NotifyMonitoringReport (N02).

NotifyReport and NotifyEvent may come in parts (``seqNo`` from 0, ``tbc`` while more follow):
each part is stored as it comes (:mod:`csms.storage.device_model`). A NotifyReport that answers
our GetBaseReport/GetReport passes the boot gate while the station is Pending (B02.FR.09).
"""

from __future__ import annotations

import logging
from typing import Any

from csms.domain.events import DeviceEvent, DeviceEventsReported, DeviceReportPart, ReportedVariable
from csms.domain.service import ChargingService
from csms.protocol.convert import component_variable, optional_float, parse_timestamp
from csms.protocol.router import IncomingCall, handles

logger = logging.getLogger(__name__)


class DeviceModelV201:
    def __init__(self, service: ChargingService) -> None:
        self._service = service

    @handles("NotifyReport")
    async def notify_report(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        variables = tuple(v for data in p.get("reportData", ()) for v in reported_variables(data))
        await self._service.device_report(
            DeviceReportPart(
                charger_id=call.charger_id,
                request_id=int(p["requestId"]),
                seq_no=int(p["seqNo"]),
                more=bool(p.get("tbc", False)),
                generated_at=parse_timestamp(p["generatedAt"]),
                variables=variables,
                message_id=call.unique_id,
            )
        )
        return {}

    @handles("NotifyEvent")
    async def notify_event(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        await self._service.device_events(
            DeviceEventsReported(
                charger_id=call.charger_id,
                generated_at=parse_timestamp(p["generatedAt"]),
                seq_no=int(p["seqNo"]),
                more=bool(p.get("tbc", False)),
                events=tuple(device_event(data) for data in p["eventData"]),
                message_id=call.unique_id,
            )
        )
        return {}

    @handles("NotifyMonitoringReport")
    async def notify_monitoring_report(self, call: IncomingCall) -> dict[str, Any]:
        # The monitors a station has (answer to our GetMonitoringReport): the message log keeps them.
        p = call.payload
        monitors = sum(len(m["variableMonitoring"]) for m in p.get("monitor", ()))
        logger.info(
            "charger %s: monitoring report %d part %d, %d monitors%s",
            call.charger_id,
            p["requestId"],
            p["seqNo"],
            monitors,
            ", more to follow" if p.get("tbc") else "",
        )
        return {}


def reported_variables(data: dict[str, Any]) -> list[ReportedVariable]:
    """The attributes of one ``ReportDataType``, each with the variable's characteristics."""
    target = component_variable(data["component"], data["variable"])
    characteristics = data.get("variableCharacteristics", {})
    return [
        ReportedVariable(
            target=target,
            attribute_type=str(attribute.get("type", "Actual")),
            value=attribute.get("value"),
            mutability=str(attribute.get("mutability", "ReadWrite")),
            persistent=bool(attribute.get("persistent", False)),
            constant=bool(attribute.get("constant", False)),
            data_type=characteristics.get("dataType"),
            unit=characteristics.get("unit"),
            min_limit=optional_float(characteristics.get("minLimit")),
            max_limit=optional_float(characteristics.get("maxLimit")),
            values_list=characteristics.get("valuesList"),
            supports_monitoring=characteristics.get("supportsMonitoring"),
        )
        for attribute in data["variableAttribute"]
    ]


def device_event(data: dict[str, Any]) -> DeviceEvent:
    """One ``EventDataType``."""
    return DeviceEvent(
        event_id=int(data["eventId"]),
        occurred_at=parse_timestamp(data["timestamp"]),
        trigger=str(data["trigger"]),
        actual_value=str(data["actualValue"]),
        notification_type=str(data["eventNotificationType"]),
        target=component_variable(data["component"], data["variable"]),
        cause=data.get("cause"),
        tech_code=data.get("techCode"),
        tech_info=data.get("techInfo"),
        cleared=data.get("cleared"),
        transaction_id=data.get("transactionId"),
        variable_monitoring_id=data.get("variableMonitoringId"),
    )
