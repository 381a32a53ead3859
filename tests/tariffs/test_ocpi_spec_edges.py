"""OCPI 2.2.1 tariff semantics, one small hand-checked case each (arithmetic in the comments).

Spec points checked (mod_tariffs, mod_cdrs of OCPI 2.2.1):

* Per dimension, the first element whose restrictions match and that prices the dimension wins;
  no such element: the dimension is free. Empty restrictions restrict nothing.
* FLAT is charged once per session; a FLAT 0.00 tariff is free of charge.
* Worked examples of the spec that the fixture cases do not hold: start fee (tariff 9), the
  reservation tariffs 15-18 (kept and expired), the min/max duration restriction example.
* step_size: once per session for ENERGY and once for TIME and PARKING_TIME together; when both
  TIME and PARKING_TIME are priced only the parking total is rounded, wherever parking came in the
  session; switching to a free element rounds with the last paid component's step.
* min_price/max_price bound excl. and incl. VAT independently.
* Restrictions: local time across a DST change, open-ended time windows, min inclusive / max
  exclusive at exact thresholds, reservation elements price only reservation periods.
* TIME prices charging time only, PARKING_TIME parking only; the CDR sub-totals split fixed,
  reservation and parking costs as OCPI defines them.

Choices where OCPI is silent are marked "(our choice)".
"""

from __future__ import annotations

from datetime import UTC, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tariffs.cdr import CdrTotals
from tariffs.engine import price_session
from tariffs.model import DayOfWeek, DimensionType, Price, ReservationRestriction, Restrictions
from tariffs.ocpi import parse_session, parse_tariff
from tests.tariffs.builders import D, component, element, period, session, tariff

ENERGY, TIME, PARKING, FLAT = (
    DimensionType.ENERGY,
    DimensionType.TIME,
    DimensionType.PARKING_TIME,
    DimensionType.FLAT,
)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def _q(value: Decimal) -> Decimal:
    """Exact engine amounts compared at 6 decimals (hours like 1/6 are not finite decimals)."""
    return value.quantize(Decimal("0.000001"))


def _price_json(tariff_json: dict[str, Any], session_json: dict[str, Any]) -> CdrTotals:
    return price_session(parse_tariff(tariff_json), parse_session(session_json), UTC)


def _component(kind: str, price: float, step_size: int, vat: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "price": price, "step_size": step_size}
    if vat is not None:
        out["vat"] = vat
    return out


def _cdr(start: str, end: str, *periods: tuple[str, dict[str, float]]) -> dict[str, Any]:
    """An OCPI session: periods as (start, {dimension type: volume})."""
    return {
        "start_date_time": start,
        "end_date_time": end,
        "charging_periods": [
            {
                "start_date_time": at,
                "dimensions": [{"type": kind, "volume": volume} for kind, volume in dims.items()],
            }
            for at, dims in periods
        ],
    }


# --- Element selection ---------------------------------------------------------------------------


def test_each_dimension_takes_its_own_first_matching_element() -> None:
    t = tariff(
        element(
            component(ENERGY, "0.10"),
            component(TIME, "1.00"),
            restrictions=Restrictions(start_time=time(22), end_time=time(6)),
        ),
        element(component(TIME, "2.00")),
        element(component(ENERGY, "0.30")),
    )
    s = session(
        "2024-01-15T05:00",
        "2024-01-15T07:00",
        period("2024-01-15T05:00", energy="4", time="1"),  # 05:00 inside 22-06: element 1 for both
        period("2024-01-15T06:00", energy="2", time="1"),  # 06:00 outside: TIME element 2, ENERGY 3
    )
    totals = price_session(t, s, UTC)
    assert totals.total_energy_cost.excl_vat == D("1.00")  # 4 x 0.10 + 2 x 0.30 = 0.40 + 0.60
    assert totals.total_time_cost.excl_vat == D("3.00")  # 1 h x 1.00 + 1 h x 2.00
    assert totals.total_cost.excl_vat == D("4.00")


