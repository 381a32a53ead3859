"""Drivers, their id tokens and payment methods: created by an operator (``fairwatt drivers``).

A payment method is only the payment provider's token, never card data. Creating a driver that
exists already updates it and adds the tokens given, so the command can be re-run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from csms.storage.database import Database
from sessions.errors import SessionsError

_ID = re.compile(r"^[\x21-\x7e]{1,255}$")
_ID_TAG = re.compile(r"^[\x21-\x7e]{1,36}$")  # 2.0.1 IdTokenType; 1.6 idTags are at most 20


@dataclass(frozen=True, slots=True)
class NewDriver:
    driver_id: str
    rfid_tokens: Sequence[str] = ()
    payment_token: str | None = None
    """The provider's token of the driver's payment method (``PM-{driver_id}``)."""
    name: str | None = None
    email: str | None = None
    cpo_id: str | None = None

    def __post_init__(self) -> None:
        if not _ID.match(self.driver_id):
            raise SessionsError(f"driver id must be 1 to 255 printable characters, got {self.driver_id!r}")
        for token in self.rfid_tokens:
            if not _ID_TAG.match(token):
                raise SessionsError(f"RFID token must be 1 to 36 printable characters, got {token!r}")
        if self.payment_token is not None and not _ID.match(self.payment_token):
            raise SessionsError("payment token must be 1 to 255 printable characters")

    @property
    def payment_method_id(self) -> str | None:
        return None if self.payment_token is None else f"PM-{self.driver_id}"


async def create_driver(database: Database, driver: NewDriver) -> None:
    """Store ``driver`` with its RFID tokens and payment method (one transaction).

    An RFID token that belongs to another driver is refused (:class:`SessionsError`).
    """
    async with database.pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """INSERT INTO drivers (driver_id, name, email, cpo_id) VALUES ($1, $2, $3, $4)
               ON CONFLICT (driver_id) DO UPDATE SET name = COALESCE(EXCLUDED.name, drivers.name),
                   email = COALESCE(EXCLUDED.email, drivers.email),
                   cpo_id = COALESCE(EXCLUDED.cpo_id, drivers.cpo_id)""",
            driver.driver_id,
            driver.name,
            driver.email,
            driver.cpo_id,
        )
        for token in driver.rfid_tokens:
            owner = await connection.fetchval(
                """INSERT INTO driver_tokens (id_token, driver_id) VALUES ($1, $2)
                   ON CONFLICT (id_token) DO UPDATE SET updated_at = now() RETURNING driver_id""",
                token,
                driver.driver_id,
            )
            if owner != driver.driver_id:
                raise SessionsError(f"RFID token {token} belongs to another driver")
        if driver.payment_token is not None:
            await connection.execute(
                """INSERT INTO payment_methods (payment_method_id, driver_id, provider_token, is_default)
                   VALUES ($1, $2, $3, true)
                   ON CONFLICT (payment_method_id) DO UPDATE SET provider_token = EXCLUDED.provider_token""",
                driver.payment_method_id,
                driver.driver_id,
                driver.payment_token,
            )


async def driver_exists(database: Database, driver_id: str) -> bool:
    return bool(await database.pool.fetchval("SELECT true FROM drivers WHERE driver_id = $1", driver_id))
