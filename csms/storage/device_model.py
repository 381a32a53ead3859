"""The 2.0.1 device model in PostgreSQL: reported variables, report requests and notified events.

A report arrives in parts (NotifyReport ``seqNo`` from 0, ``tbc`` while more follow). Each part's
variable attributes are upserted per charger, component (name, instance, EVSE, connector),
variable (name, instance) and attribute type, so a later report replaces what an earlier one said
(a part generated before the stored value is ignored); the report's row in
``device_model_reports`` collects which parts came, so :attr:`ReportProgress.complete` says when
all are in. A part sent again changes nothing. A request we send (:mod:`csms.commands.reports`)
is recorded before it goes out, so the parts that answer it find it.

A FullInventory lists every variable the station has. When the part that completes one we asked
for is stored, the charger's variable attributes reported before that report began (the earliest
``generatedAt`` of its parts) are removed, in the same transaction: every attribute the report
mentions was stored at (or, already newer, after) its part's ``generatedAt``, so what is older was
neither in the report nor reported since it began (by a later report, say). All times compared are
the station's. ConfigurationInventory, SummaryInventory, GetReport and reports we have no request
of on record remove nothing. A part of an older report arriving after a newer FullInventory
completed (out of generation order) can still add back an attribute that inventory left out.

NotifyEvent events are kept one row each; a message sent again stores nothing twice (an event
is identified by charger, ``eventId`` and its timestamp).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.domain.events import (
    ComponentVariable,
    DeviceEvent,
    DeviceEventsReported,
    DeviceReportPart,
    ReportedVariable,
)
from csms.storage.database import Database

FULL_INVENTORY = "FullInventory"
"""The ReportBase whose report lists every variable (what it leaves out is removed)."""

# first_generated_at stays NULL for a report whose first parts came before migration 0007.
_REPORT_PART = """
    INSERT INTO device_model_reports AS r (charger_id, request_id, seq_nos, last_seq_no, variables,
        generated_at, first_generated_at)
    VALUES ($1, $2, ARRAY[$3::integer], $4, $5, $6, $6)
    ON CONFLICT (charger_id, request_id) DO UPDATE SET
        seq_nos = r.seq_nos || $3::integer, last_seq_no = COALESCE($4, r.last_seq_no),
        variables = r.variables + $5, generated_at = GREATEST(r.generated_at, $6),
        first_generated_at = CASE WHEN cardinality(r.seq_nos) > 0 AND r.first_generated_at IS NULL
                                  THEN NULL ELSE LEAST(r.first_generated_at, $6) END,
        updated_at = now()
    WHERE NOT ($3::integer = ANY (r.seq_nos))
    RETURNING r.requested, r.seq_nos, r.last_seq_no, r.first_generated_at"""

_REMOVE_OLDER = """
    WITH gone AS (DELETE FROM device_model_variables WHERE charger_id = $1 AND reported_at < $2 RETURNING 1)
    SELECT count(*) FROM gone"""

_UPSERT_VARIABLE = """
    INSERT INTO device_model_variables AS v (charger_id, component, component_instance, evse_id,
        connector_id, variable, variable_instance, attribute_type, value, mutability, persistent, constant,
        data_type, unit, min_limit, max_limit, values_list, supports_monitoring, request_id, reported_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
    ON CONFLICT (charger_id, component, component_instance, COALESCE(evse_id, -1), COALESCE(connector_id, -1),
        variable, variable_instance, attribute_type) DO UPDATE SET
        value = EXCLUDED.value, mutability = EXCLUDED.mutability, persistent = EXCLUDED.persistent,
        constant = EXCLUDED.constant,
        data_type = COALESCE(EXCLUDED.data_type, v.data_type), unit = COALESCE(EXCLUDED.unit, v.unit),
        min_limit = COALESCE(EXCLUDED.min_limit, v.min_limit),
        max_limit = COALESCE(EXCLUDED.max_limit, v.max_limit),
        values_list = COALESCE(EXCLUDED.values_list, v.values_list),
        supports_monitoring = COALESCE(EXCLUDED.supports_monitoring, v.supports_monitoring),
        request_id = EXCLUDED.request_id, reported_at = EXCLUDED.reported_at, updated_at = now()
    WHERE v.reported_at <= EXCLUDED.reported_at"""

_SMALLEST_INTEGER = -(2**31)  # below every eventId: (time, it) orders before every event at that time

_INSERT_EVENT = """
    INSERT INTO device_events (charger_id, event_id, occurred_at, event_trigger, actual_value,
        notification_type, component, component_instance, evse_id, connector_id, variable, variable_instance,
        cause, tech_code, tech_info, cleared, transaction_id, variable_monitoring_id, generated_at, seq_no,
        message_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
    ON CONFLICT DO NOTHING"""


def parts_complete(parts: Sequence[int], last_seq_no: int | None) -> bool:
    """Whether the last part (tbc false) and every part before it arrived."""
    return last_seq_no is not None and set(parts) == set(range(last_seq_no + 1))


@dataclass(frozen=True, slots=True)
class ReportProgress:
    """What is known of one report: our request (if any), its answer and the parts received.

    ``began_at``/``generated_at``: the earliest/latest ``generatedAt`` of its parts (station's clock);
    ``removed``: for a complete FullInventory, the variable attributes it removed, else ``None``.
    """

    charger_id: str
    request_id: int
    requested: str | None
    requested_at: datetime | None
    answer: str | None
    parts: tuple[int, ...]
    last_seq_no: int | None
    variables: int
    generated_at: datetime | None
    began_at: datetime | None = None
    removed: int | None = None

    @property
    def complete(self) -> bool:
        """Whether the last part (tbc false) and every part before it arrived."""
        return parts_complete(self.parts, self.last_seq_no)


@dataclass(frozen=True, slots=True)
class StoredPart:
    """What storing one NotifyReport part did: ``fresh`` is ``False`` for a part stored before;
    ``removed`` is set when the part completed a FullInventory (the attributes it removed)."""

    fresh: bool
    removed: int | None = None


@dataclass(frozen=True, slots=True)
class StoredVariable:
    """A variable attribute as last reported: by report ``request_id``, generated at ``reported_at``."""

    reported: ReportedVariable
    request_id: int
    reported_at: datetime


class DeviceModelRepository:
    """Reads and writes ``device_model_reports``, ``device_model_variables`` and ``device_events``."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def report_requested(self, charger_id: str, request_id: int, requested: str, at: datetime) -> None:
        """We are asking ``charger_id`` for report ``request_id`` (``requested``: the ReportBase, or
        ``Custom``); a report of the same id received before is forgotten (ids are reused)."""
        async with self._database.pool.acquire() as connection:
            await connection.execute(
                """INSERT INTO device_model_reports (charger_id, request_id, requested, requested_at)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (charger_id, request_id) DO UPDATE SET requested = $3, requested_at = $4,
                       answer = NULL, seq_nos = '{}', last_seq_no = NULL, variables = 0, generated_at = NULL,
                       first_generated_at = NULL, removed = NULL, updated_at = now()""",
                charger_id,
                request_id,
                requested,
                at,
            )

    async def report_answered(self, charger_id: str, request_id: int, answer: str) -> None:
        """The charger answered our request with ``answer`` (a status, or the command's outcome)."""
        async with self._database.pool.acquire() as connection:
            await connection.execute(
                """UPDATE device_model_reports SET answer = $3, updated_at = now()
                   WHERE charger_id = $1 AND request_id = $2""",
                charger_id,
                request_id,
                answer,
            )

    async def store_report_part(self, part: DeviceReportPart) -> StoredPart:
        """Store one NotifyReport part atomically; the part completing a FullInventory also removes
        what that inventory left out (see the module's docstring)."""
        async with self._database.pool.acquire() as connection, connection.transaction():
            report = await connection.fetchrow(
                _REPORT_PART,
                part.charger_id,
                part.request_id,
                part.seq_no,
                None if part.more else part.seq_no,
                len(part.variables),
                part.generated_at,
            )
            if report is None:
                return StoredPart(fresh=False)
            if part.variables:
                await connection.executemany(
                    _UPSERT_VARIABLE,
                    [
                        _variable_row(part.charger_id, v, part.request_id, part.generated_at)
                        for v in part.variables
                    ],
                )
            began_at = report["first_generated_at"]
            if (
                report["requested"] != FULL_INVENTORY
                or began_at is None
                or not parts_complete(report["seq_nos"], report["last_seq_no"])
            ):
                return StoredPart(fresh=True)
            removed: int = await connection.fetchval(_REMOVE_OLDER, part.charger_id, began_at)
            await connection.execute(
                """UPDATE device_model_reports SET removed = COALESCE(removed, 0) + $3
                   WHERE charger_id = $1 AND request_id = $2""",
                part.charger_id,
                part.request_id,
                removed,
            )
        return StoredPart(fresh=True, removed=removed)

    async def report(self, charger_id: str, request_id: int) -> ReportProgress | None:
        """The progress of report ``request_id`` of ``charger_id``, ``None`` when unknown."""
        async with self._database.pool.acquire() as connection:
            row = await connection.fetchrow(
                "SELECT * FROM device_model_reports WHERE charger_id = $1 AND request_id = $2",
                charger_id,
                request_id,
            )
        if row is None:
            return None
        return ReportProgress(
            charger_id=row["charger_id"],
            request_id=row["request_id"],
            requested=row["requested"],
            requested_at=row["requested_at"],
            answer=row["answer"],
            parts=tuple(sorted(row["seq_nos"])),
            last_seq_no=row["last_seq_no"],
            variables=row["variables"],
            generated_at=row["generated_at"],
            began_at=row["first_generated_at"],
            removed=row["removed"],
        )

    async def variables(
        self, charger_id: str, *, component: str | None = None, variable: str | None = None
    ) -> list[StoredVariable]:
        """The charger's device model as last reported, by component, variable and attribute;
        only ``component``'s / only variables named ``variable`` (either ignoring case) when given."""
        async with self._database.pool.acquire() as connection:
            rows = await connection.fetch(
                """SELECT * FROM device_model_variables
                   WHERE charger_id = $1 AND ($2::text IS NULL OR lower(component) = lower($2))
                         AND ($3::text IS NULL OR lower(variable) = lower($3))
                   ORDER BY component, component_instance, evse_id NULLS FIRST, connector_id NULLS FIRST,
                            variable, variable_instance, attribute_type""",
                charger_id,
                component,
                variable,
            )
        return [StoredVariable(_reported(row), row["request_id"], row["reported_at"]) for row in rows]

    async def store_events(self, reported: DeviceEventsReported) -> None:
        """Store the events of one NotifyEvent message (events stored before are kept as they are)."""
        rows = [_event_row(reported, event) for event in reported.events]
        async with self._database.pool.acquire() as connection:
            await connection.executemany(_INSERT_EVENT, rows)

    async def events(
        self,
        charger_id: str,
        *,
        limit: int = 100,
        before: datetime | None = None,
        before_event_id: int | None = None,
    ) -> list[DeviceEvent]:
        """The charger's latest ``limit`` events, newest first (by time, then ``eventId``).

        ``before``: only events that occurred before it; with ``before_event_id`` too, also those at
        ``before`` with a smaller ``eventId`` (the next page after an event; a charger's event is
        unique by time and ``eventId``).
        """
        async with self._database.pool.acquire() as connection:
            rows = await connection.fetch(
                """SELECT * FROM device_events
                   WHERE charger_id = $1
                         AND ($3::timestamptz IS NULL OR (occurred_at, event_id) < ($3, $4::integer))
                   ORDER BY occurred_at DESC, event_id DESC LIMIT $2""",
                charger_id,
                limit,
                before,
                _SMALLEST_INTEGER if before_event_id is None else before_event_id,
            )
        return [_event(row) for row in rows]


def _target_columns(target: ComponentVariable) -> tuple[Any, ...]:
    return (
        target.component,
        target.component_instance,
        target.evse_id,
        target.connector_id,
        target.variable,
        target.variable_instance,
    )


def _target(row: Any) -> ComponentVariable:
    return ComponentVariable(
        component=row["component"],
        variable=row["variable"],
        component_instance=row["component_instance"],
        variable_instance=row["variable_instance"],
        evse_id=row["evse_id"],
        connector_id=row["connector_id"],
    )


def _variable_row(
    charger_id: str, v: ReportedVariable, request_id: int, reported_at: datetime
) -> tuple[Any, ...]:
    return (
        charger_id,
        *_target_columns(v.target),
        v.attribute_type,
        v.value,
        v.mutability,
        v.persistent,
        v.constant,
        v.data_type,
        v.unit,
        v.min_limit,
        v.max_limit,
        v.values_list,
        v.supports_monitoring,
        request_id,
        reported_at,
    )


def _reported(row: Any) -> ReportedVariable:
    return ReportedVariable(
        target=_target(row),
        attribute_type=row["attribute_type"],
        value=row["value"],
        mutability=row["mutability"],
        persistent=row["persistent"],
        constant=row["constant"],
        data_type=row["data_type"],
        unit=row["unit"],
        min_limit=row["min_limit"],
        max_limit=row["max_limit"],
        values_list=row["values_list"],
        supports_monitoring=row["supports_monitoring"],
    )


def _event_row(reported: DeviceEventsReported, e: DeviceEvent) -> tuple[Any, ...]:
    return (
        reported.charger_id,
        e.event_id,
        e.occurred_at,
        e.trigger,
        e.actual_value,
        e.notification_type,
        *_target_columns(e.target),
        e.cause,
        e.tech_code,
        e.tech_info,
        e.cleared,
        e.transaction_id,
        e.variable_monitoring_id,
        reported.generated_at,
        reported.seq_no,
        reported.message_id,
    )


def _event(row: Any) -> DeviceEvent:
    return DeviceEvent(
        event_id=row["event_id"],
        occurred_at=row["occurred_at"],
        trigger=row["event_trigger"],
        actual_value=row["actual_value"],
        notification_type=row["notification_type"],
        target=_target(row),
        cause=row["cause"],
        tech_code=row["tech_code"],
        tech_info=row["tech_info"],
        cleared=row["cleared"],
        transaction_id=row["transaction_id"],
        variable_monitoring_id=row["variable_monitoring_id"],
    )
