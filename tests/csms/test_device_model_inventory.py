"""A complete FullInventory removes the variables it left out (B07); the other reports only add.

Raw NotifyReport frames over an in-memory connection, the requests sent through the command bus,
and what the real PostgreSQL keeps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from csms.commands.reports import ReportBase, ReportScope, get_base_report, get_report
from tests.csms.protocol_stations import ServiceCsms, Station, answered, report, report_data, station

pytestmark = pytest.mark.asyncio


def variable(component: str, name: str, value: str, *types: str) -> dict[str, Any]:
    """``component``'s ``name`` with an attribute of each of ``types`` (default: Actual) set to ``value``."""
    return report_data(component, name, *({"type": t, "value": value} for t in (types or ("Actual",))))


async def ask(service: ServiceCsms, cs: Station, charger_id: str, base: ReportBase) -> int:
    """Send GetBaseReport ``base`` through the command bus; the station accepts it."""
    asking = asyncio.create_task(get_base_report(service.commands, service.device_model, charger_id, base))
    await cs.answer_csms({"status": "Accepted"})
    request = await asking
    assert request.result.accepted
    return request.request_id


async def stored(service: ServiceCsms, charger_id: str) -> dict[tuple[str, str, str], str | None]:
    return {
        (v.reported.target.component, v.reported.target.variable, v.reported.attribute_type): v.reported.value
        for v in await service.device_model.variables(charger_id)
    }


async def test_a_complete_full_inventory_removes_what_it_left_out_and_nothing_reported_since_it_began(
    service: ServiceCsms,
) -> None:
    charger_id = "CS-INV-FULL"
    async with station(service, charger_id) as cs:
        # what an earlier (unrequested) report said at 06:00
        earlier = [
            variable("ChargingStation", "Model", "M1"),
            variable("OCPPCommCtrlr", "HeartbeatInterval", "300"),
            variable("OldCtrlr", "Gone", "x", "Actual", "MaxSet"),  # not in the inventory below
            variable("EVSE", "Power", "11000"),
        ]
        answered(await cs.send("NotifyReport", report(900, 0, "2026-05-04T06:00:00Z", earlier)), {})

        full = await ask(service, cs, charger_id, ReportBase.FULL_INVENTORY)
        # its last part (tbc false) comes first: the report is not complete, nothing is removed
        last = [variable("OCPPCommCtrlr", "HeartbeatInterval", "120")]
        answered(await cs.send("NotifyReport", report(full, 1, "2026-05-04T07:00:02Z", last)), {})
        assert ("OldCtrlr", "Gone", "Actual") in await stored(service, charger_id)
        # while it runs, another report (generated after it began) tells of a variable it does not
        # list, and of a newer Power than the inventory's first part (generated at 07:00:00) will say
        custom = asyncio.create_task(
            get_report(service.commands, service.device_model, charger_id, scopes=[ReportScope("Tariff")])
        )
        await cs.answer_csms({"status": "Accepted"})
        later = (await custom).request_id
        newer = [variable("Tariff", "Enabled", "true"), variable("EVSE", "Power", "3700")]
        answered(await cs.send("NotifyReport", report(later, 0, "2026-05-04T07:00:05Z", newer)), {})
        assert ("OldCtrlr", "Gone", "Actual") in await stored(service, charger_id)

        first = [variable("ChargingStation", "Model", "M2"), variable("EVSE", "Power", "7400")]
        answered(await cs.send("NotifyReport", report(full, 0, "2026-05-04T07:00:00Z", first, tbc=True)), {})
        # the same part again: nothing changes, nothing more is removed
        answered(await cs.send("NotifyReport", report(full, 0, "2026-05-04T07:00:00Z", first, tbc=True)), {})

    assert await stored(service, charger_id) == {
        ("ChargingStation", "Model", "Actual"): "M2",
        ("EVSE", "Power", "Actual"): "3700",  # listed by the inventory, but said later by the other report
        ("OCPPCommCtrlr", "HeartbeatInterval", "Actual"): "120",
        ("Tariff", "Enabled", "Actual"): "true",  # not in the inventory, reported after it began
    }
    progress = await service.device_model.report(charger_id, full)
    assert progress is not None
    assert (progress.requested, progress.complete, progress.removed) == ("FullInventory", True, 2)
    assert progress.began_at == datetime(2026, 5, 4, 7, 0, 0, tzinfo=UTC)
    other = await service.device_model.report(charger_id, later)
    assert other is not None
    assert (other.complete, other.removed) == (True, None)


async def test_configuration_summary_custom_and_unrequested_reports_remove_nothing(
    service: ServiceCsms,
) -> None:
    charger_id = "CS-INV-PARTIAL"
    async with station(service, charger_id) as cs:
        everything = [variable("Component", f"Variable{k}", str(k)) for k in range(3)]
        answered(await cs.send("NotifyReport", report(800, 0, "2026-05-04T06:00:00Z", everything)), {})
        request_ids = [
            await ask(service, cs, charger_id, ReportBase.CONFIGURATION_INVENTORY),
            await ask(service, cs, charger_id, ReportBase.SUMMARY_INVENTORY),
        ]
        custom = asyncio.create_task(get_report(service.commands, service.device_model, charger_id))
        await cs.answer_csms({"status": "Accepted"})
        request_ids += [(await custom).request_id, 801]  # 801: a report we did not ask for
        for minute, request_id in enumerate(request_ids, start=1):
            only = [variable("Component", "Variable0", f"v{request_id}")]
            at = f"2026-05-04T07:0{minute}:00Z"
            answered(await cs.send("NotifyReport", report(request_id, 0, at, only)), {})
    assert await stored(service, charger_id) == {
        ("Component", "Variable0", "Actual"): "v801",
        ("Component", "Variable1", "Actual"): "1",
        ("Component", "Variable2", "Actual"): "2",
    }
    for request_id in request_ids:
        progress = await service.device_model.report(charger_id, request_id)
        assert progress is not None
        assert (progress.complete, progress.removed) == (True, None)


async def test_a_reused_request_id_starts_a_new_inventory(service: ServiceCsms) -> None:
    """Request ids are reused (the bus counts from 1 again after a restart): a FullInventory asked
    for again under an old id begins when its own first part was generated."""
    charger_id = "CS-INV-REUSED"
    both = [variable("A", "X", "1"), variable("B", "Y", "2")]
    async with station(service, charger_id) as cs:
        full = await ask(service, cs, charger_id, ReportBase.FULL_INVENTORY)
        answered(await cs.send("NotifyReport", report(full, 0, "2026-05-04T07:00:00Z", both)), {})
        progress = await service.device_model.report(charger_id, full)
        assert progress is not None
        assert (progress.complete, progress.removed) == (True, 0)

        at = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
        await service.device_model.report_requested(charger_id, full, ReportBase.FULL_INVENTORY.value, at)
        only_a = [variable("A", "X", "3")]
        answered(await cs.send("NotifyReport", report(full, 0, "2026-05-04T09:00:00Z", only_a)), {})
    assert await stored(service, charger_id) == {("A", "X", "Actual"): "3"}
    progress = await service.device_model.report(charger_id, full)
    assert progress is not None
    assert (progress.began_at, progress.removed) == (at, 1)