def test_a_dimension_without_a_matching_element_is_free() -> None:
    t = tariff(
        element(
            component(ENERGY, "0.30"),
            restrictions=Restrictions(days_of_week=frozenset({DayOfWeek.SATURDAY})),
        )
    )
    # 2024-01-15 is a Monday: no element prices ENERGY, none prices TIME.
    s = session("2024-01-15T10:00", "2024-01-15T11:00", period("2024-01-15T10:00", energy="10", time="1"))
    totals = price_session(t, s, UTC)
    assert totals.lines == ()
    assert totals.total_cost.excl_vat == D(0)


@pytest.mark.parametrize("restrictions", [{}, {"day_of_week": []}, None])
def test_empty_restrictions_restrict_nothing(restrictions: dict[str, Any] | None) -> None:
    first: dict[str, Any] = {"price_components": [_component("ENERGY", 0.40, 1)]}
    if restrictions is not None:
        first["restrictions"] = restrictions
    tariff_json = {
        "id": "T",
        "currency": "EUR",
        "elements": [first, {"price_components": [_component("ENERGY", 0.10, 1)]}],
    }
    s = _cdr("2024-01-15T10:00:00Z", "2024-01-15T11:00:00Z", ("2024-01-15T10:00:00Z", {"ENERGY": 10}))
    assert _price_json(tariff_json, s).total_cost.excl_vat == D("4.00")  # 10 kWh x 0.40 (element 1)


# --- FLAT ----------------------------------------------------------------------------------------


def test_flat_is_charged_once_with_the_first_element_that_prices_it() -> None:
    t = tariff(
        element(component(FLAT, "1.00"), restrictions=Restrictions(max_duration_s=1800)),
        element(component(FLAT, "3.00")),
        element(component(ENERGY, "0.20")),
    )
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T11:30",
        period("2024-01-15T10:00", energy="5"),  # 0 s: element 1's FLAT (1.00) is charged
        period("2024-01-15T10:45", energy="5"),  # 2700 s: element 2 would apply, FLAT already charged
    )
    totals = price_session(t, s, UTC)
    assert [line.cost_excl_vat for line in totals.lines if line.dimension is FLAT] == [D("1.00")]
    assert totals.total_cost.excl_vat == D("3.00")  # 1.00 + 10 kWh x 0.20


def test_free_of_charge_tariff_is_a_flat_zero() -> None:
    t = tariff(element(component(FLAT, "0.00")))
    s = session("2024-01-15T10:00", "2024-01-15T11:00", period("2024-01-15T10:00", energy="20", time="1"))
    totals = price_session(t, s, UTC)
    assert (totals.total_cost.excl_vat, totals.total_cost.incl_vat) == (D(0), D(0))


# --- Worked examples of the spec (tariff JSON as in the spec's examples) ------------------------

START_FEE_AND_ENERGY = [_component("FLAT", 0.50, 1, 20.0), _component("ENERGY", 0.25, 1, 10.0)]


def test_start_fee_example_tariff_9() -> None:
    tariff_json = {"id": "17", "currency": "EUR", "elements": [{"price_components": START_FEE_AND_ENERGY}]}
    s = _cdr(
        "2019-06-03T10:00:00Z", "2019-06-03T11:00:00Z", ("2019-06-03T10:00:00Z", {"ENERGY": 20, "TIME": 1})
    )
    totals = _price_json(tariff_json, s)
    # 0.50 + 20 x 0.25 = 5.50; incl. 0.50 x 1.2 + 5.00 x 1.1 = 0.60 + 5.50 = 6.10 (spec: 5.50 / 6.10)
    assert (totals.total_cost.excl_vat, totals.total_cost.incl_vat) == (D("5.50"), D("6.10"))


def _reservation_tariff(*reservation_elements: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "20",
        "currency": "EUR",
        "elements": [*reservation_elements, {"price_components": START_FEE_AND_ENERGY}],
    }


def _reserved_then_charged(reserved_h: float, reserved_from: str) -> dict[str, Any]:
    return _cdr(
        reserved_from,
        "2019-06-03T11:00:00Z",
        (reserved_from, {"RESERVATION_TIME": reserved_h}),
        ("2019-06-03T10:00:00Z", {"ENERGY": 20, "TIME": 1}),
    )


