"""Versioned tariffs in PostgreSQL and which one applies to a charger.

A tariff is stored as its OCPI 2.2.1 JSON, one row per version. Publishing a version without a
``start_date_time`` starts it now, so a price change applies to sessions that start afterwards
and a running session keeps the version in force when it started
(:meth:`tariffs.model.TariffVersions.in_force_at`). A charger's own assignment wins over its
station's. The store caches parsed versions per tariff id for ``cache_ttl_s`` (prices shown in
nearby search and live estimates; billing reads through with ``fresh=True``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from csms.storage.database import Database
from sessions.errors import SessionsError
from tariffs.model import Tariff, TariffVersions
from tariffs.ocpi import parse_tariff


@dataclass(frozen=True, slots=True)
class PricedCharger:
    """The tariff versions that apply to a charger and the local time zone they are read in."""

    tariff_id: str
    versions: TariffVersions
    time_zone: str


class TariffStore:
    """Reads and publishes tariff versions and assignments."""

    def __init__(self, database: Database, *, cache_ttl_s: float = 5.0) -> None:
        self._database = database
        self._cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, TariffVersions]] = {}

    async def publish(
        self,
        body: dict[str, Any],
        *,
        cpo_id: str | None,
        created_by: str | None,
        now: datetime | None = None,
        connection: Any = None,
    ) -> Tariff:
        """Store ``body`` (OCPI Tariff JSON) as the next version of its tariff; parse errors raise.

        With ``connection`` (in a transaction) the version is written in that transaction, so it
        commits or rolls back with the caller's other changes (``fairwatt apply``).
        """
        at = now or datetime.now(UTC)
        tariff = parse_tariff(body)
        stored = dict(body)
        if tariff.start_date_time is None:
            stored["start_date_time"] = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        stored.setdefault("last_updated", at.astimezone(UTC).isoformat().replace("+00:00", "Z"))
        tariff = parse_tariff(stored)
        if connection is not None:
            async with connection.transaction():
                await self._insert(connection, tariff, stored, cpo_id, created_by)
        else:
            async with self._database.pool.acquire() as own, own.transaction():
                await self._insert(own, tariff, stored, cpo_id, created_by)
        self._cache.pop(tariff.tariff_id, None)
        return tariff

    async def _insert(
        self,
        connection: Any,
        tariff: Tariff,
        stored: dict[str, Any],
        cpo_id: str | None,
        created_by: str | None,
    ) -> None:
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", tariff.tariff_id)
        version = await connection.fetchval(
            "SELECT coalesce(max(version), 0) + 1 FROM tariffs WHERE tariff_id = $1", tariff.tariff_id
        )
        await connection.execute(
            """INSERT INTO tariffs (tariff_id, version, cpo_id, body, created_by)
               VALUES ($1, $2, $3, $4, $5)""",
            tariff.tariff_id,
            version,
            cpo_id,
            stored,
            created_by,
        )

    async def versions(self, tariff_id: str, *, fresh: bool = False) -> TariffVersions | None:
        """Every stored version of ``tariff_id`` (``None`` when there is none)."""
        cached = self._cache.get(tariff_id)
        if cached is not None and not fresh and time.monotonic() - cached[0] < self._cache_ttl_s:
            return cached[1]
        rows = await self._database.pool.fetch(
            "SELECT body FROM tariffs WHERE tariff_id = $1 ORDER BY version", tariff_id
        )
        if not rows:
            return None
        versions = TariffVersions.of(parse_tariff(_decoded(row["body"])) for row in rows)
        self._cache[tariff_id] = (time.monotonic(), versions)
        return versions

    async def assign(self, scope: str, scope_id: str, tariff_id: str) -> None:
        """Make ``tariff_id`` apply to a charger (``scope="charger"``) or a station."""
        if scope not in ("charger", "station"):
            raise SessionsError(f"tariff scope must be charger or station, got {scope!r}")
        await self._database.pool.execute(
            """INSERT INTO tariff_assignments (scope, scope_id, tariff_id) VALUES ($1, $2, $3)
               ON CONFLICT (scope, scope_id) DO UPDATE SET tariff_id = excluded.tariff_id""",
            scope,
            scope_id,
            tariff_id,
        )

    async def for_charger(self, charger_id: str, *, fresh: bool = False) -> PricedCharger | None:
        """The tariff of ``charger_id`` (its own, else its station's) and its station's time zone."""
        row = await self._database.pool.fetchrow(
            """SELECT coalesce(own.tariff_id, site.tariff_id) AS tariff_id,
                      coalesce(s.time_zone, 'UTC') AS time_zone
               FROM chargers c
               LEFT JOIN stations s ON s.station_id = c.station_id
               LEFT JOIN tariff_assignments own ON own.scope = 'charger' AND own.scope_id = c.charger_id
               LEFT JOIN tariff_assignments site ON site.scope = 'station' AND site.scope_id = c.station_id
               WHERE c.charger_id = $1""",
            charger_id,
        )
        if row is None or row["tariff_id"] is None:
            return None
        versions = await self.versions(row["tariff_id"], fresh=fresh)
        if versions is None:
            return None
        return PricedCharger(row["tariff_id"], versions, row["time_zone"])


def _decoded(body: Any) -> Any:
    """asyncpg gives jsonb decoded (the pool's codec); a plain connection may give text."""
    if isinstance(body, str):
        return json.loads(body)
    return body
