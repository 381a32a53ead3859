"""The PostgreSQL connection pool and schema migrations.

Migrations are numbered SQL files in ``migrations/`` (``0001_name.sql``); on start-up every
file not yet recorded in ``schema_migrations`` is applied in one transaction, under an advisory
lock so several nodes starting together apply each migration once.
"""

from __future__ import annotations

import json
import logging
import re
from importlib import resources
from typing import Any

import asyncpg

from csms.errors import StorageError

logger = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_MIGRATION_LOCK_KEY = 0x6661697277617474  # "fairwatt"


async def _init_connection(connection: Any) -> None:
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class Database:
    """An asyncpg pool opened by :meth:`open` (app start-up) and closed by :meth:`close`."""

    def __init__(self, dsn: str, *, min_connections: int = 1, max_connections: int = 10) -> None:
        self._dsn = dsn
        self._min_connections = min_connections
        self._max_connections = max_connections
        self._pool: Any = None

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=self._min_connections, max_size=self._max_connections, init=_init_connection
        )
        await apply_migrations(self._pool)

    async def close(self) -> None:
        """Close every connection of the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> Any:
        """The asyncpg pool; :class:`StorageError` before :meth:`open`."""
        if self._pool is None:
            raise StorageError("database is not open")
        return self._pool


def read_migrations() -> list[tuple[int, str, str]]:
    """``(number, name, sql)`` of every migration file, in order."""
    found: list[tuple[int, str, str]] = []
    for entry in resources.files("csms.storage.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [number for number, _, _ in found]
    if len(set(numbers)) != len(numbers):
        raise StorageError(f"two migrations share a number: {numbers}")
    return found


async def apply_migrations(pool: Any) -> list[int]:
    """Apply the migrations not applied yet, in one transaction; return their numbers."""
    migrations = read_migrations()
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
        await connection.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await connection.fetch("SELECT version FROM schema_migrations")
        applied = {row["version"] for row in rows}
        newly_applied: list[int] = []
        for number, name, sql in migrations:
            if number in applied:
                continue
            logger.info("applying migration %04d_%s", number, name)
            await connection.execute(sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", number, name
            )
            newly_applied.append(number)
        return newly_applied