def _expired(reserved_h: float, end: str) -> dict[str, Any]:
    return _cdr("2019-06-03T09:00:00Z", end, ("2019-06-03T09:00:00Z", {"RESERVATION_TIME": reserved_h}))


def _reservation_element(kind: str, *components: dict[str, Any]) -> dict[str, Any]:
    return {"price_components": list(components), "restrictions": {"reservation": kind}}


def test_reservation_example_15_five_euro_per_hour() -> None:
    tariff_json = _reservation_tariff(_reservation_element("RESERVATION", _component("TIME", 5.00, 60, 20.0)))
    totals = _price_json(tariff_json, _reserved_then_charged(0.25, "2019-06-03T09:45:00Z"))
    # 15 min x 5.00/h = 1.25 (1.50 incl.) + start 0.50 (0.60) + 20 kWh x 0.25 = 5.00 (5.50)
    assert (totals.total_cost.excl_vat, totals.total_cost.incl_vat) == (D("6.75"), D("7.60"))
    assert totals.total_reservation_cost.excl_vat == D("1.25")


def test_reservation_example_16_fee_and_step_size() -> None:
    tariff_json = _reservation_tariff(
        _reservation_element(
            "RESERVATION", _component("FLAT", 2.00, 1, 20.0), _component("TIME", 5.00, 300, 20.0)
        )
    )
    # 13 min as a CDR writes it, 0.2167 h (780.12 s): 3 steps of 300 s = 15 min.
    totals = _price_json(tariff_json, _reserved_then_charged(0.2167, "2019-06-03T09:47:00Z"))
    # reservation 2.00 + 0.25 h x 5.00 = 3.25 (3.90 incl.); start 0.50 (0.60); energy 5.00 (5.50)
    assert (totals.total_cost.excl_vat, totals.total_cost.incl_vat) == (D("8.75"), D("10.00"))
    # the reservation fee is a reservation cost, not a fixed cost (mod_cdrs total_fixed_cost)
    assert totals.total_reservation_cost.excl_vat == D("3.25")
    assert totals.total_fixed_cost.excl_vat == D("0.50")


EXPIRE_FEE_ELEMENTS = (
    _reservation_element("RESERVATION_EXPIRES", _component("FLAT", 4.00, 1, 20.0)),
    _reservation_element("RESERVATION", _component("TIME", 2.00, 600, 20.0)),
)


def test_reservation_example_17_expire_fee_when_kept() -> None:
    totals = _price_json(
        _reservation_tariff(*EXPIRE_FEE_ELEMENTS), _reserved_then_charged(0.3667, "2019-06-03T09:38:00Z")
    )
    # 22 min -> 30 min (step 600) x 2.00/h = 1.00 (1.20); no expire fee; 0.50 (0.60) + 5.00 (5.50)
    assert (totals.total_cost.excl_vat, totals.total_cost.incl_vat) == (D("6.50"), D("7.30"))


def test_reservation_example_17_expire_fee_when_expired() -> None:
    totals = _price_json(_reservation_tariff(*EXPIRE_FEE_ELEMENTS), _expired(1.0, "2019-06-03T10:00:00Z"))
    # 4.00 expire fee + 1 h x 2.00 = 6.00; incl. x 1.2 = 7.20; no start fee: nothing was charged
    assert (totals.total_cost.excl_vat, totals.total_cost.incl_vat) == (D("6.00"), D("7.20"))
    assert totals.total_fixed_cost.excl_vat == D(0)


EXPIRE_TIME_ELEMENTS = (
    _reservation_element("RESERVATION_EXPIRES", _component("TIME", 6.00, 600, 20.0)),
    _reservation_element("RESERVATION", _component("TIME", 3.00, 600, 20.0)),
)


def test_reservation_example_18_expire_time_when_kept() -> None:
    totals = _price_json(
        _reservation_tariff(*EXPIRE_TIME_ELEMENTS), _reserved_then_charged(0.3667, "2019-06-03T09:38:00Z")
    )
    # 22 min -> 30 min x 3.00/h = 1.50 (1.80) + 0.50 (0.60) + 5.00 (5.50) = 7.00 (7.90)
    assert (totals.total_cost.excl_vat, totals.total_cost.incl_vat) == (D("7.00"), D("7.90"))


