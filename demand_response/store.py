"""Demand-response events in PostgreSQL: the latest version of each, until well after it ends.

Rows are written before an event is enforced, so what the process enforces is what a restart
finds again. ``ends_at`` includes the recovery period and the largest randomisation offset; a
cancelled event's is at most a day after the cancellation (long enough for every node to take it),
so a cancelled open-ended event does not stay current for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from csms.storage.database import Database
from demand_response.events import DrEvent, from_json

MIGRATIONS = "demand_response.migrations"


def _ends_at(event: DrEvent) -> datetime:
    return event.end + event.recovery + event.start_after


class EventStore:
    """Reads and writes ``dr_events`` through the CSMS database's pool."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def save(self, event: DrEvent, *, cpo_id: str | None = None) -> None:
        """Insert or replace the event's row (an older modification never replaces a newer one)."""
        await self._database.pool.execute(
            """
            INSERT INTO dr_events (program, event_id, modification_number, status, starts_at, ends_at,
                                   stations, cpo_id, body)
            VALUES ($1, $2, $3, $4, $5,
                    CASE WHEN $4 = 'cancelled' THEN LEAST($6::timestamptz, now() + interval '1 day')
                         ELSE $6 END,
                    $7, $8, $9)
            ON CONFLICT (program, event_id) DO UPDATE SET
                modification_number = EXCLUDED.modification_number, status = EXCLUDED.status,
                starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, stations = EXCLUDED.stations,
                body = EXCLUDED.body, received_at = now()
            WHERE dr_events.modification_number <= EXCLUDED.modification_number
            """,
            event.program,
            event.event_id,
            event.modification_number,
            event.status.value,
            event.start - event.ramp_up,
            _ends_at(event),
            list(event.stations),
            cpo_id,
            event.to_json(),
        )

    async def current(self, now: datetime, programs: Sequence[str] | None = None) -> list[DrEvent]:
        """Events not yet over at ``now`` (cancelled ones included), of ``programs`` or all."""
        rows: list[Any] = await self._database.pool.fetch(
            "SELECT body FROM dr_events WHERE ends_at > $1 AND ($2::text[] IS NULL OR program = ANY($2))"
            " ORDER BY starts_at, program, event_id",
            now,
            None if programs is None else list(programs),
        )
        return [from_json(row["body"]) for row in rows]

    async def listed(self, *, since: datetime) -> list[tuple[DrEvent, str | None]]:
        """Events ending after ``since`` with the CPO that declared them (manual ones)."""
        rows: list[Any] = await self._database.pool.fetch(
            "SELECT body, cpo_id FROM dr_events WHERE ends_at > $1 ORDER BY starts_at, program, event_id",
            since,
        )
        return [(from_json(row["body"]), row["cpo_id"]) for row in rows]

    async def get(self, program: str, event_id: str) -> tuple[DrEvent, str | None] | None:
        row = await self._database.pool.fetchrow(
            "SELECT body, cpo_id FROM dr_events WHERE program = $1 AND event_id = $2", program, event_id
        )
        return None if row is None else (from_json(row["body"]), row["cpo_id"])

    async def purge(self, before: datetime) -> int:
        """Forget events that ended a day before ``before``; how many."""
        result: str = await self._database.pool.execute(
            "DELETE FROM dr_events WHERE ends_at < $1", before - timedelta(days=1)
        )
        return int(result.split()[-1])
