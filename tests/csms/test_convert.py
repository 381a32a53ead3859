"""Pure translations: timestamps, meter value scaling, migrations bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.errors import OcppProtocolError
from csms.protocol.convert import (
    energy_register_wh,
    format_timestamp,
    parse_timestamp,
    samples_v16,
    samples_v201,
)
from csms.storage.database import apply_migrations, read_migrations
from tests.csms.conftest import RunningCsms


def test_timestamps_are_utc_inside_and_z_outside() -> None:
    assert parse_timestamp("2026-03-01T12:00:00+02:00") == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert parse_timestamp("2026-03-01T10:00:00Z") == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert parse_timestamp("2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert format_timestamp(datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)) == "2026-03-01T10:00:00.123Z"
    with pytest.raises(OcppProtocolError):
        parse_timestamp("yesterday")


def test_v16_samples_scale_kilo_units_and_default_to_the_energy_register() -> None:
    samples = samples_v16(
        "CP",
        1,
        "7",
        [
            {
                "timestamp": "2026-03-01T10:00:00Z",
                "sampledValue": [
                    {"value": "12.5", "unit": "kWh"},
                    {"value": "3.7", "unit": "kW", "measurand": "Power.Active.Import", "phase": "L1"},
                    {"value": "abcd", "format": "SignedData"},
                ],
            }
        ],
    )
    assert [(s.measurand, s.value, s.unit, s.phase) for s in samples] == [
        ("Energy.Active.Import.Register", 12500.0, "Wh", None),
        ("Power.Active.Import", 3700.0, "W", "L1"),
    ]
    assert energy_register_wh(samples) == 12500.0
    with pytest.raises(OcppProtocolError):
        samples_v16("CP", 1, None, [{"timestamp": "2026-03-01T10:00:00Z", "sampledValue": [{"value": "x"}]}])


def test_v201_samples_apply_the_multiplier() -> None:
    samples = samples_v201(
        "CS",
        2,
        None,
        [
            {
                "timestamp": "2026-03-01T10:00:00Z",
                "sampledValue": [
                    {"value": 4.2, "unitOfMeasure": {"unit": "Wh", "multiplier": 3}},
                    {"value": 16, "measurand": "Current.Import", "unitOfMeasure": {"unit": "A"}},
                ],
            }
        ],
    )
    assert [(s.value, s.unit) for s in samples] == [(4200.0, "Wh"), (16.0, "A")]
    assert energy_register_wh([samples[1]]) is None


def test_migrations_are_numbered_in_order() -> None:
    numbers = [number for number, _, _ in read_migrations()]
    assert numbers == sorted(numbers)
    assert numbers[0] == 1


@pytest.mark.asyncio
async def test_migrations_apply_once(csms: RunningCsms) -> None:
    assert await apply_migrations(csms.runtime.database.pool) == []
    async with csms.runtime.database.pool.acquire() as connection:
        versions = await connection.fetch(
            "SELECT version FROM schema_migrations WHERE component = 'csms' ORDER BY version"
        )
    assert [v["version"] for v in versions] == [n for n, _, _ in read_migrations()]


@pytest.mark.asyncio
async def test_a_database_from_before_components_keeps_its_migrations(csms: RunningCsms) -> None:
    """A schema_migrations table without components is taken as csms's, nothing is applied twice."""
    async with csms.runtime.database.pool.acquire() as connection:
        await connection.execute(
            """CREATE SCHEMA legacy_migrations;
               CREATE TABLE legacy_migrations.schema_migrations (
                   version integer PRIMARY KEY, name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now());"""
        )
        for number, name, _ in read_migrations():
            await connection.execute(
                "INSERT INTO legacy_migrations.schema_migrations (version, name) VALUES ($1, $2)",
                number,
                name,
            )
        try:
            await connection.execute("SET search_path TO legacy_migrations")
            pool = _SingleConnection(connection)
            assert await apply_migrations(pool) == []
            rows = await connection.fetch("SELECT component, version FROM schema_migrations")
            assert {(r["component"], r["version"]) for r in rows} == {
                ("csms", n) for n, _, _ in read_migrations()
            }
        finally:
            await connection.execute("RESET search_path; DROP SCHEMA legacy_migrations CASCADE")


class _SingleConnection:
    """A pool of one already acquired connection (enough for ``apply_migrations``)."""

    def __init__(self, connection: object) -> None:
        self._connection = connection

    def acquire(self) -> _SingleConnection:
        return self

    async def __aenter__(self) -> object:
        return self._connection

    async def __aexit__(self, *exc: object) -> None:
        return None


def test_201_samples_without_a_unit_are_read_in_their_measurands_unit() -> None:
    # UnitOfMeasureType.unit: "Default = Wh if the (default) measurand is an Energy type"; a
    # power, current or SoC sample without one is in W, A, Percent, not Wh.
    values = [
        {"value": 7400.0, "measurand": "Power.Active.Import"},
        {"value": 16.0, "measurand": "Current.Import", "phase": "L1"},
        {"value": 55.0, "measurand": "SoC"},
        {"value": 12.5},  # the default measurand, the energy register
        {"value": 2.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}},
    ]
    samples = samples_v201("CS", 1, "TX", [{"timestamp": "2026-03-01T10:00:00Z", "sampledValue": values}])
    assert [(s.measurand, s.value, s.unit) for s in samples] == [
        ("Power.Active.Import", 7400.0, "W"),
        ("Current.Import", 16.0, "A"),
        ("SoC", 55.0, "Percent"),
        ("Energy.Active.Import.Register", 12.5, "Wh"),
        ("Power.Active.Import", 2000.0, "W"),
    ]