def test_reservation_example_18_expire_time_when_expired() -> None:
    totals = _price_json(_reservation_tariff(*EXPIRE_TIME_ELEMENTS), _expired(1.5, "2019-06-03T10:30:00Z"))
    # RESERVATION_EXPIRES takes precedence for TIME: 1.5 h x 6.00 = 9.00; incl. x 1.2 = 10.80
    assert (totals.total_cost.excl_vat, totals.total_cost.incl_vat) == (D("9.00"), D("10.80"))


def test_min_max_duration_example_prices_each_period_by_session_duration() -> None:
    tariff_json = {
        "id": "21",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [_component("ENERGY", 0.20, 1, 20.0)],
                "restrictions": {"max_duration": 1800},
            },
            {
                "price_components": [_component("ENERGY", 0.30, 1, 20.0)],
                "restrictions": {"min_duration": 1800, "max_duration": 3600},
            },
            {
                "price_components": [_component("ENERGY", 0.40, 1, 20.0)],
                "restrictions": {"min_duration": 3600},
            },
        ],
    }
    s = _cdr(
        "2019-06-03T10:00:00Z",
        "2019-06-03T11:10:00Z",
        ("2019-06-03T10:00:00Z", {"ENERGY": 5}),  # 0 s -> 0.20
        ("2019-06-03T10:30:00Z", {"ENERGY": 4}),  # 1800 s: max exclusive, min inclusive -> 0.30
        ("2019-06-03T11:00:00Z", {"ENERGY": 1}),  # 3600 s -> 0.40
    )
    totals = _price_json(tariff_json, s)
    # 5 x 0.20 + 4 x 0.30 + 1 x 0.40 = 1.00 + 1.20 + 0.40 = 2.60; incl. x 1.2 = 3.12
    assert (totals.total_cost.excl_vat, totals.total_cost.incl_vat) == (D("2.60"), D("3.12"))


# --- step_size -----------------------------------------------------------------------------------


def test_energy_switching_to_free_is_rounded_with_the_last_paid_step() -> None:
    t = tariff(element(component(ENERGY, "0.20", 1000), restrictions=Restrictions(max_kwh=D(5))))
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T11:30",
        period("2024-01-15T10:00", energy="2.4"),  # before 0 -> paid
        period("2024-01-15T10:30", energy="2.7"),  # before 2.4 -> paid
        period("2024-01-15T11:00", energy="3"),  # before 5.1 -> no element: free
    )
    totals = price_session(t, s, UTC)
    # paid 5.1 kWh -> 6 kWh (step 1000 Wh); the extra 0.9 kWh goes on the last paid period
    assert totals.billed(ENERGY) == D("6.0")
    assert [line.billed for line in totals.lines] == [D("2.4"), D("3.6")]
    assert totals.total_cost.excl_vat == D("1.20")  # 6 kWh x 0.20


def test_parking_is_the_rounded_time_dimension_even_when_charging_resumes_after_it() -> None:
    # OCPI CDRs: "In the cases that TIME and PARKING_TIME Tariff Elements are both used, step_size
    # is only taken into account for the total parking duration."
    t = tariff(element(component(TIME, "1.00", 600), component(PARKING, "3.00", 600)))
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T10:39",
        period("2024-01-15T10:00", time="0.35"),  # 21 min charging
        period("2024-01-15T10:21", parking_time="0.1"),  # 6 min parking
        period("2024-01-15T10:27", time="0.2"),  # 12 min charging again
    )
    totals = price_session(t, s, UTC)
    # TIME 33 min, not rounded: 0.55 h x 1.00 = 0.55; PARKING 6 -> 10 min: 1/6 h x 3.00 = 0.50
    assert totals.billed(TIME) == D("0.55")
    assert _q(totals.billed(PARKING) * 60) == D(10)
    assert _q(totals.total_cost.excl_vat) == D("1.05")


