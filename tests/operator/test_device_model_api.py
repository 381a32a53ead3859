"""The operator's view of a 2.0.1 charger's device model: its reported variables, its events, and
asking it for a report, through the API and the ``fairwatt chargers`` CLI, over a real server and
PostgreSQL; end to end with an ``ocpp``-package station answering GetBaseReport."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v201 import call
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.domain.events import (
    ComponentVariable,
    DeviceEvent,
    DeviceEventsReported,
    DeviceReportPart,
    ReportedVariable,
)
from tests.csms.chargers import connected
from tests.operator.chargers import OperatedCharger201
from tests.operator.conftest import Cli, RunningOperatorApi, network_files, next_received

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 5, 4, 7, 0, tzinfo=UTC)
BOOT = call.BootNotification(charging_station={"model": "Pulsar", "vendor_name": "Wallbox"}, reason="PowerUp")


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event(event_id: int, at: datetime, component: str = "ChargingStation", **extra: Any) -> DeviceEvent:
    return DeviceEvent(
        event_id=event_id,
        occurred_at=at,
        trigger="Alerting",
        actual_value="true",
        notification_type="HardWiredNotification",
        target=ComponentVariable(component, "Problem"),
        **extra,
    )


async def store_model(operator: RunningOperatorApi, charger_id: str) -> None:
    """A report of three variables (one with two attributes) and five events, two at one time."""
    variables = (
        ReportedVariable(ComponentVariable("OCPPCommCtrlr", "HeartbeatInterval"), value="300", unit="s"),
        ReportedVariable(
            ComponentVariable("EVSE", "Power", evse_id=1), "MaxSet", "22000", "ReadOnly", data_type="decimal"
        ),
        ReportedVariable(ComponentVariable("Connector", "ConnectorType", "left", "", 1, 1), value="cType2"),
        ReportedVariable(ComponentVariable("EVSE", "Power", evse_id=1), "Actual", "7400", "ReadOnly"),
    )
    part = DeviceReportPart(charger_id, 3, 0, False, T0, variables, "m1")
    assert (await operator.csms.device_model.store_report_part(part)).fresh
    events = (
        event(1, T0),
        event(2, T0 + timedelta(minutes=1), "Connector", tech_code="E42"),
        event(3, T0 + timedelta(minutes=2)),
        event(4, T0 + timedelta(minutes=2), cleared=True),
        event(5, T0 + timedelta(minutes=3)),
    )
    await operator.csms.device_model.store_events(
        DeviceEventsReported(charger_id, T0 + timedelta(minutes=3), 0, False, events, "m2")
    )


async def test_variables_and_events_of_the_callers_charger(operator: RunningOperatorApi) -> None:
    assert (await operator.call("POST", "/v1/operator/network/apply", json=network_files()))[0] == 200
    await store_model(operator, "office-1")
    base = "/v1/operator/chargers/office-1"

    status, document = await operator.call("GET", f"{base}/variables")
    assert status == 200
    listed = [(v["component"], v["variable"], v["attribute_type"]) for v in document["variables"]]
    assert listed == [
        ("Connector", "ConnectorType", "Actual"),
        ("EVSE", "Power", "Actual"),
        ("EVSE", "Power", "MaxSet"),
        ("OCPPCommCtrlr", "HeartbeatInterval", "Actual"),
    ]
    assert document["variables"][0] == {
        "component": "Connector",
        "component_instance": "left",
        "evse_id": 1,
        "connector_id": 1,
        "variable": "ConnectorType",
        "variable_instance": None,
        "attribute_type": "Actual",
        "value": "cType2",
        "mutability": "ReadWrite",
        "persistent": False,
        "constant": False,
        "data_type": None,
        "unit": None,
        "min_limit": None,
        "max_limit": None,
        "values_list": None,
        "supports_monitoring": None,
        "reported_at": "2026-05-04T07:00:00+00:00",
        "request_id": 3,
    }
    status, document = await operator.call("GET", f"{base}/variables?component=evse")
    assert [(v["value"], v["mutability"]) for v in document["variables"]] == [
        ("7400", "ReadOnly"),
        ("22000", "ReadOnly"),
    ]
    status, document = await operator.call("GET", f"{base}/variables?variable=HeartbeatInterval")
    assert [(v["component"], v["value"], v["unit"]) for v in document["variables"]] == [
        ("OCPPCommCtrlr", "300", "s")
    ]
    status, document = await operator.call("GET", f"{base}/variables?component=EVSE&variable=Model")
    assert (status, document["variables"]) == (200, [])

    status, document = await operator.call("GET", f"{base}/events")
    assert [e["event_id"] for e in document["events"]] == [5, 4, 3, 2, 1]  # newest first
    assert document["next"] is None
    assert (document["events"][3]["component"], document["events"][3]["tech_code"]) == ("Connector", "E42")
    assert document["events"][1]["cleared"] is True
    # pages of two: events 4 and 3 share a time, the page boundary falls between them
    pages: list[list[int]] = []
    query = "limit=2"
    while True:
        status, document = await operator.call("GET", f"{base}/events?{query}")
        assert status == 200
        pages.append([e["event_id"] for e in document["events"]])
        if document["next"] is None:
            break
        following = document["next"]
        before = following["before"].replace("+00:00", "Z")
        query = f"limit=2&before={before}&before_event={following['before_event']}"
    assert pages == [[5, 4], [3, 2], [1]]
    status, document = await operator.call("GET", f"{base}/events?before=2026-05-04T07:02:00Z")
    assert [e["event_id"] for e in document["events"]] == [2, 1]


async def test_another_operators_charger_bad_parameters_and_the_openapi_document(
    operator: RunningOperatorApi,
) -> None:
    assert (await operator.call("POST", "/v1/operator/network/apply", json=network_files()))[0] == 200
    await store_model(operator, "office-1")
    base = "/v1/operator/chargers/office-1"
    for method, path, body in (
        ("GET", f"{base}/variables", None),
        ("GET", f"{base}/events", None),
        ("POST", f"{base}/report", {"base": "FullInventory"}),
        ("GET", "/v1/operator/chargers/no-such-charger/variables", None),
    ):
        status, problem = await operator.call(method, path, key=operator.other_key, json=body)
        assert status == 404, (method, path, problem)
        assert "in your network" in problem["detail"]
    for method, path, body, words in (
        ("GET", f"{base}/events?before=yesterday", None, "ISO 8601"),
        ("GET", f"{base}/events?limit=0", None, "between 1 and 1000"),
        ("GET", f"{base}/events?before_event=3", None, "'before_event' needs 'before'"),
        ("POST", f"{base}/report", {"base": "Everything"}, "'base' must be one of ConfigurationInventory,"),
    ):
        status, problem = await operator.call(method, path, json=body)
        assert status == 400, (path, problem)
        assert words in problem["detail"]
    status, problem = await operator.call("POST", f"{base}/report", json={"base": "FullInventory"})
    assert (status, problem["detail"]) == (409, "charger office-1 is not connected")

    async with operator.http.get(f"{operator.base_url}/v1/openapi.json") as response:
        paths = (await response.json())["paths"]
    assert set(paths["/v1/operator/chargers/{charger_id}/variables"]["get"]["responses"]) >= {"200", "404"}
    events = paths["/v1/operator/chargers/{charger_id}/events"]["get"]
    assert {p["name"] for p in events["parameters"]} == {"charger_id", "limit", "before", "before_event"}
    report = paths["/v1/operator/chargers/{charger_id}/report"]["post"]
    schema = report["requestBody"]["content"]["application/json"]["schema"]
    bases = ["ConfigurationInventory", "FullInventory", "SummaryInventory"]
    assert schema["properties"]["base"]["enum"] == bases


class InventoryStation(OperatedCharger201):
    """A station whose device model is ``inventory``: it accepts FullInventory and
    ConfigurationInventory, does not support SummaryInventory, and reports in two parts."""

    inventory: list[dict[str, Any]]

    @on(Action201.get_base_report)
    async def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        await self.received.put(("GetBaseReport", {"request_id": request_id, "report_base": report_base}))
        status = "NotSupported" if report_base == "SummaryInventory" else "Accepted"
        return result201.GetBaseReport(status=status)

    async def send_report(self, request_id: int, generated_at: datetime) -> None:
        """The inventory as a two-part NotifyReport (the first ``tbc``)."""
        half = len(self.inventory) // 2
        for seq_no, data in enumerate((self.inventory[:half], self.inventory[half:])):
            await self.call(
                call.NotifyReport(
                    request_id,
                    stamp(generated_at + timedelta(seconds=seq_no)),
                    seq_no,
                    report_data=data,
                    tbc=seq_no == 0,
                ),
                suppress=False,
            )


def reported(component: str, variable: str, value: str, **component_extra: Any) -> dict[str, Any]:
    return {
        "component": {"name": component, **component_extra},
        "variable": {"name": variable},
        "variableAttribute": [{"type": "Actual", "value": value, "mutability": "ReadOnly"}],
        "variableCharacteristics": {"dataType": "string", "supportsMonitoring": False},
    }


async def test_a_station_reports_its_inventory_and_the_operator_sees_it(
    operator: RunningOperatorApi, cli: Cli
) -> None:
    assert (await operator.call("POST", "/v1/operator/network/apply", json=network_files()))[0] == 200
    url = operator.charger_url("office-1")
    async with connected(InventoryStation, url, "office-1", "ocpp2.0.1") as station:
        assert (await station.call(BOOT, suppress=False)).status == "Accepted"
        station.inventory = [
            reported("ChargingStation", "Model", "Pulsar"),
            reported("ChargingStation", "VendorName", "Wallbox"),
            reported("Connector", "ConnectorType", "cType2", evse={"id": 1, "connectorId": 1}),
            reported("OCPPCommCtrlr", "HeartbeatInterval", "300"),
        ]
        code, out, _ = await cli("chargers", "report", "office-1")
        assert code == 0, out
        request = await next_received(station, "GetBaseReport")
        assert request["report_base"] == "FullInventory"
        assert out.splitlines() == [
            "office-1: GetBaseReport accepted (Accepted)",
            f"report {request['request_id']} (FullInventory) comes in parts:"
            " fairwatt chargers variables office-1",
        ]
        await station.send_report(request["request_id"], T0)

        shown = await cli.json("chargers", "variables", "office-1")
        assert {(v["component"], v["variable"], v["value"]) for v in shown["variables"]} == {
            ("ChargingStation", "Model", "Pulsar"),
            ("ChargingStation", "VendorName", "Wallbox"),
            ("Connector", "ConnectorType", "cType2"),
            ("OCPPCommCtrlr", "HeartbeatInterval", "300"),
        }
        code, out, _ = await cli("chargers", "variables", "office-1", "--component", "connector")
        assert code == 0
        lines = out.splitlines()
        assert lines[0].split() == [
            "COMPONENT",
            "EVSE",
            "CONNECTOR",
            "VARIABLE",
            "TYPE",
            "VALUE",
            "MUTABILITY",
            "UNIT",
            "REPORTED_AT",
        ]
        assert lines[1].split() == [
            *("Connector", "1", "1", "ConnectorType", "Actual", "cType2", "ReadOnly", "-"),
            *("2026-05-04", "07:00:01", "UTC"),  # the second part's generatedAt, with its zone
        ]
        assert len(lines) == 2

        # the station no longer has a VendorName: the next full inventory leaves it out
        del station.inventory[1]
        code, _, _ = await cli("chargers", "report", "office-1", "--base", "FullInventory")
        assert code == 0
        second = await next_received(station, "GetBaseReport")
        await station.send_report(second["request_id"], T0 + timedelta(minutes=5))
        shown = await cli.json("chargers", "variables", "office-1")
        assert {(v["component"], v["variable"]) for v in shown["variables"]} == {
            ("ChargingStation", "Model"),
            ("Connector", "ConnectorType"),
            ("OCPPCommCtrlr", "HeartbeatInterval"),
        }
        assert {v["request_id"] for v in shown["variables"]} == {second["request_id"]}

        # a report base the station does not support: exit status 1
        code, out, _ = await cli("chargers", "report", "office-1", "--base", "SummaryInventory")
        assert (code, out.strip()) == (1, "office-1: GetBaseReport rejected (NotSupported)")
        answer = await cli("chargers", "report", "office-1", "--base", "SummaryInventory", "--json")
        assert answer[0] == 1

        problem = {
            "eventId": 7,
            "timestamp": stamp(T0),
            "trigger": "Alerting",
            "actualValue": "true",
            "techCode": "E42",
            "eventNotificationType": "HardWiredNotification",
            "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
            "variable": {"name": "Problem"},
        }
        cleared = {**problem, "eventId": 8, "timestamp": "2026-05-04T07:00:30Z"}
        cleared.update(actualValue="false", cleared=True)
        await station.call(call.NotifyEvent(stamp(T0), 0, [problem], tbc=True), suppress=False)
        await station.call(call.NotifyEvent("2026-05-04T07:00:31Z", 1, [cleared]), suppress=False)
        events = await cli.json("chargers", "events", "office-1", "--limit", "1")
        assert [(e["event_id"], e["cleared"]) for e in events["events"]] == [(8, True)]
        assert events["next"] == {"before": "2026-05-04T07:00:30+00:00", "before_event": 8}
        code, out, err = await cli("chargers", "events", "office-1")
        assert code == 0
        rows = [line.split() for line in out.splitlines()[1:]]
        assert [r[2] for r in rows] == ["UTC", "UTC"]  # the time keeps its zone
        assert [(r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows] == [
            ("8", "Alerting", "Connector", "1", "Problem", "false"),
            ("7", "Alerting", "Connector", "1", "Problem", "true"),
        ]
        assert err == ""  # no older page
