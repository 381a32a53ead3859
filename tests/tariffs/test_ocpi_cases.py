"""Every OCPI pricing case in fixtures/ocpi (30), comparing every expected total.

Sources and licences: fixtures/ocpi/SOURCES.md. Values are compared at the precision the source
states, never coarser than the currency's minor unit (money) or 3 decimals (quantities).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tariffs import money
from tariffs.cdr import CdrTotals, CostPart
from tariffs.engine import price_session
from tariffs.model import DimensionType
from tariffs.ocpi import parse_session, parse_tariff

FIXTURES = Path(__file__).parent / "fixtures" / "ocpi"
CASE_FILES = sorted(FIXTURES.glob("*.json"))
QUANTITY_MIN_DECIMALS = 3
MINUTES_PER_HOUR = Decimal(60)

# Decisions where sources conflict (see SOURCES.md). Each replaces the fixture's expected value.
OVERRIDES: dict[str, dict[str, Any]] = {
    # tandemdrive ignores min_price and expects 0.30/0.33; OCPI 2.2.1 says the session costs at least
    # min_price (its own example spec_tariff_12 bills 0.50/0.55 for < 2 kWh). We follow the spec; the
    # energy sub-total keeps the fixture's 0.30/0.33 (the uplift is not attributed to a part).
    "td__025kwh_min_price__cdr2_less_than_2kWh": {
        "total_cost": {"excl_vat": Decimal("0.50"), "incl_vat": Decimal("0.55")},
    },
    # The spec's example CDR states total_energy 15.342 but its only period has no ENERGY dimension;
    # nothing can derive 15.342 from the periods. We report the sum of ENERGY volumes.
    "ocpi_spec__cdr_example": {"total_energy": Decimal(0)},
}
# Conflicts decided in favour of the value the case file already holds (asserted unchanged):
# - spec_tariff_14_step_size_ex1: 0.55 (release-2.2.1-bugfixes, matches the CDR step_size rule and
#   tandemdrive's td__step_size__cdr1) over the 2.2.1 tag's 0.383.
# - spec_tariff_14_step_size_ex3_free_after_20: 0.73 (bug-fix branch: only the 8 paid parking
#   minutes round up to 15) over the tag's 0.78, which rounded charging and parking together.
# - spec_tariff_4_complex_saturday: 12.375/13.975 (tag; 114 min x 1.25/h = 2.375) over the bug-fix
#   branch's 2.28/13.861, an arithmetic error.
# - td__step_size__cdr1: volumes disagree with timestamps; we price volumes and take total_time from
#   timestamps, as tandemdrive does; 0.5502 is compared at its stated 4 decimals.


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(-exponent, 0)


def _round(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def _same(actual: Decimal, expected: object, floor: int) -> tuple[Decimal, Decimal]:
    wanted = Decimal(str(expected))
    decimals = max(_decimals(wanted), floor)
    return _round(actual, decimals), _round(wanted, decimals)


def _billed_minutes(totals: CdrTotals, dimension: DimensionType, after: time | None = None) -> Decimal:
    hours = sum(
        (
            line.billed
            for line in totals.lines
            if line.dimension is dimension and (after is None or line.period_start_utc.time() >= after)
        ),
        Decimal(0),
    )
    return hours * MINUTES_PER_HOUR


def _billed_kwh(totals: CdrTotals, after: time | None = None) -> Decimal:
    return sum(
        (
            line.billed
            for line in totals.lines
            if line.dimension is DimensionType.ENERGY
            and (after is None or line.period_start_utc.time() >= after)
        ),
        Decimal(0),
    )


FIVE_PM = time(17, 0)
COST_FIELDS: dict[str, Callable[[CdrTotals], CostPart]] = {
    "total_cost": lambda t: t.total_cost,
    "total_fixed_cost": lambda t: t.total_fixed_cost,
    "total_energy_cost": lambda t: t.total_energy_cost,
    "total_time_cost": lambda t: t.total_time_cost,
    "total_parking_cost": lambda t: t.total_parking_cost,
}
QUANTITY_FIELDS: dict[str, Callable[[CdrTotals], Decimal]] = {
    "total_energy": lambda t: t.total_energy_kwh,
    "total_time": lambda t: t.total_time_h,
    "total_parking_time": lambda t: t.total_parking_time_h,
    "billed_energy_kwh_total": _billed_kwh,
    "billed_energy_kwh_after_1700": lambda t: _billed_kwh(t, FIVE_PM),
    "billed_time_min": lambda t: _billed_minutes(t, DimensionType.TIME),
    "billed_time_min_total": lambda t: _billed_minutes(t, DimensionType.TIME),
    "billed_time_min_after_1700": lambda t: _billed_minutes(t, DimensionType.TIME, FIVE_PM),
    "billed_parking_min": lambda t: _billed_minutes(t, DimensionType.PARKING_TIME),
}


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    return case


def test_all_thirty_cases_are_present() -> None:
    assert len(CASE_FILES) == 30
    assert {_load(path)["case_id"] for path in CASE_FILES} == {path.stem for path in CASE_FILES}


@pytest.mark.parametrize("path", CASE_FILES, ids=[path.stem for path in CASE_FILES])
def test_case_prices_to_expected_totals(path: Path) -> None:
    case = _load(path)
    expected: dict[str, Any] = {**case["expected"], **OVERRIDES.get(case["case_id"], {})}
    tariff = parse_tariff(case["tariff"])
    totals = price_session(tariff, parse_session(case["session"]), ZoneInfo(case["time_zone"]))
    money_floor = money.minor_units(tariff.currency)
    checked = 0
    for field, value in expected.items():
        if field in COST_FIELDS:
            part = COST_FIELDS[field](totals)
            for side, actual in (("excl_vat", part.excl_vat), ("incl_vat", part.incl_vat)):
                if side in value:
                    got, want = _same(actual, value[side], money_floor)
                    assert got == want, f"{field}.{side}: got {actual}, expected {value[side]}"
                    checked += 1
        elif field in QUANTITY_FIELDS:
            got, want = _same(QUANTITY_FIELDS[field](totals), value, QUANTITY_MIN_DECIMALS)
            assert got == want, f"{field}: got {QUANTITY_FIELDS[field](totals)}, expected {value}"
            checked += 1
        elif field == "warnings":
            assert set(totals.warnings) == set(value)
            checked += 1
        else:
            pytest.fail(f"expected field {field!r} is not compared")
    assert checked >= 1