def test_charging_time_is_rounded_when_parking_is_free() -> None:
    # Parking happened but no element prices it: only TIME was "used", so TIME is rounded.
    t = tariff(element(component(TIME, "1.00", 900)))
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T10:30",
        period("2024-01-15T10:00", time="0.35"),  # 21 min -> 30 min (step 900 s)
        period("2024-01-15T10:21", parking_time="0.15"),  # free
    )
    totals = price_session(t, s, UTC)
    assert totals.billed(TIME) == D("0.5")
    assert totals.total_cost.excl_vat == D("0.50")  # 0.5 h x 1.00


def test_charging_time_is_rounded_when_the_session_has_no_parking() -> None:
    # The tariff prices parking, the session has none (spec step_size example #2: TIME rounded).
    t = tariff(element(component(TIME, "1.00", 900), component(PARKING, "2.00", 900)))
    s = session("2024-01-15T10:00", "2024-01-15T10:21", period("2024-01-15T10:00", time="0.35"))
    totals = price_session(t, s, UTC)
    assert totals.total_cost.excl_vat == D("0.50")  # 21 -> 30 min x 1.00/h


# --- min_price / max_price -----------------------------------------------------------------------


def test_min_price_applies_to_a_session_that_cost_nothing() -> None:
    t = tariff(element(component(ENERGY, "0.25", vat="10")), min_price=Price(D("0.50"), D("0.55")))
    s = session("2024-01-15T10:00", "2024-01-15T10:05", period("2024-01-15T10:00", energy="0"))
    totals = price_session(t, s, UTC)
    assert (totals.total_cost.excl_vat, totals.total_cost.incl_vat) == (D("0.50"), D("0.55"))
    assert totals.min_price_applied


def test_max_price_caps_incl_vat_even_when_excl_vat_is_within_it() -> None:
    t = tariff(
        element(component(FLAT, "0.50", vat="20"), component(ENERGY, "0.25", vat="10")),
        max_price=Price(D("10.00"), D("10.50")),
    )
    s = session("2024-01-15T10:00", "2024-01-15T12:00", period("2024-01-15T10:00", energy="38"))
    totals = price_session(t, s, UTC)
    # excl. 0.50 + 38 x 0.25 = 10.00 (not above 10.00); incl. 0.60 + 10.45 = 11.05 -> 10.50
    assert (totals.total_cost.excl_vat, totals.total_cost.incl_vat) == (D("10.00"), D("10.50"))
    assert totals.max_price_applied


def test_a_total_between_min_and_max_price_is_unchanged() -> None:
    t = tariff(element(component(ENERGY, "0.25")), min_price=Price(D("1.00")), max_price=Price(D("20.00")))
    s = session("2024-01-15T10:00", "2024-01-15T11:00", period("2024-01-15T10:00", energy="20"))
    totals = price_session(t, s, UTC)
    assert totals.total_cost.excl_vat == D("5.00")  # 20 x 0.25, inside [1.00, 20.00]
    assert not totals.min_price_applied
    assert not totals.max_price_applied


# --- Restrictions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start_utc", "price"),
    [
        ("2024-03-30T07:30", "0.10"),  # 08:30 CET (UTC+1): inside 07:00-09:00
        ("2024-03-31T07:30", "0.30"),  # 09:30 CEST (UTC+2, the day DST starts): outside
    ],
)
def test_time_of_day_is_local_across_a_dst_change(start_utc: str, price: str) -> None:
    t = tariff(
        element(component(ENERGY, "0.10"), restrictions=Restrictions(start_time=time(7), end_time=time(9))),
        element(component(ENERGY, "0.30")),
    )
    totals = price_session(t, session(start_utc, start_utc, period(start_utc, energy="1")), AMSTERDAM)
    assert totals.total_cost.excl_vat == D(price)  # 1 kWh x price


