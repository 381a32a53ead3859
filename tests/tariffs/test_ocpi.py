"""OCPI 2.2.1 import/export: round trips and error messages that name the field path."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tariffs.cdr import CdrDimension
from tariffs.engine import price_session
from tariffs.errors import TariffParseError
from tariffs.model import DayOfWeek, DimensionType, Restrictions, Tariff, TariffElement, TariffType
from tariffs.model import ReservationRestriction as Kind
from tariffs.ocpi import cdr_totals_to_ocpi, parse_session, parse_tariff, tariff_to_ocpi
from tests.tariffs.builders import component, period, session

FIXTURES = Path(__file__).parent / "fixtures" / "ocpi"
CASE_FILES = sorted(FIXTURES.glob("*.json"))


def _case(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (FIXTURES / f"{name}.json").read_text(encoding="utf-8"), parse_float=Decimal
    )
    return data


def test_complex_tariff_is_read_into_the_model() -> None:
    tariff = parse_tariff(_case("spec_tariff_4_complex_monday")["tariff"])
    assert tariff.tariff_type is TariffType.REGULAR
    assert tariff.currency == "EUR"
    assert len(tariff.elements) == 6
    weekday_time = tariff.elements[2]
    assert weekday_time.price_components[0].dimension is DimensionType.TIME
    assert weekday_time.price_components[0].price == Decimal("2.0")
    assert weekday_time.price_components[0].step_size == 600
    assert weekday_time.price_components[0].vat_percent == Decimal("20.0")
    assert weekday_time.restrictions is not None
    assert weekday_time.restrictions.min_current_a == Decimal("32.0")
    assert DayOfWeek.FRIDAY in weekday_time.restrictions.days_of_week
    parking = tariff.elements[4].restrictions
    assert parking is not None
    assert (parking.start_time, parking.end_time) == (time(9), time(18))
    assert tariff.last_updated == datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)


@pytest.mark.parametrize("path", CASE_FILES, ids=[path.stem for path in CASE_FILES])
def test_export_then_import_gives_the_same_tariff(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    tariff = parse_tariff(case["tariff"])
    assert parse_tariff(tariff_to_ocpi(tariff)) == tariff


def test_export_keeps_the_ocpi_field_names() -> None:
    raw = _case("spec_tariff_6_max_price_50kwh")["tariff"]
    exported = tariff_to_ocpi(parse_tariff(raw))
    assert exported["max_price"] == {"excl_vat": Decimal("10.0"), "incl_vat": Decimal("11.0")}
    assert exported["end_date_time"] == "2019-06-30T23:59:59Z"
    assert exported["elements"][0]["price_components"][1] == {
        "type": "ENERGY",
        "price": Decimal("0.25"),
        "vat": Decimal("10.0"),
        "step_size": 1,
    }


def test_floats_are_read_through_their_shortest_repr() -> None:
    raw = {
        "id": "1",
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": 0.1, "step_size": 1}]}],
    }
    assert parse_tariff(raw).elements[0].price_components[0].price == Decimal("0.1")


def _broken(change: str, value: object) -> dict[str, Any]:
    raw: dict[str, Any] = copy.deepcopy(_case("spec_tariff_4_complex_monday")["tariff"])
    target: Any = raw
    keys: list[str | int] = [int(k) if k.isdigit() else k for k in change.split(".")]
    for key in keys[:-1]:
        target = target[key]
    if value is None:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("change", "value", "message"),
    [
        ("currency", None, "currency: is required"),
        ("currency", "EURO", "currency: longer than 3 characters"),
        ("elements", [], "elements: a tariff needs at least one element"),
        (
            "elements.1.price_components.0.type",
            "KWH",
            "elements[1].price_components[0].type: unknown value 'KWH'",
        ),
        (
            "elements.1.price_components.0.price",
            -1,
            "elements[1].price_components[0].price: must be at least 0",
        ),
        (
            "elements.1.price_components.0.price",
            True,
            "elements[1].price_components[0].price: expected a number",
        ),
        (
            "elements.1.price_components.0.step_size",
            1.5,
            "elements[1].price_components[0].step_size: expected a whole",
        ),
        (
            "elements.4.restrictions.start_time",
            "25:00",
            "elements[4].restrictions.start_time: expected a time of day",
        ),
        (
            "elements.4.restrictions.day_of_week.1",
            "MONDEI",
            "elements[4].restrictions.day_of_week[1]: unknown value",
        ),
        ("elements.2.restrictions", [], "elements[2].restrictions: expected an object"),
        ("last_updated", "yesterday", "last_updated: not an RFC 3339 timestamp"),
    ],
)
def test_errors_name_the_field_path(change: str, value: object, message: str) -> None:
    with pytest.raises(TariffParseError) as raised:
        parse_tariff(_broken(change, value))
    assert str(raised.value).startswith(message)


def test_session_periods_and_dimensions_are_read() -> None:
    session = parse_session(_case("spec_tariff_4_complex_saturday")["session"])
    assert session.start_utc == datetime(2019, 6, 1, 13, 30, tzinfo=UTC)
    assert session.end_utc == datetime(2019, 6, 1, 16, 35, tzinfo=UTC)
    assert len(session.charging_periods) == 2
    assert session.charging_periods[0].volume(CdrDimension.MIN_CURRENT) == Decimal(43)
    assert session.charging_periods[1].volume(CdrDimension.PARKING_TIME) == Decimal("1.1833333333")


def test_session_errors_name_the_field_path() -> None:
    raw = copy.deepcopy(_case("spec_tariff_4_complex_saturday")["session"])
    raw["charging_periods"][1]["dimensions"][0]["type"] = "PARKING"
    with pytest.raises(
        TariffParseError, match=r"^charging_periods\[1\]\.dimensions\[0\]\.type: unknown value"
    ):
        parse_session(raw)
    raw = copy.deepcopy(_case("spec_tariff_4_complex_saturday")["session"])
    raw["charging_periods"].reverse()
    with pytest.raises(TariffParseError, match="chronological order"):
        parse_session(raw)


def test_cdr_totals_are_rounded_per_currency_on_export() -> None:

    reserve = TariffElement(
        (component(DimensionType.TIME, "100", 60),), Restrictions(reservation=Kind.RESERVATION)
    )
    energy = TariffElement((component(DimensionType.ENERGY, "33.3", vat="10"),))
    tariff = Tariff(tariff_id="JP1", currency="JPY", elements=(reserve, energy))
    s = session(
        "2024-01-15T09:45",
        "2024-01-15T11:00",
        period("2024-01-15T09:45", reservation_time="0.25"),
        period("2024-01-15T10:00", energy="10.5"),
    )
    exported = cdr_totals_to_ocpi(price_session(tariff, s, UTC))
    assert exported["total_energy_cost"] == {
        "excl_vat": Decimal(350),
        "incl_vat": Decimal(385),
    }  # 349.65 / 384.615
    assert exported["total_reservation_cost"] == {"excl_vat": Decimal(25), "incl_vat": Decimal(25)}
    assert exported["total_reservation_time"] == Decimal("0.25")
    assert exported["total_cost"] == {"excl_vat": Decimal(375), "incl_vat": Decimal(410)}  # 374.65 / 409.615
    assert "total_time_cost" not in exported  # nothing priced TIME outside the reservation
