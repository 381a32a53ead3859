"""Protocol layer of the 2.0.1 device model: NotifyEvent (N07), NotifyReport (B07/B08) and the
GetBaseReport/GetReport requests they answer. Raw frames in over an in-memory connection, answers
out, and what the real PostgreSQL keeps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from csms.commands.reports import CUSTOM_REPORT, ReportBase, ReportScope, get_base_report, get_report
from csms.domain.events import ComponentVariable, DeviceEvent, RegistrationStatus, ReportedVariable
from tests.csms.protocol_stations import ServiceCsms, answered, event_data, report, report_data, station

pytestmark = pytest.mark.asyncio


# -- NotifyEvent (N07) ------------------------------------------------------------------------------


async def test_notify_event_parts_are_stored_once_each(service: ServiceCsms) -> None:
    first = {
        "generatedAt": "2026-05-04T07:59:58Z",
        "seqNo": 0,
        "tbc": True,
        "eventData": [
            event_data(11, "2026-05-04T07:59:50Z", techCode="E42", techInfo="ground fault"),
            {
                **event_data(12, "2026-05-04T07:59:55Z", cause=11, transactionId="TX-9"),
                "trigger": "Delta",
                "actualValue": "Faulted",
                "eventNotificationType": "PreconfiguredMonitor",
                "variableMonitoringId": 3,
                "component": {"name": "Connector", "instance": "left", "evse": {"id": 1}},
                "variable": {"name": "AvailabilityState", "instance": "a"},
            },
        ],
    }
    second = {
        "generatedAt": "2026-05-04T07:59:59Z",
        "seqNo": 1,
        "eventData": [event_data(13, "2026-05-04T07:59:57Z", actualValue="false", cleared=True)],
    }
    async with station(service, "CS-EVENTS") as cs:
        answered(await cs.send("NotifyEvent", first), {})
        answered(await cs.send("NotifyEvent", second), {})
        answered(await cs.send("NotifyEvent", first), {})  # the answer was lost: sent again
    events = await service.device_model.events("CS-EVENTS")
    assert [e.event_id for e in events] == [13, 12, 11]
    assert events[2] == DeviceEvent(
        event_id=11,
        occurred_at=datetime(2026, 5, 4, 7, 59, 50, tzinfo=UTC),
        trigger="Alerting",
        actual_value="true",
        notification_type="HardWiredNotification",
        target=ComponentVariable("Connector", "Problem", evse_id=1, connector_id=1),
        tech_code="E42",
        tech_info="ground fault",
    )
    assert events[1].target == ComponentVariable("Connector", "AvailabilityState", "left", "a", 1, None)
    assert (events[1].cause, events[1].transaction_id, events[1].variable_monitoring_id) == (11, "TX-9", 3)
    assert (events[1].trigger, events[1].notification_type) == ("Delta", "PreconfiguredMonitor")
    assert events[0].cleared is True


# -- NotifyReport (B07/B08) ---------------------------------------------------------------------------


async def test_a_report_in_parts_is_stored_and_counted_until_complete(service: ServiceCsms) -> None:
    heartbeat = report_data(
        "OCPPCommCtrlr",
        "HeartbeatInterval",
        {"type": "Actual", "value": "300", "mutability": "ReadWrite", "persistent": True},
        {"type": "MaxSet", "value": "3600", "mutability": "ReadOnly", "constant": True},
        variableCharacteristics={
            "dataType": "integer",
            "unit": "s",
            "minLimit": 1,
            "maxLimit": 86400,
            "supportsMonitoring": False,
        },
    )
    evse_power = {
        "component": {"name": "EVSE", "evse": {"id": 1}},
        "variable": {"name": "Power"},
        "variableAttribute": [{"type": "MaxSet", "value": "22000", "mutability": "ReadOnly"}],
        "variableCharacteristics": {"dataType": "decimal", "unit": "W", "supportsMonitoring": True},
    }
    serial = report_data("ChargingStation", "SerialNumber", {"value": "SN-1"})  # type and mutability default
    async with station(service, "CS-REPORT") as cs:
        answered(
            await cs.send(
                "NotifyReport", report(5, 0, "2026-05-04T07:00:00Z", [heartbeat, evse_power], tbc=True)
            ),
            {},
        )
        progress = await service.device_model.report("CS-REPORT", 5)
        assert progress is not None
        assert (progress.parts, progress.last_seq_no, progress.complete) == ((0,), None, False)
        answered(await cs.send("NotifyReport", report(5, 1, "2026-05-04T07:00:01Z", [serial])), {})
        answered(await cs.send("NotifyReport", report(5, 1, "2026-05-04T07:00:01Z", [serial])), {})  # again
    progress = await service.device_model.report("CS-REPORT", 5)
    assert progress is not None
    assert (progress.parts, progress.last_seq_no, progress.complete) == ((0, 1), 1, True)
    assert progress.variables == 4  # attributes, the repeated part not counted twice
    assert progress.requested is None  # not asked for by us
    stored = await service.device_model.variables("CS-REPORT")
    assert [
        (v.reported.target.component, v.reported.target.variable, v.reported.attribute_type) for v in stored
    ] == [
        ("ChargingStation", "SerialNumber", "Actual"),
        ("EVSE", "Power", "MaxSet"),
        ("OCPPCommCtrlr", "HeartbeatInterval", "Actual"),
        ("OCPPCommCtrlr", "HeartbeatInterval", "MaxSet"),
    ]
    assert stored[2].reported == ReportedVariable(
        target=ComponentVariable("OCPPCommCtrlr", "HeartbeatInterval"),
        attribute_type="Actual",
        value="300",
        mutability="ReadWrite",
        persistent=True,
        constant=False,
        data_type="integer",
        unit="s",
        min_limit=1.0,
        max_limit=86400.0,
        supports_monitoring=False,
    )
    assert stored[1].reported.target == ComponentVariable("EVSE", "Power", evse_id=1)
    assert (stored[1].reported.value, stored[1].reported.unit, stored[1].reported.supports_monitoring) == (
        "22000",
        "W",
        True,
    )
    assert stored[0].reported.mutability == "ReadWrite"
    assert (stored[0].request_id, stored[0].reported_at) == (5, datetime(2026, 5, 4, 7, 0, 1, tzinfo=UTC))


async def test_a_later_report_replaces_older_values_and_an_older_one_does_not(service: ServiceCsms) -> None:
    def interval(value: str) -> dict[str, Any]:
        return report_data("OCPPCommCtrlr", "HeartbeatInterval", {"value": value})

    async with station(service, "CS-NEWER") as cs:
        await cs.send("NotifyReport", report(1, 0, "2026-05-04T07:00:00Z", [interval("300")]))
        await cs.send("NotifyReport", report(2, 0, "2026-05-04T09:00:00Z", [interval("120")]))
        await cs.send("NotifyReport", report(3, 0, "2026-05-04T08:00:00Z", [interval("600")]))  # late
        # a report with a part missing is not complete
        await cs.send("NotifyReport", report(4, 0, "2026-05-04T09:30:00Z", [], tbc=True))
        await cs.send("NotifyReport", report(4, 2, "2026-05-04T09:30:02Z", []))
    stored = await service.device_model.variables("CS-NEWER")
    assert [(v.reported.value, v.request_id) for v in stored] == [("120", 2)]
    progress = await service.device_model.report("CS-NEWER", 4)
    assert progress is not None
    assert (progress.parts, progress.last_seq_no, progress.complete) == ((0, 2), 2, False)


async def test_a_pending_station_may_report_what_we_asked_for_and_the_report_is_tied_to_it(
    service: ServiceCsms,
) -> None:
    async with station(service, "CS-ASKED", RegistrationStatus.PENDING) as cs:
        part = report(0, 0, "2026-05-04T07:00:00Z", [report_data("ChargingStation", "Model", {"value": "X"})])
        refused = await cs.send("NotifyReport", part)
        assert refused[:3] == [4, "m1", "SecurityError"]  # B02.FR.09: not asked for
        assert (
            await cs.send(
                "NotifyEvent",
                {
                    "generatedAt": "2026-05-04T07:00:00Z",
                    "seqNo": 0,
                    "eventData": [event_data(1, "2026-05-04T07:00:00Z")],
                },
            )
        )[2] == "SecurityError"

        asking = asyncio.create_task(
            get_base_report(service.commands, service.device_model, "CS-ASKED", ReportBase.FULL_INVENTORY)
        )
        sent = await cs.answer_csms({"status": "Accepted"})
        request = await asking
        assert sent[2:] == ["GetBaseReport", {"requestId": request.request_id, "reportBase": "FullInventory"}]
        assert request.result.accepted
        part = report(
            request.request_id,
            0,
            "2026-05-04T07:00:00Z",
            [report_data("ChargingStation", "Model", {"value": "X"})],
        )
        answered(await cs.send("NotifyReport", part), {})
        # while Pending, nothing else is let through
        assert (await cs.send("Heartbeat", {}))[2] == "SecurityError"
    progress = await service.device_model.report("CS-ASKED", request.request_id)
    assert progress is not None
    assert (progress.requested, progress.answer, progress.complete, progress.variables) == (
        "FullInventory",
        "Accepted",
        True,
        1,
    )
    assert [v.reported.value for v in await service.device_model.variables("CS-ASKED")] == ["X"]


async def test_a_custom_report_request_is_recorded_with_its_answer(service: ServiceCsms) -> None:
    async with station(service, "CS-CUSTOM") as cs:
        asking = asyncio.create_task(
            get_report(
                service.commands,
                service.device_model,
                "CS-CUSTOM",
                criteria=["Problem"],
                scopes=[ReportScope("EVSE", "Power", evse_id=1), ReportScope("Connector")],
            )
        )
        sent = await cs.answer_csms({"status": "EmptyResultSet"})
        request = await asking
    assert sent[2:] == [
        "GetReport",
        {
            "requestId": request.request_id,
            "componentCriteria": ["Problem"],
            "componentVariable": [
                {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}},
                {"component": {"name": "Connector"}},
            ],
        },
    ]
    progress = await service.device_model.report("CS-CUSTOM", request.request_id)
    assert progress is not None
    assert (progress.requested, progress.answer, progress.parts) == (CUSTOM_REPORT, "EmptyResultSet", ())