@pytest.mark.parametrize(
    ("start_utc", "price"),
    [
        ("2024-01-15T07:59", "0.15"),  # before end_time 08:00 (no start_time: from midnight)
        ("2024-01-15T08:00", "0.25"),  # end_time exclusive
        ("2024-01-15T17:59", "0.25"),
        ("2024-01-15T18:00", "0.40"),  # start_time inclusive, no end_time: until midnight
        ("2024-01-15T23:59", "0.40"),
    ],
)
def test_open_ended_time_windows(start_utc: str, price: str) -> None:
    t = tariff(
        element(component(ENERGY, "0.40"), restrictions=Restrictions(start_time=time(18))),
        element(component(ENERGY, "0.15"), restrictions=Restrictions(end_time=time(8))),
        element(component(ENERGY, "0.25")),
    )
    totals = price_session(t, session(start_utc, start_utc, period(start_utc, energy="1")), UTC)
    assert totals.total_cost.excl_vat == D(price)


def test_kwh_thresholds_exactly_at_the_bound() -> None:
    t = tariff(
        element(component(ENERGY, "0.20"), restrictions=Restrictions(max_kwh=D(10))),
        element(component(ENERGY, "0.40"), restrictions=Restrictions(min_kwh=D(10))),
    )
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T12:00",
        period("2024-01-15T10:00", energy="10"),  # before 0 -> 0.20
        period("2024-01-15T11:00", energy="5"),  # before exactly 10: max_kwh exclusive, min_kwh inclusive
    )
    assert price_session(t, s, UTC).total_cost.excl_vat == D("4.00")  # 10 x 0.20 + 5 x 0.40


def test_current_exactly_at_32_a_selects_the_min_current_element() -> None:
    # (our choice) The spec says "more than"/"less than" for min_current/max_current; like min_kwh
    # and min_duration (explicitly inclusive) the min bound is inclusive and the max exclusive, so
    # the complex tariff's "< 32 A" and ">= 32 A" elements split the range without a gap.
    t = tariff(
        element(component(TIME, "1.00"), restrictions=Restrictions(max_current_a=D(32))),
        element(component(TIME, "2.00"), restrictions=Restrictions(min_current_a=D(32))),
    )
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T11:00",
        period("2024-01-15T10:00", time="1", min_current="32", max_current="32"),
    )
    assert price_session(t, s, UTC).total_time_cost.excl_vat == D("2.00")  # 1 h x 2.00


def test_reservation_elements_and_session_elements_do_not_price_each_other() -> None:
    s = session(
        "2024-01-15T09:30",
        "2024-01-15T11:00",
        period("2024-01-15T09:30", reservation_time="0.5"),
        period("2024-01-15T10:00", energy="10", time="1"),
    )
    unrestricted = price_session(tariff(element(component(TIME, "2.00"))), s, UTC)
    assert unrestricted.total_reservation_cost.excl_vat == D(0)  # no reservation element: free
    assert unrestricted.total_time_cost.excl_vat == D("2.00")  # 1 h charging x 2.00
    reservation_only = tariff(
        element(
            component(TIME, "5.00"), restrictions=Restrictions(reservation=ReservationRestriction.RESERVATION)
        )
    )
    totals = price_session(reservation_only, s, UTC)
    assert totals.total_reservation_cost.excl_vat == D("2.50")  # 0.5 h x 5.00
    assert totals.total_time_cost.excl_vat == D(0)  # charging time not priced by it


# --- TIME vs PARKING_TIME, CDR sub-totals ---------------------------------------------------------


def test_time_prices_charging_and_parking_time_prices_parking() -> None:
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T13:12",
        period("2024-01-15T10:00", time="2.5"),
        period("2024-01-15T12:30", parking_time="0.7"),  # 42 min
    )
    time_only = price_session(tariff(element(component(TIME, "2.00", 60))), s, UTC)
    assert time_only.total_cost.excl_vat == D("5.00")  # 2.5 h x 2.00; parking not billed
    parking_only = price_session(tariff(element(component(PARKING, "5.00", 300))), s, UTC)
    assert parking_only.total_cost.excl_vat == D("3.75")  # 42 -> 45 min x 5.00/h; charging not billed
    # total_time is the whole session (charging + parking), total_parking_time the parking part
    assert (parking_only.total_time_h, parking_only.total_parking_time_h) == (D("3.2"), D("0.7"))
