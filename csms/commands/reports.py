"""Device-model reports (2.0.1 B07/B08): GetBaseReport and GetReport, recorded with their answers.

A request is stored (:class:`~csms.storage.device_model.DeviceModelRepository`) before it goes
out, so the NotifyReport parts that answer it (:mod:`csms.protocol.device_model`) are counted
against it whenever they come; then the charger's answer (``Accepted``, ``EmptyResultSet``, ...,
or the command's outcome when there was none) is stored with it.
:meth:`~csms.storage.device_model.DeviceModelRepository.report` tells how far the report got.
Sending the request also lets the NotifyReport through the boot gate of a Pending station
(B02.FR.09). 1.6 has no device model: NOT_SUPPORTED_BY_VERSION.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from csms.commands.bus import CommandBus
from csms.commands.payloads import Built
from csms.commands.results import CommandResult
from csms.protocol.session import utc_now
from csms.protocol.versions import OcppVersion
from csms.storage.device_model import FULL_INVENTORY, DeviceModelRepository


class ReportBase(Enum):
    """What a GetBaseReport asks for; a complete FullInventory's report also removes the stored
    variables it left out (:mod:`csms.storage.device_model`), the others only add and update."""

    CONFIGURATION_INVENTORY = "ConfigurationInventory"
    FULL_INVENTORY = FULL_INVENTORY
    SUMMARY_INVENTORY = "SummaryInventory"


CUSTOM_REPORT = "Custom"
"""How a GetReport's request is recorded (a GetBaseReport's is its :class:`ReportBase`)."""


@dataclass(frozen=True, slots=True)
class ReportScope:
    """A component (and optionally one of its variables) a GetReport asks about."""

    component: str
    variable: str | None = None
    component_instance: str | None = None
    evse_id: int | None = None

    def to_ocpp(self) -> dict[str, Any]:
        component: dict[str, Any] = {"name": self.component}
        if self.component_instance is not None:
            component["instance"] = self.component_instance
        if self.evse_id is not None:
            component["evse"] = {"id": self.evse_id}
        scope: dict[str, Any] = {"component": component}
        if self.variable is not None:
            scope["variable"] = {"name": self.variable}
        return scope


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """The request id the report's parts will carry, and the charger's answer to the request."""

    request_id: int
    result: CommandResult


async def get_base_report(
    commands: CommandBus,
    reports: DeviceModelRepository,
    charger_id: str,
    base: ReportBase,
    *,
    timeout_s: float | None = None,
) -> ReportRequest:
    """Ask ``charger_id`` for its ``base`` report (B07)."""
    request_id = commands.next_request_id()
    payload = {"requestId": request_id, "reportBase": base.value}
    return await _request(
        commands, reports, charger_id, request_id, base.value, "GetBaseReport", payload, timeout_s
    )


async def get_report(
    commands: CommandBus,
    reports: DeviceModelRepository,
    charger_id: str,
    *,
    criteria: Sequence[str] = (),
    scopes: Sequence[ReportScope] = (),
    timeout_s: float | None = None,
) -> ReportRequest:
    """Ask ``charger_id`` for the variables of ``scopes`` whose components meet ``criteria``
    (``Active``, ``Available``, ``Enabled``, ``Problem``) (B08); neither: every variable."""
    request_id = commands.next_request_id()
    payload: dict[str, Any] = {"requestId": request_id}
    if criteria:
        payload["componentCriteria"] = list(criteria)
    if scopes:
        payload["componentVariable"] = [scope.to_ocpp() for scope in scopes]
    return await _request(
        commands, reports, charger_id, request_id, CUSTOM_REPORT, "GetReport", payload, timeout_s
    )


async def _request(
    commands: CommandBus,
    reports: DeviceModelRepository,
    charger_id: str,
    request_id: int,
    requested: str,
    action: str,
    payload: dict[str, Any],
    timeout_s: float | None,
) -> ReportRequest:
    def build(version: OcppVersion) -> Built:
        return None if version is OcppVersion.V16 else (action, payload)

    await reports.report_requested(charger_id, request_id, requested, utc_now())
    result = await commands.call_per_version(charger_id, build, timeout_s=timeout_s)
    await reports.report_answered(charger_id, request_id, result.status or result.outcome.value)
    return ReportRequest(request_id, result)
