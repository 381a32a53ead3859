"""What the commands that work without a running server share: the server's token secret and a
short connection to its database (``fairwatt drivers``, ``fairwatt operators``)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from csms.storage.database import Database
from fairwatt.errors import FairwattError

T = TypeVar("T")
TOKEN_SECRET_ENV = "FAIRWATT_TOKEN_SECRET"


def server_token_secret(secret_file: Path | None, error: type[FairwattError]) -> str:
    """The secret ``fairwatt serve`` signs tokens with: ``secret_file``, else ``FAIRWATT_TOKEN_SECRET``."""
    if secret_file is not None:
        try:
            return str(secret_file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise error(f"{secret_file}: {exc.strerror}") from None
    secret = os.environ.get(TOKEN_SECRET_ENV)
    if not secret:
        raise error(f"give the server's token secret: --secret-file FILE or {TOKEN_SECRET_ENV}")
    return secret


async def with_database(
    dsn: str, migrations: Sequence[str], work: Callable[[Database], Awaitable[T]], error: type[FairwattError]
) -> T:
    """Run ``work`` on the server's database (migrated with ``migrations``), then close it."""
    database = Database(dsn, max_connections=1)
    for package in migrations:
        database.add_migrations(package)
    try:
        await database.open()
    except OSError as exc:
        raise error(f"cannot reach the database: {exc}") from None
    try:
        return await work(database)
    finally:
        await database.close()
