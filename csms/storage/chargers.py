"""The charger registry: identity, ownership, hardware, location, credentials, registration state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from csms.domain.events import ChargerBooted, RegistrationStatus
from csms.storage.database import Database


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    evse_id: int
    connector_id: int
    connector_type: str | None = None
    max_power_kw: float | None = None


@dataclass(frozen=True, slots=True)
class ChargerRecord:
    """A registered charger; ``password_hash`` is set when it must authenticate with HTTP Basic.

    ``security_profile`` is the OCPP security profile configured for it (1, 2 or 3): a connection
    offering less is refused. ``None``: not configured, the node's profile applies."""

    charger_id: str
    station_id: str | None = None
    cpo_id: str | None = None
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    latitude_deg: float | None = None
    longitude_deg: float | None = None
    password_hash: str | None = None
    registration_status: RegistrationStatus = RegistrationStatus.ACCEPTED
    auto_registered: bool = False
    connectors: tuple[ConnectorSpec, ...] = field(default_factory=tuple)
    security_profile: int | None = None


class ChargerRepository:
    """Reads and writes the ``chargers`` and ``connectors`` tables."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, charger_id: str) -> ChargerRecord | None:
        """The charger with its connectors, ``None`` when unknown."""
        async with self._database.pool.acquire() as connection:
            row = await connection.fetchrow("SELECT * FROM chargers WHERE charger_id = $1", charger_id)
            if row is None:
                return None
            connector_rows = await connection.fetch(
                "SELECT * FROM connectors WHERE charger_id = $1 ORDER BY evse_id, connector_id", charger_id
            )
        return _record(row, connector_rows)

    async def save(self, record: ChargerRecord) -> None:
        """Insert or replace a charger and its connectors (operator registration)."""
        async with self._database.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                """INSERT INTO chargers (charger_id, station_id, cpo_id, vendor, model, serial_number,
                       firmware_version, latitude_deg, longitude_deg, password_hash, registration_status,
                       auto_registered, security_profile)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                   ON CONFLICT (charger_id) DO UPDATE SET station_id = $2, cpo_id = $3, vendor = $4,
                       model = $5, serial_number = $6, firmware_version = $7, latitude_deg = $8,
                       longitude_deg = $9, password_hash = $10, registration_status = $11,
                       auto_registered = $12, security_profile = $13""",
                record.charger_id,
                record.station_id,
                record.cpo_id,
                record.vendor,
                record.model,
                record.serial_number,
                record.firmware_version,
                record.latitude_deg,
                record.longitude_deg,
                record.password_hash,
                record.registration_status.value,
                record.auto_registered,
                record.security_profile,
            )
            await connection.execute("DELETE FROM connectors WHERE charger_id = $1", record.charger_id)
            await connection.executemany(
                """INSERT INTO connectors (charger_id, evse_id, connector_id, connector_type, max_power_kw)
                   VALUES ($1, $2, $3, $4, $5)""",
                [
                    (record.charger_id, c.evse_id, c.connector_id, c.connector_type, c.max_power_kw)
                    for c in record.connectors
                ],
            )

    async def register_unknown(self, charger_id: str, status: RegistrationStatus) -> ChargerRecord:
        """Auto-register ``charger_id`` unless it exists; return the stored record."""
        async with self._database.pool.acquire() as connection:
            await connection.execute(
                """INSERT INTO chargers (charger_id, registration_status, auto_registered)
                   VALUES ($1, $2, true) ON CONFLICT (charger_id) DO NOTHING""",
                charger_id,
                status.value,
            )
        record = await self.get(charger_id)
        assert record is not None
        return record

    async def record_boot(self, boot: ChargerBooted) -> RegistrationStatus | None:
        """Store what the charger reported at boot; its registration status (None when unknown)."""
        async with self._database.pool.acquire() as connection:
            status: Any = await connection.fetchval(
                """UPDATE chargers SET vendor = $2, model = $3, serial_number = $4,
                       firmware_version = $5, last_boot_at = $6
                   WHERE charger_id = $1 RETURNING registration_status""",
                boot.charger_id,
                boot.vendor,
                boot.model,
                boot.serial_number,
                boot.firmware_version,
                boot.at,
            )
        return None if status is None else RegistrationStatus(status)

    async def booted_registrations(self, charger_ids: Sequence[str]) -> dict[str, RegistrationStatus]:
        """The registration status of those of ``charger_ids`` that booted at least once (what a
        BootNotification of theirs is answered now)."""
        async with self._database.pool.acquire() as connection:
            rows = await connection.fetch(
                """SELECT charger_id, registration_status FROM chargers
                   WHERE charger_id = ANY($1::text[]) AND last_boot_at IS NOT NULL""",
                list(charger_ids),
            )
        return {row["charger_id"]: RegistrationStatus(row["registration_status"]) for row in rows}

    async def configured_above(self, security_profile: int) -> dict[str, int]:
        """The chargers configured for a security profile above ``security_profile``, with theirs."""
        async with self._database.pool.acquire() as connection:
            rows = await connection.fetch(
                """SELECT charger_id, security_profile FROM chargers
                   WHERE security_profile > $1 ORDER BY charger_id""",
                security_profile,
            )
        return {row["charger_id"]: int(row["security_profile"]) for row in rows}


def _record(row: Any, connector_rows: Any) -> ChargerRecord:
    return ChargerRecord(
        charger_id=row["charger_id"],
        station_id=row["station_id"],
        cpo_id=row["cpo_id"],
        vendor=row["vendor"],
        model=row["model"],
        serial_number=row["serial_number"],
        firmware_version=row["firmware_version"],
        latitude_deg=row["latitude_deg"],
        longitude_deg=row["longitude_deg"],
        password_hash=row["password_hash"],
        registration_status=RegistrationStatus(row["registration_status"]),
        auto_registered=row["auto_registered"],
        connectors=tuple(
            ConnectorSpec(r["evse_id"], r["connector_id"], r["connector_type"], r["max_power_kw"])
            for r in connector_rows
        ),
        security_profile=row["security_profile"],
    )
