"""``/v1/operator/chargers/{charger_id}/variables|events|report``: a 2.0.1 charger's device model.

``variables`` is what the charger last reported of itself (NotifyReport, kept per component,
variable and attribute by :mod:`csms.storage.device_model`) and ``events`` what it notified
(NotifyEvent, newest first, paged with ``before``/``before_event``); both are read from PostgreSQL,
connected or not. ``report`` asks the charger for a new report (GetBaseReport,
:func:`csms.commands.reports.get_base_report`): the answer says whether it accepted, the parts come
afterwards and update ``variables`` (a complete FullInventory also removes what it left out).
A 1.6 charger has no device model: its lists are empty and ``report`` answers
``not_supported_by_version``. Every lookup is scoped to the caller's CPO (another's charger: 404).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from csms.commands.reports import ReportBase, get_base_report
from csms.domain.events import ComponentVariable, DeviceEvent
from csms.storage.device_model import FULL_INVENTORY, StoredVariable
from fairwatt.operator.api_chargers import COMMAND_RESULT
from fairwatt.operator.common import (
    PREFIX,
    OperatorContext,
    command_answer,
    path_param,
    query_datetime,
    query_param,
    spec,
)
from sessions.errors import bad_request
from sessions.http import json_object, json_response, query_int
from sessions.openapi import Api, Operation

CHARGER = path_param("charger_id")
EVENT_ID_RANGE = (-(2**31), 2**31 - 1)  # an OCPP integer
REPORT_BASES = [base.value for base in ReportBase]
NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_INTEGER = {"type": ["integer", "null"]}
TARGET_PROPERTIES: dict[str, Any] = {
    "component": {"type": "string"},
    "component_instance": NULLABLE_STRING,
    "evse_id": NULLABLE_INTEGER,
    "connector_id": NULLABLE_INTEGER,
    "variable": {"type": "string"},
    "variable_instance": NULLABLE_STRING,
}
TIME = {"type": "string", "format": "date-time"}
VARIABLES = {
    "type": "object",
    "properties": {
        "charger_id": {"type": "string"},
        "variables": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    **TARGET_PROPERTIES,
                    "attribute_type": {"enum": ["Actual", "Target", "MinSet", "MaxSet"]},
                    "value": NULLABLE_STRING,
                    "mutability": {"enum": ["ReadOnly", "WriteOnly", "ReadWrite"]},
                    "persistent": {"type": "boolean"},
                    "constant": {"type": "boolean"},
                    "data_type": NULLABLE_STRING,
                    "unit": NULLABLE_STRING,
                    "min_limit": {"type": ["number", "null"]},
                    "max_limit": {"type": ["number", "null"]},
                    "values_list": NULLABLE_STRING,
                    "supports_monitoring": {"type": ["boolean", "null"]},
                    "reported_at": {**TIME, "description": "the report's generatedAt (charger's clock)"},
                    "request_id": {"type": "integer", "description": "the report that said it"},
                },
            },
        },
    },
}
EVENTS = {
    "type": "object",
    "properties": {
        "charger_id": {"type": "string"},
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "event_id": {"type": "integer"},
                    "occurred_at": TIME,
                    "trigger": {"enum": ["Alerting", "Delta", "Periodic"]},
                    "actual_value": {"type": "string"},
                    "notification_type": {"type": "string"},
                    **TARGET_PROPERTIES,
                    "cause": NULLABLE_INTEGER,
                    "tech_code": NULLABLE_STRING,
                    "tech_info": NULLABLE_STRING,
                    "cleared": {"type": ["boolean", "null"]},
                    "transaction_id": NULLABLE_STRING,
                    "variable_monitoring_id": NULLABLE_INTEGER,
                },
            },
        },
        "next": {
            "description": "the query of the next (older) page; null when this page is the last",
            "type": ["object", "null"],
            "properties": {"before": TIME, "before_event": {"type": "integer"}},
        },
    },
}
REPORT_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {
        **COMMAND_RESULT["properties"],
        "request_id": {"type": "integer", "description": "the requestId the report's parts will carry"},
    },
}


def _target(target: ComponentVariable) -> dict[str, Any]:
    return {
        "component": target.component,
        "component_instance": target.component_instance or None,
        "evse_id": target.evse_id,
        "connector_id": target.connector_id,
        "variable": target.variable,
        "variable_instance": target.variable_instance or None,
    }


def variable_document(stored: StoredVariable) -> dict[str, Any]:
    v = stored.reported
    return {
        **_target(v.target),
        "attribute_type": v.attribute_type,
        "value": v.value,
        "mutability": v.mutability,
        "persistent": v.persistent,
        "constant": v.constant,
        "data_type": v.data_type,
        "unit": v.unit,
        "min_limit": v.min_limit,
        "max_limit": v.max_limit,
        "values_list": v.values_list,
        "supports_monitoring": v.supports_monitoring,
        "reported_at": stored.reported_at.isoformat(),
        "request_id": stored.request_id,
    }


def event_document(e: DeviceEvent) -> dict[str, Any]:
    return {
        "event_id": e.event_id,
        "occurred_at": e.occurred_at.isoformat(),
        "trigger": e.trigger,
        "actual_value": e.actual_value,
        "notification_type": e.notification_type,
        **_target(e.target),
        "cause": e.cause,
        "tech_code": e.tech_code,
        "tech_info": e.tech_info,
        "cleared": e.cleared,
        "transaction_id": e.transaction_id,
        "variable_monitoring_id": e.variable_monitoring_id,
    }


def register(api: Api, context: OperatorContext) -> None:
    csms = context.runtime.csms

    async def charger_id_of(request: web.Request) -> str:
        principal = await context.caller(request)
        assert principal.cpo_id is not None
        row = await context.charger_row(principal.cpo_id, request.match_info["charger_id"])
        return str(row["charger_id"])

    async def variables(request: web.Request) -> web.StreamResponse:
        charger_id = await charger_id_of(request)
        stored = await csms.device_model.variables(
            charger_id,
            component=request.query.get("component") or None,
            variable=request.query.get("variable") or None,
        )
        return json_response({"charger_id": charger_id, "variables": [variable_document(v) for v in stored]})

    async def events(request: web.Request) -> web.StreamResponse:
        charger_id = await charger_id_of(request)
        limit = query_int(request, "limit", default=100, minimum=1, maximum=1000)
        before = query_datetime(request, "before")
        before_event: int | None = None
        if request.query.get("before_event"):
            if before is None:
                raise bad_request("'before_event' needs 'before' (the time of that event)")
            before_event = query_int(
                request, "before_event", default=0, minimum=EVENT_ID_RANGE[0], maximum=EVENT_ID_RANGE[1]
            )
        found = await csms.device_model.events(
            charger_id, limit=limit, before=before, before_event_id=before_event
        )
        last = found[-1] if len(found) == limit else None
        return json_response(
            {
                "charger_id": charger_id,
                "events": [event_document(e) for e in found],
                "next": None
                if last is None
                else {"before": last.occurred_at.isoformat(), "before_event": last.event_id},
            }
        )

    async def report(request: web.Request) -> web.StreamResponse:
        principal = await context.caller(request)
        assert principal.cpo_id is not None
        row = await context.charger_row(principal.cpo_id, request.match_info["charger_id"])
        body = await json_object(request) if request.can_read_body else {}
        raw = body.get("base", FULL_INVENTORY)
        if raw not in REPORT_BASES:
            raise bad_request(f"'base' must be one of {', '.join(REPORT_BASES)}, got {raw!r}")
        asked = await get_base_report(csms.commands, csms.device_model, row["charger_id"], ReportBase(raw))
        result = asked.result
        await context.audit(
            principal,
            "charger.report",
            "charger",
            row["charger_id"],
            {
                "request": body,
                "request_id": asked.request_id,
                "outcome": result.outcome.value,
                "status": result.status,
            },
        )
        return command_answer(result, extra={"request_id": asked.request_id})

    base = f"{PREFIX}/chargers/{{charger_id}}"
    api.add(
        Operation(
            "GET",
            f"{base}/variables",
            variables,
            spec(
                "The charger's device model as last reported (2.0.1 NotifyReport)",
                VARIABLES,
                parameters=[
                    CHARGER,
                    query_param("component", {"type": "string"}, "only this component's (any case)"),
                    query_param("variable", {"type": "string"}, "only variables of this name (any case)"),
                ],
            ),
        )
    )
    api.add(
        Operation(
            "GET",
            f"{base}/events",
            events,
            spec(
                "The charger's events (2.0.1 NotifyEvent), newest first",
                EVENTS,
                parameters=[
                    CHARGER,
                    query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
                    query_param("before", TIME, "only events that occurred before this time"),
                    query_param(
                        "before_event",
                        {"type": "integer"},
                        "with before: also the events at that time with a smaller eventId (see next)",
                    ),
                ],
            ),
        )
    )
    api.add(
        Operation(
            "POST",
            f"{base}/report",
            report,
            spec(
                "Ask the charger for a device-model report (GetBaseReport); its parts update the variables",
                REPORT_ANSWER,
                body={
                    "type": "object",
                    "properties": {"base": {"enum": REPORT_BASES, "default": FULL_INVENTORY}},
                },
                parameters=[CHARGER],
            ),
        )
    )
