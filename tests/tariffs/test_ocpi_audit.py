"""OCPI 2.2.1 pricing audit: new hand-checked cases the 30 fixture cases do not cover.

Every expected total is worked out by hand from the spec text (mod_tariffs, mod_cdrs of OCPI
2.2.1 and the maintainers' errata on github.com/ocpi/ocpi), with the arithmetic in a comment;
none was taken from running the engine. Tariffs and sessions are given as OCPI JSON, as an
outside party would send them. Where the spec is silent the case says "(reading)" and names the
reading chosen; the report of the audit lists them.

Spec rules leaned on:

* Tariff object: per dimension the first TariffElement whose restrictions match applies.
* TariffRestrictions: times and dates are local to the Location; ``end_date`` exclusive;
  ``min_duration`` inclusive / ``max_duration`` exclusive, on the duration of the Charging
  Session; a reservation "ends when the driver starts charging".
* CdrDimensionType: PARKING_TIME is "time not charging"; CDR ``total_parking_time`` is the time
  "where no energy was transferred between EVSE and EV".
* ReservationRestrictionType RESERVATION_EXPIRES: "driver does not start a charging session
  before expiry_date of the reservation".
* CDR step_size: once per session for ENERGY and once for TIME and PARKING_TIME together; when
  both TIME and PARKING_TIME are used, only the parking total is rounded (maintainer, ocpi#546).
* PriceComponent ``vat`` omitted: no VAT applies; min_price/max_price bound excl. and incl. VAT
  independently.
* CDR: "A CPO SHALL at least start (and add) a ChargingPeriod every moment/event that has
  relevance for the total costs" (so a period is priced by what holds at its start).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tariffs.cdr import CdrTotals
from tariffs.engine import live_estimate, price_session
from tariffs.model import DimensionType
from tariffs.ocpi import cdr_totals_to_ocpi, parse_session, parse_tariff

D = Decimal
AMSTERDAM = "Europe/Amsterdam"


def _q(value: Decimal, places: str = "0.000001") -> Decimal:
    """Exact engine amounts compared at 6 decimals (1/6 h is not a finite decimal)."""
    return value.quantize(D(places))


def _component(kind: str, price: str, step_size: int = 1, vat: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "price": D(price), "step_size": step_size}
    if vat is not None:
        out["vat"] = D(vat)
    return out


def _element(*components: dict[str, Any], **restrictions: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"price_components": list(components)}
    if restrictions:
        out["restrictions"] = restrictions
    return out


def _tariff(*elements: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "FWT",
        "id": "AUDIT",
        "currency": "EUR",
        "elements": list(elements),
        "last_updated": "2024-01-01T00:00:00Z",
        **fields,
    }


def _session(start: str, end: str, *periods: tuple[str, dict[str, str]]) -> dict[str, Any]:
    """An OCPI session/CDR body: periods as (start, {CdrDimensionType: volume})."""
    return {
        "start_date_time": start,
        "end_date_time": end,
        "charging_periods": [
            {
                "start_date_time": at,
                "dimensions": [{"type": kind, "volume": D(volume)} for kind, volume in dims.items()],
            }
            for at, dims in periods
        ],
    }


def _wire(body: dict[str, Any]) -> Any:
    """``body`` as a receiver decodes it from JSON text (numbers as ``Decimal``). The short
    decimals used here survive ``float`` (shortest repr) exactly."""
    text = json.dumps(body, default=lambda value: float(value) if isinstance(value, Decimal) else value)
    return json.loads(text, parse_float=D)


def _price(tariff_json: dict[str, Any], session_json: dict[str, Any], zone: str = "UTC") -> CdrTotals:
    tariff = parse_tariff(_wire(tariff_json))
    return price_session(tariff, parse_session(_wire(session_json)), ZoneInfo(zone))


def _excl_incl(totals: CdrTotals) -> tuple[Decimal, Decimal]:
    return _q(totals.total_cost.excl_vat), _q(totals.total_cost.incl_vat)


# --- Time of day over midnight, day of week, DST -------------------------------------------------


def test_night_window_over_midnight_in_local_time() -> None:
    # Night 22:00-06:00 (end before start: wraps past midnight) at 0.15/kWh, else 0.30/kWh.
    # Amsterdam in January is UTC+1; the CPO opened a period at each local boundary.
    t = _tariff(
        _element(_component("ENERGY", "0.15"), start_time="22:00", end_time="06:00"),
        _element(_component("ENERGY", "0.30")),
    )
    s = _session(
        "2024-01-19T20:00:00Z",
        "2024-01-20T06:00:00Z",
        ("2024-01-19T20:00:00Z", {"ENERGY": "2"}),  # 21:00 local: day     2 x 0.30 = 0.60
        ("2024-01-19T21:00:00Z", {"ENERGY": "3"}),  # 22:00 local: night   3 x 0.15 = 0.45
        ("2024-01-19T23:00:00Z", {"ENERGY": "4"}),  # 00:00 local: night   4 x 0.15 = 0.60
        ("2024-01-20T05:00:00Z", {"ENERGY": "1"}),  # 06:00 local: day (end exclusive) 0.30
    )
    totals = _price(t, s, AMSTERDAM)
    assert _q(totals.total_energy_cost.excl_vat) == _q(D("1.95"))  # 0.60 + 0.45 + 0.60 + 0.30
    # The same session priced in UTC: 20:00 and 21:00 day, 23:00 and 05:00 night.
    # (2 + 3) x 0.30 + (4 + 1) x 0.15 = 1.50 + 0.75 = 2.25: the location's zone matters.
    assert _q(_price(t, s, "UTC").total_energy_cost.excl_vat) == _q(D("2.25"))


def test_day_of_week_changes_during_a_session_at_local_midnight() -> None:
    # Weekend charging time 1.00/h, weekdays 2.00/h. 2024-01-14 is a Sunday; Amsterdam UTC+1.
    t = _tariff(
        _element(_component("TIME", "1.00", 60), day_of_week=["SATURDAY", "SUNDAY"]),
        _element(_component("TIME", "2.00", 60)),
    )
    s = _session(
        "2024-01-14T22:00:00Z",
        "2024-01-15T00:00:00Z",
        ("2024-01-14T22:00:00Z", {"ENERGY": "7", "TIME": "1"}),  # Sun 23:00 local: 1 h x 1.00
        ("2024-01-14T23:00:00Z", {"ENERGY": "7", "TIME": "1"}),  # Mon 00:00 local: 1 h x 2.00
    )
    assert _q(_price(t, s, AMSTERDAM).total_time_cost.excl_vat) == _q(D("3.00"))
    # In UTC both periods are on Sunday (22:00 and 23:00): 2 h x 1.00 = 2.00.
    assert _q(_price(t, s, "UTC").total_time_cost.excl_vat) == _q(D("2.00"))


def test_day_of_week_is_the_day_of_the_instant_even_inside_a_night_window() -> None:
    # (reading) A "FRIDAY 22:00-06:00" element: OCPI says day_of_week is the day "this
    # TariffElement is active" and the time window is a time of that day, so Saturday 01:00
    # is not Friday and falls back. 2024-01-19 is a Friday; Amsterdam UTC+1.
    t = _tariff(
        _element(_component("ENERGY", "0.10"), start_time="22:00", end_time="06:00", day_of_week=["FRIDAY"]),
        _element(_component("ENERGY", "0.40")),
    )
    s = _session(
        "2024-01-19T21:30:00Z",
        "2024-01-20T01:00:00Z",
        ("2024-01-19T21:30:00Z", {"ENERGY": "5"}),  # Fri 22:30 local: 5 x 0.10 = 0.50
        ("2024-01-19T23:00:00Z", {"ENERGY": "5"}),  # Sat 00:00 local: 5 x 0.40 = 2.00
    )
    assert _q(_price(t, s, AMSTERDAM).total_cost.excl_vat) == _q(D("2.50"))


def test_time_window_on_the_dst_fall_back_night() -> None:
    # 2024-10-27 Amsterdam: 03:00 CEST -> 02:00 CET, so local 02:00-03:00 happens twice.
    # Night element 02:00-03:00 at 1.00/h, else 2.00/h; one period per wall-clock hour.
    t = _tariff(
        _element(_component("TIME", "1.00", 1), start_time="02:00", end_time="03:00"),
        _element(_component("TIME", "2.00", 1)),
    )
    s = _session(
        "2024-10-27T00:00:00Z",
        "2024-10-27T03:00:00Z",
        ("2024-10-27T00:00:00Z", {"TIME": "1"}),  # 02:00 CEST: 1 h x 1.00
        ("2024-10-27T01:00:00Z", {"TIME": "1"}),  # 02:00 CET (again): 1 h x 1.00
        ("2024-10-27T02:00:00Z", {"TIME": "1"}),  # 03:00 CET: 1 h x 2.00
    )
    assert _q(_price(t, s, AMSTERDAM).total_cost.excl_vat) == _q(D("4.00"))


def test_duration_restrictions_count_elapsed_time_not_wall_clock_across_dst() -> None:
    # First 2 hours of the session free, then 3.00/h. Start 00:30Z = 02:30 CEST on the
    # fall-back night; the second period starts at 02:30Z = 03:30 CET: the wall clock moved
    # 1 h but 7200 s elapsed, so max_duration 7200 (exclusive) no longer holds.
    t = _tariff(
        _element(_component("TIME", "0.00", 1), max_duration=7200),
        _element(_component("TIME", "3.00", 1)),
    )
    s = _session(
        "2024-10-27T00:30:00Z",
        "2024-10-27T03:30:00Z",
        ("2024-10-27T00:30:00Z", {"TIME": "2"}),  # 0 s: free
        ("2024-10-27T02:30:00Z", {"TIME": "1"}),  # 7200 s: 1 h x 3.00
    )
    assert _q(_price(t, s, AMSTERDAM).total_cost.excl_vat) == _q(D("3.00"))


def test_time_window_on_the_dst_spring_forward_day() -> None:
    # 2024-03-31 Amsterdam: 02:00 CET -> 03:00 CEST. Element 03:00-05:00 at 1.00/h, else 2.00/h.
    t = _tariff(
        _element(_component("TIME", "1.00", 1), start_time="03:00", end_time="05:00"),
        _element(_component("TIME", "2.00", 1)),
    )
    s = _session(
        "2024-03-31T00:30:00Z",
        "2024-03-31T02:30:00Z",
        ("2024-03-31T00:30:00Z", {"TIME": "0.5"}),  # 01:30 CET: 0.5 h x 2.00 = 1.00
        ("2024-03-31T01:00:00Z", {"TIME": "1.5"}),  # 03:00 CEST: 1.5 h x 1.00 = 1.50
    )
    assert _q(_price(t, s, AMSTERDAM).total_cost.excl_vat) == _q(D("2.50"))


def test_start_and_end_dates_are_local_dates_with_the_end_exclusive() -> None:
    # A one-day promotion: start_date 2024-06-01, end_date 2024-06-02 (exclusive), local dates
    # in Amsterdam (UTC+2 in June). 0.10/kWh on the day, else 0.30/kWh.
    t = _tariff(
        _element(_component("ENERGY", "0.10"), start_date="2024-06-01", end_date="2024-06-02"),
        _element(_component("ENERGY", "0.30")),
    )
    s = _session(
        "2024-05-31T21:30:00Z",
        "2024-06-01T23:00:00Z",
        ("2024-05-31T21:30:00Z", {"ENERGY": "1"}),  # May 31 23:30 local: 1 x 0.30 = 0.30
        ("2024-05-31T22:00:00Z", {"ENERGY": "2"}),  # Jun 1 00:00 local (UTC still May 31): 2 x 0.10
        ("2024-06-01T21:59:00Z", {"ENERGY": "3"}),  # Jun 1 23:59 local: 3 x 0.10 = 0.30
        ("2024-06-01T22:00:00Z", {"ENERGY": "4"}),  # Jun 2 00:00 local: end_date exclusive, 4 x 0.30
    )
    # 0.30 + 0.20 + 0.30 + 1.20 = 2.00
    assert _q(_price(t, s, AMSTERDAM).total_cost.excl_vat) == _q(D("2.00"))


# --- Energy thresholds, boundaries inside a period -----------------------------------------------


def test_max_kwh_then_min_kwh_switch_at_the_period_the_cpo_opened() -> None:
    # First 10 kWh at 0.20, from 10 kWh on 0.35 (max_kwh exclusive, min_kwh inclusive; the
    # energy "being used" is what was consumed before the period).
    t = _tariff(
        _element(_component("ENERGY", "0.20", 1, "21"), max_kwh=D(10)),
        _element(_component("ENERGY", "0.35", 1, "21"), min_kwh=D(10)),
    )
    s = _session(
        "2024-01-15T10:00:00Z",
        "2024-01-15T11:30:00Z",
        ("2024-01-15T10:00:00Z", {"ENERGY": "6", "TIME": "0.5"}),  # before 0: 6 x 0.20 = 1.20
        ("2024-01-15T10:30:00Z", {"ENERGY": "4", "TIME": "0.5"}),  # before 6: 4 x 0.20 = 0.80
        ("2024-01-15T11:00:00Z", {"ENERGY": "5", "TIME": "0.5"}),  # before 10: 5 x 0.35 = 1.75
    )
    totals = _price(t, s)
    # excl. 1.20 + 0.80 + 1.75 = 3.75; incl. x 1.21 = 4.5375
    assert _excl_incl(totals) == (_q(D("3.75")), _q(D("4.5375")))


def test_a_period_crossing_a_boundary_is_priced_by_what_holds_at_its_start() -> None:
    # (reading) OCPI makes the CPO open a period at every price change; the engine does not
    # interpolate a period it was not given. One 16:30-17:30 period with a 17:00 price change
    # is priced at its start (1 h x 1.00); split at 17:00 it costs 0.5 x 1.00 + 0.5 x 2.00.
    t = _tariff(
        _element(_component("TIME", "1.00", 1), end_time="17:00"),
        _element(_component("TIME", "2.00", 1)),
    )
    whole = _session("2024-01-15T16:30:00Z", "2024-01-15T17:30:00Z", ("2024-01-15T16:30:00Z", {"TIME": "1"}))
    split = _session(
        "2024-01-15T16:30:00Z",
        "2024-01-15T17:30:00Z",
        ("2024-01-15T16:30:00Z", {"TIME": "0.5"}),
        ("2024-01-15T17:00:00Z", {"TIME": "0.5"}),
    )
    assert _q(_price(t, whole).total_cost.excl_vat) == _q(D("1.00"))
    assert _q(_price(t, split).total_cost.excl_vat) == _q(D("1.50"))


# --- Current and power restrictions --------------------------------------------------------------

COMPLEX = _tariff(  # the spec's complex tariff (tariff_4_complex.json), charging part
    _element(_component("FLAT", "2.50", 1, "15")),
    _element(_component("TIME", "1.00", 900, "20"), max_current=D(32)),
    _element(
        _component("TIME", "2.00", 600, "20"),
        min_current=D(32),
        day_of_week=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
    ),
    _element(_component("TIME", "1.25", 600, "20"), min_current=D(32), day_of_week=["SATURDAY", "SUNDAY"]),
)


@pytest.mark.parametrize("dimension", ["MAX_CURRENT", "MIN_CURRENT", "CURRENT"])
def test_a_period_reporting_one_current_value_is_priced_at_it(dimension: str) -> None:
    # (reading) A period that reports a single current value (here 43 A) is taken at that
    # value for min_current and max_current alike. 2019-06-01 is a Saturday: 43 A >= 32 A on
    # a weekend -> 1.25/h. 1 h charging (a whole number of 600 s steps) x 1.25 = 1.25 (1.50
    # incl. 20 %); start fee 2.50 (2.875 incl. 15 %). Total 3.75 / 4.375.
    s = _session(
        "2019-06-01T13:00:00Z",
        "2019-06-01T14:00:00Z",
        ("2019-06-01T13:00:00Z", {"TIME": "1", dimension: "43"}),
    )
    totals = _price(COMPLEX, s)
    assert _q(totals.total_time_cost.excl_vat) == _q(D("1.25"))
    assert _excl_incl(totals) == (_q(D("3.75")), _q(D("4.375")))


def test_the_max_power_example_with_power_reported_as_max_power_only() -> None:
    # Spec example (max_power): < 16 kW 0.20, 16-32 kW 0.35, else 0.50; periods reporting only
    # MAX_POWER. 1 kWh at 6 kW 0.20 + 40 kWh at 48 kW 20.00 + 0.5 kWh at 4 kW 0.10 = 20.30.
    t = _tariff(
        _element(_component("ENERGY", "0.20", 1, "20"), max_power=D(16)),
        _element(_component("ENERGY", "0.35", 1, "20"), max_power=D(32)),
        _element(_component("ENERGY", "0.50", 1, "20")),
    )
    s = _session(
        "2019-06-03T10:00:00Z",
        "2019-06-03T11:07:30Z",
        ("2019-06-03T10:00:00Z", {"ENERGY": "1", "MAX_POWER": "6"}),
        ("2019-06-03T10:10:00Z", {"ENERGY": "40", "MAX_POWER": "48"}),
        ("2019-06-03T11:00:00Z", {"ENERGY": "0.5", "MAX_POWER": "4"}),
    )
    assert _q(_price(t, s).total_cost.excl_vat) == _q(D("20.30"))


# --- Parking: time not charging ------------------------------------------------------------------

TIME_AND_PARKING = _tariff(_element(_component("TIME", "2.00", 1), _component("PARKING_TIME", "6.00", 1)))


@pytest.mark.parametrize(
    "idle_dimensions",
    [{"ENERGY": "0"}, {"MAX_POWER": "0"}, {"POWER": "0"}, {"MAX_CURRENT": "0"}],
    ids=["energy-0", "max-power-0", "power-0", "max-current-0"],
)
def test_a_period_without_time_volumes_where_no_energy_flowed_is_parking(
    idle_dimensions: dict[str, str],
) -> None:
    # PARKING_TIME is "time not charging"; total_parking_time is the time "where no energy was
    # transferred". A period that gives no TIME/PARKING_TIME volume lasts until the next one:
    # 10:00-11:00 charged 10 kWh -> 1 h TIME x 2.00 = 2.00; 11:00-11:30 nothing flowed ->
    # 0.5 h PARKING_TIME x 6.00 = 3.00. Total 5.00, parking time 0.5 h.
    s = _session(
        "2024-01-15T10:00:00Z",
        "2024-01-15T11:30:00Z",
        ("2024-01-15T10:00:00Z", {"ENERGY": "10"}),
        ("2024-01-15T11:00:00Z", idle_dimensions),
    )
    totals = _price(TIME_AND_PARKING, s)
    assert _q(totals.total_time_cost.excl_vat) == _q(D("2.00"))
    assert _q(totals.total_parking_cost.excl_vat) == _q(D("3.00"))
    assert _q(totals.total_cost.excl_vat) == _q(D("5.00"))
    assert totals.total_parking_time_h == D("0.5")
    assert cdr_totals_to_ocpi(totals)["total_parking_time"] == D("0.5000")


def test_explicit_time_volumes_win_over_the_energy_of_the_period() -> None:
    # A period that says TIME 0.5 is charging time even if it delivered no energy (measured
    # volumes are used as given): 0.5 h x 2.00 = 1.00, no parking.
    s = _session(
        "2024-01-15T10:00:00Z",
        "2024-01-15T10:30:00Z",
        ("2024-01-15T10:00:00Z", {"ENERGY": "0", "TIME": "0.5"}),
    )
    totals = _price(TIME_AND_PARKING, s)
    assert _q(totals.total_cost.excl_vat) == _q(D("1.00"))
    assert totals.total_parking_time_h == 0


def test_live_estimate_counts_the_open_period_as_charging() -> None:
    # The running period has not delivered energy yet; it is still the charging period being
    # measured: 0.25 h x 2.00 = 0.50.
    tariff = parse_tariff(TIME_AND_PARKING)
    running = parse_session(
        {
            "start_date_time": "2024-01-15T10:00:00Z",
            "charging_periods": [
                {"start_date_time": "2024-01-15T10:00:00Z", "dimensions": [{"type": "ENERGY", "volume": 0}]}
            ],
        }
    )
    totals = live_estimate(tariff, running, datetime(2024, 1, 15, 10, 15, tzinfo=UTC), UTC)
    assert _q(totals.total_cost.excl_vat) == _q(D("0.50"))


# --- Reservation ---------------------------------------------------------------------------------

START_FEE_AND_ENERGY = _element(_component("FLAT", "0.50", 1, "20"), _component("ENERGY", "0.25", 1, "10"))


def test_duration_restrictions_count_from_the_start_of_charging_after_a_reservation() -> None:
    # A reservation "ends when the driver starts charging"; min/max_duration are durations of
    # the Charging Session. Reserved 09:30-10:00 (0.5 h x 3.00 = 1.50, reservation cost);
    # charging from 10:00 with the first 30 min of energy free: 10:00 period (0 s) 5 kWh x 0.00,
    # 10:30 period (1800 s: max_duration exclusive) 5 kWh x 0.30 = 1.50. Total 3.00.
    t = _tariff(
        _element(_component("TIME", "3.00", 1), reservation="RESERVATION"),
        _element(_component("ENERGY", "0.00", 1), max_duration=1800),
        _element(_component("ENERGY", "0.30", 1)),
    )
    s = _session(
        "2024-01-15T09:30:00Z",
        "2024-01-15T11:00:00Z",
        ("2024-01-15T09:30:00Z", {"RESERVATION_TIME": "0.5"}),
        ("2024-01-15T10:00:00Z", {"ENERGY": "5", "TIME": "0.5"}),
        ("2024-01-15T10:30:00Z", {"ENERGY": "5", "TIME": "0.5"}),
    )
    totals = _price(t, s)
    assert _q(totals.total_reservation_cost.excl_vat) == _q(D("1.50"))
    assert _q(totals.total_energy_cost.excl_vat) == _q(D("1.50"))
    assert _q(totals.total_cost.excl_vat) == _q(D("3.00"))


EXPIRE_FEE_TARIFF = _tariff(  # spec tariff_17: expire fee 4.00, reservation 2.00/h per 10 min
    _element(_component("FLAT", "4.00", 1, "20"), reservation="RESERVATION_EXPIRES"),
    _element(_component("TIME", "2.00", 600, "20"), reservation="RESERVATION"),
    START_FEE_AND_ENERGY,
)


def test_a_reservation_followed_by_a_session_did_not_expire_even_if_nothing_was_charged() -> None:
    # RESERVATION_EXPIRES: the driver "does not start a charging session before expiry_date".
    # Here the driver arrived and plugged in (a session period exists) but the EV took no
    # energy. Reservation 22 min -> 30 min (step 600) x 2.00/h = 1.00 (1.20 incl.); no expire
    # fee; start fee 0.50 (0.60 incl.); the 15 idle minutes are parking, not priced.
    # Total 1.50 / 1.80.
    s = _session(
        "2019-06-03T09:38:00Z",
        "2019-06-03T10:15:00Z",
        ("2019-06-03T09:38:00Z", {"RESERVATION_TIME": "0.3666666667"}),
        ("2019-06-03T10:00:00Z", {"ENERGY": "0"}),
    )
    totals = _price(EXPIRE_FEE_TARIFF, s)
    assert _excl_incl(totals) == (_q(D("1.50")), _q(D("1.80")))
    assert _q(totals.total_reservation_cost.excl_vat) == _q(D("1.00"))
    assert _q(totals.total_fixed_cost.excl_vat) == _q(D("0.50"))


def test_an_expired_reservation_pays_the_expire_fee_and_the_reserved_time() -> None:
    # Spec tariff_17, expired after 1 h: 4.00 + 1 h x 2.00 = 6.00; incl. x 1.2 = 7.20.
    s = _session(
        "2019-06-03T09:00:00Z", "2019-06-03T10:00:00Z", ("2019-06-03T09:00:00Z", {"RESERVATION_TIME": "1"})
    )
    totals = _price(EXPIRE_FEE_TARIFF, s)
    assert _excl_incl(totals) == (_q(D("6.00")), _q(D("7.20")))
    assert _q(totals.total_fixed_cost.excl_vat) == 0  # reservation costs are not fixed costs


# --- Several components in one element, VAT absent vs present -------------------------------------


def test_one_element_with_four_component_types_and_mixed_vat() -> None:
    # FLAT 1.00 (VAT 20 %), ENERGY 0.30 (no VAT given: none applies), TIME 1.20/h (VAT 9 %),
    # PARKING_TIME 2.40/h (VAT 21 %). Charging 1.5 h, 12 kWh; parking 0.5 h.
    t = _tariff(
        _element(
            _component("FLAT", "1.00", 1, "20"),
            _component("ENERGY", "0.30", 1),
            _component("TIME", "1.20", 1, "9"),
            _component("PARKING_TIME", "2.40", 1, "21"),
        )
    )
    s = _session(
        "2024-01-15T10:00:00Z",
        "2024-01-15T12:00:00Z",
        ("2024-01-15T10:00:00Z", {"ENERGY": "12", "TIME": "1.5"}),
        ("2024-01-15T11:30:00Z", {"PARKING_TIME": "0.5"}),
    )
    totals = _price(t, s)
    # FLAT 1.00 -> 1.20; ENERGY 12 x 0.30 = 3.60 -> 3.60 (no VAT); TIME 1.5 x 1.20 = 1.80 ->
    # 1.962; PARKING 0.5 x 2.40 = 1.20 -> 1.452. excl. 7.60; incl. 1.20 + 3.60 + 1.962 + 1.452 = 8.214
    assert _q(totals.total_energy_cost.incl_vat) == _q(D("3.60"))
    assert _q(totals.total_time_cost.incl_vat) == _q(D("1.962"))
    assert _q(totals.total_parking_cost.incl_vat) == _q(D("1.452"))
    assert _excl_incl(totals) == (_q(D("7.60")), _q(D("8.214")))
    cdr = cdr_totals_to_ocpi(totals)
    assert cdr["total_cost"] == {"excl_vat": D("7.60"), "incl_vat": D("8.21")}  # half-up to cents


def test_zero_vat_and_no_vat_both_leave_the_amount_unchanged() -> None:
    # vat 0.0 is 0 % VAT; no vat means no VAT applies: both give incl == excl (5 kWh x 0.40 = 2.00).
    s = _session("2024-01-15T10:00:00Z", "2024-01-15T11:00:00Z", ("2024-01-15T10:00:00Z", {"ENERGY": "5"}))
    for component in (_component("ENERGY", "0.40", 1, "0"), _component("ENERGY", "0.40", 1)):
        assert _excl_incl(_price(_tariff(_element(component)), s)) == (_q(D("2.00")), _q(D("2.00")))


# --- step_size: TIME vs PARKING_TIME ---------------------------------------------------------------

STEPS = _tariff(_element(_component("TIME", "1.00", 900), _component("PARKING_TIME", "2.00", 300)))


def test_step_size_rounds_only_parking_when_time_and_parking_are_both_used() -> None:
    # Charge 21 min, park 7 min. TIME is not rounded (followed by parking): 0.35 h x 1.00 = 0.35;
    # parking 7 -> 10 min (step 300 s): 1/6 h x 2.00 = 0.333333. Total 0.683333.
    s = _session(
        "2024-01-15T10:00:00Z",
        "2024-01-15T10:28:00Z",
        ("2024-01-15T10:00:00Z", {"ENERGY": "4", "TIME": "0.35"}),
        ("2024-01-15T10:21:00Z", {"PARKING_TIME": "0.1166666667"}),
    )
    totals = _price(STEPS, s)
    assert _q(totals.billed(DimensionType.TIME) * 60) == _q(D(21))
    assert _q(totals.billed(DimensionType.PARKING_TIME) * 60) == _q(D(10))
    assert _q(totals.total_cost.excl_vat) == _q(D("0.683333"))


def test_step_size_rounds_charging_time_when_there_is_no_parking() -> None:
    # Charge 21 min, unplug: TIME 21 -> 30 min (step 900 s) x 1.00/h = 0.50.
    s = _session(
        "2024-01-15T10:00:00Z",
        "2024-01-15T10:21:00Z",
        ("2024-01-15T10:00:00Z", {"ENERGY": "4", "TIME": "0.35"}),
    )
    totals = _price(STEPS, s)
    assert _q(totals.billed(DimensionType.TIME) * 60) == _q(D(30))
    assert _q(totals.total_cost.excl_vat) == _q(D("0.50"))


def test_step_size_of_parking_inferred_from_an_idle_period() -> None:
    # The idle period gives no volumes: 10:21-10:28 is parking (no energy flowed), 7 -> 10 min.
    # 0.35 h x 1.00 + 1/6 h x 2.00 = 0.35 + 0.333333 = 0.683333 (as with explicit volumes).
    s = _session(
        "2024-01-15T10:00:00Z",
        "2024-01-15T10:28:00Z",
        ("2024-01-15T10:00:00Z", {"ENERGY": "4", "TIME": "0.35"}),
        ("2024-01-15T10:21:00Z", {"ENERGY": "0"}),
    )
    assert _q(_price(STEPS, s).total_cost.excl_vat) == _q(D("0.683333"))


# --- min_price / max_price with and without VAT ----------------------------------------------------


def test_min_price_without_incl_vat_raises_incl_vat_in_proportion() -> None:
    # (reading) min_price gives excl. VAT only. 4 kWh x 0.25 = 1.00 (1.10 incl. 10 %) is raised
    # to 2.00 excl.; incl. VAT follows the session's own VAT mix: 1.10 x 2.00 / 1.00 = 2.20.
    t = _tariff(_element(_component("ENERGY", "0.25", 1, "10")), min_price={"excl_vat": D("2.00")})
    s = _session("2024-01-15T10:00:00Z", "2024-01-15T11:00:00Z", ("2024-01-15T10:00:00Z", {"ENERGY": "4"}))
    totals = _price(t, s)
    assert _excl_incl(totals) == (_q(D("2.00")), _q(D("2.20")))
    assert totals.min_price_applied


def test_min_price_incl_vat_applies_on_its_own() -> None:
    # min_price 1.00 / 1.25; ENERGY without VAT: 4.4 kWh x 0.25 = 1.10 / 1.10. Excl. is above
    # 1.00 (unchanged); incl. 1.10 is below 1.25 -> 1.25 ("they both apply").
    t = _tariff(
        _element(_component("ENERGY", "0.25", 1)), min_price={"excl_vat": D("1.00"), "incl_vat": D("1.25")}
    )
    s = _session("2024-01-15T10:00:00Z", "2024-01-15T11:00:00Z", ("2024-01-15T10:00:00Z", {"ENERGY": "4.4"}))
    assert _excl_incl(_price(t, s)) == (_q(D("1.10")), _q(D("1.25")))


def test_max_price_with_and_without_incl_vat() -> None:
    # 40 kWh x 0.30 = 12.00, incl. 20 % VAT 14.40.
    s = _session("2024-01-15T10:00:00Z", "2024-01-15T12:00:00Z", ("2024-01-15T10:00:00Z", {"ENERGY": "40"}))
    both = _tariff(
        _element(_component("ENERGY", "0.30", 1, "20")),
        max_price={"excl_vat": D("10.00"), "incl_vat": D("11.50")},
    )
    assert _excl_incl(_price(both, s)) == (_q(D("10.00")), _q(D("11.50")))
    # (reading) excl. only: 12.00 -> 10.00; incl. in proportion 14.40 x 10 / 12 = 12.00.
    excl_only = _tariff(_element(_component("ENERGY", "0.30", 1, "20")), max_price={"excl_vat": D("10.00")})
    assert _excl_incl(_price(excl_only, s)) == (_q(D("10.00")), _q(D("12.00")))
    # Without VAT on the components: 12.00 / 12.00 -> 10.00 / 10.00.
    no_vat = _tariff(_element(_component("ENERGY", "0.30", 1)), max_price={"excl_vat": D("10.00")})
    assert _excl_incl(_price(no_vat, s)) == (_q(D("10.00")), _q(D("10.00")))
