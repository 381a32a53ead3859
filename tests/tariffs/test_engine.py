"""Hand-checked pricing rules beyond the OCPI fixture cases (arithmetic in the comments)."""

from __future__ import annotations

from datetime import UTC, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tariffs.engine import WARNING_TARIFF_NOT_IN_FORCE, live_estimate, price_session, price_session_in_force
from tariffs.errors import TariffError, TariffNotInForceError
from tariffs.model import (
    DayOfWeek,
    DimensionType,
    Price,
    ReservationRestriction,
    Restrictions,
    TariffVersions,
)
from tests.tariffs.builders import D, at, component, element, period, session, tariff

ENERGY, TIME, PARKING, FLAT = (
    DimensionType.ENERGY,
    DimensionType.TIME,
    DimensionType.PARKING_TIME,
    DimensionType.FLAT,
)
BERLIN = ZoneInfo("Europe/Berlin")


def test_each_dimension_takes_the_first_active_element_that_prices_it() -> None:
    # Element 1 (mornings) prices ENERGY only; element 2 prices TIME only; element 3 ENERGY fallback.
    t = tariff(
        element(component(ENERGY, "0.10"), restrictions=Restrictions(start_time=time(0), end_time=time(12))),
        element(component(TIME, "1.00")),
        element(component(ENERGY, "0.30")),
    )
    s = session("2024-01-15T13:00", "2024-01-15T14:00", period("2024-01-15T13:00", energy="10", time="1"))
    totals = price_session(t, s, UTC)
    assert totals.total_energy_cost.excl_vat == D("3.00")  # 10 kWh x 0.30 (morning element inactive)
    assert totals.total_time_cost.excl_vat == D("1.00")  # 1 h x 1.00 from element 2
    assert totals.total_cost.excl_vat == D("4.00")


def test_flat_fee_is_charged_once_from_the_first_period_where_it_is_active() -> None:
    t = tariff(
        element(component(FLAT, "2.00"), restrictions=Restrictions(min_kwh=D(10))),
        element(component(ENERGY, "0.25")),
    )
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T12:00",
        period("2024-01-15T10:00", energy="12"),
        period("2024-01-15T11:00", energy="4"),
    )
    totals = price_session(t, s, UTC)
    assert totals.total_fixed_cost.excl_vat == D("2.00")  # active from the 2nd period (12 kWh before it)
    assert [line.period_index for line in totals.lines if line.dimension is FLAT] == [1]
    assert totals.total_cost.excl_vat == D("6.00")  # 2.00 + 16 kWh x 0.25


@pytest.mark.parametrize(
    ("start_utc", "price"),
    [
        ("2024-01-15T21:30", "0.10"),  # 22:30 Berlin: inside 22:00-06:00
        ("2024-01-16T04:59", "0.10"),  # 05:59 Berlin: still inside after midnight
        ("2024-01-16T05:00", "0.30"),  # 06:00 Berlin: end is exclusive
        ("2024-01-15T20:59", "0.30"),  # 21:59 Berlin: before the window
    ],
)
def test_time_window_wraps_past_midnight_in_local_time(start_utc: str, price: str) -> None:
    t = tariff(
        element(component(ENERGY, "0.10"), restrictions=Restrictions(start_time=time(22), end_time=time(6))),
        element(component(ENERGY, "0.30")),
    )
    end = (at(start_utc) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    totals = price_session(t, session(start_utc, end, period(start_utc, energy="1")), BERLIN)
    assert totals.total_energy_cost.excl_vat == D(price)


def test_end_time_midnight_means_end_of_day() -> None:
    t = tariff(
        element(component(ENERGY, "0.40"), restrictions=Restrictions(start_time=time(17), end_time=time(0))),
        element(component(ENERGY, "0.20")),
    )
    late = price_session(
        t, session("2024-01-15T23:59", "2024-01-16T00:10", period("2024-01-15T23:59", energy="1")), UTC
    )
    early = price_session(
        t, session("2024-01-16T00:00", "2024-01-16T00:10", period("2024-01-16T00:00", energy="1")), UTC
    )
    assert (late.total_cost.excl_vat, early.total_cost.excl_vat) == (D("0.40"), D("0.20"))


def test_dates_and_weekdays_are_local_and_end_date_is_exclusive() -> None:
    t = tariff(
        element(
            component(ENERGY, "0.10"),
            restrictions=Restrictions(
                start_date=at("2024-03-01T00:00").date(), end_date=at("2024-04-01T00:00").date()
            ),
        ),
        element(
            component(ENERGY, "0.20"), restrictions=Restrictions(days_of_week=frozenset({DayOfWeek.MONDAY}))
        ),
        element(component(ENERGY, "0.30")),
    )
    # 2024-03-31T21:30Z is 23:30 on Sunday 31 March in Berlin (CEST): inside March.
    march = session("2024-03-31T21:30", "2024-03-31T21:45", period("2024-03-31T21:30", energy="1"))
    # 2024-03-31T22:30Z is 00:30 on Monday 1 April in Berlin: end_date excludes it; Monday element.
    april = session("2024-03-31T22:30", "2024-03-31T22:45", period("2024-03-31T22:30", energy="1"))
    assert price_session(t, march, BERLIN).total_cost.excl_vat == D("0.10")
    assert price_session(t, april, BERLIN).total_cost.excl_vat == D("0.20")
    assert price_session(t, april, UTC).total_cost.excl_vat == D("0.10")  # still 31 March in UTC


def test_energy_thresholds_use_energy_consumed_before_the_period() -> None:
    t = tariff(
        element(component(ENERGY, "0.20"), restrictions=Restrictions(max_kwh=D(10))),
        element(component(ENERGY, "0.40"), restrictions=Restrictions(min_kwh=D(10))),
    )
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T13:00",
        period("2024-01-15T10:00", energy="8"),  # before 0  -> 0.20
        period("2024-01-15T11:00", energy="5"),  # before 8  -> 0.20
        period("2024-01-15T12:00", energy="3"),  # before 13 -> 0.40
    )
    assert price_session(t, s, UTC).total_cost.excl_vat == D("3.80")  # 13 x 0.20 + 3 x 0.40


def test_current_and_power_restrictions_are_per_period_and_unknown_values_do_not_match() -> None:
    t = tariff(
        element(component(ENERGY, "0.50"), restrictions=Restrictions(min_power_kw=D(50))),
        element(component(ENERGY, "0.35"), restrictions=Restrictions(max_current_a=D(32))),
        element(component(ENERGY, "0.30")),
    )
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T13:00",
        period("2024-01-15T10:00", energy="10", min_power="50", max_power="90"),  # min 50 inclusive -> 0.50
        period("2024-01-15T11:00", energy="10", current="16"),  # CURRENT stands in for MAX_CURRENT -> 0.35
        period("2024-01-15T12:00", energy="10"),  # no power or current reported -> fallback 0.30
    )
    assert price_session(t, s, UTC).total_cost.excl_vat == D("11.50")  # 5.00 + 3.50 + 3.00


def test_duration_bounds_min_inclusive_max_exclusive_from_session_start() -> None:
    t = tariff(
        element(component(PARKING, "0"), restrictions=Restrictions(max_duration_s=3600)),
        element(component(PARKING, "6.00"), restrictions=Restrictions(min_duration_s=3600)),
    )
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T11:30",
        period("2024-01-15T10:00", time="0.5"),
        period("2024-01-15T10:30", parking_time="0.5"),  # 1800 s < 3600: grace, free
        period("2024-01-15T11:00", parking_time="0.5"),  # exactly 3600 s: paid
    )
    assert price_session(t, s, UTC).total_parking_cost.excl_vat == D("3.00")  # 0.5 h x 6.00


@pytest.mark.parametrize(
    ("step_size_wh", "billed_kwh", "cost"),
    [(1, "0.116", "0.029"), (25, "0.125", "0.03125"), (500, "0.5", "0.125")],
)
def test_energy_step_size_matches_the_spec_text(step_size_wh: int, billed_kwh: str, cost: str) -> None:
    # OCPI: 115.2 Wh at 0.25/kWh is billed as 116 Wh (0.029), 125 Wh (0.031) or 500 Wh (0.125).
    t = tariff(element(component(ENERGY, "0.25", step_size_wh)))
    totals = price_session(
        t, session("2024-01-15T10:00", "2024-01-15T10:10", period("2024-01-15T10:00", energy="0.1152")), UTC
    )
    assert totals.billed(ENERGY) == D(billed_kwh)
    assert totals.total_cost.excl_vat == D(cost)


def test_step_size_zero_bills_what_was_measured() -> None:
    t = tariff(element(component(TIME, "6.00", 0)))
    totals = price_session(
        t, session("2024-01-15T10:00", "2024-01-15T10:07", period("2024-01-15T10:00", time="0.1")), UTC
    )
    assert totals.total_cost.excl_vat == D("0.600")


def test_only_parking_is_rounded_when_time_and_parking_are_both_priced() -> None:
    # TIME 6 min then PARKING 4 min, both step 600 s: TIME stays 6 min (0.60), parking -> 10 min (1.00).
    t = tariff(element(component(TIME, "6.00", 600), component(PARKING, "6.00", 600)))
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T10:10",
        period("2024-01-15T10:00", time="0.1"),
        period("2024-01-15T10:06", parking_time="0.0666666667"),
    )
    totals = price_session(t, s, UTC)
    assert totals.total_time_cost.excl_vat == D("0.600")
    assert totals.billed(PARKING) * 60 == D(10)
    assert totals.total_parking_cost.excl_vat == D("1.00")


def test_period_without_time_dimensions_counts_its_duration_as_charging_time() -> None:
    t = tariff(element(component(TIME, "3.00", 60)))
    s = session("2024-01-15T10:00", "2024-01-15T10:45", period("2024-01-15T10:00", energy="5"))
    assert price_session(t, s, UTC).total_time_cost.excl_vat == D("2.25")  # 45 min x 3.00/h


def test_vat_missing_means_none_and_rates_apply_per_component() -> None:
    t = tariff(element(component(ENERGY, "0.20", vat="19"), component(FLAT, "1.00")))
    totals = price_session(
        t, session("2024-01-15T10:00", "2024-01-15T11:00", period("2024-01-15T10:00", energy="10")), UTC
    )
    assert totals.total_energy_cost.incl_vat == D("2.38")  # 2.00 x 1.19
    assert totals.total_fixed_cost.incl_vat == D("1.00")  # no VAT on the flat fee
    assert totals.total_cost.incl_vat == D("3.38")


def test_min_price_without_incl_vat_scales_incl_vat_in_proportion() -> None:
    t = tariff(element(component(ENERGY, "0.20", vat="20")), min_price=Price(D("2.00")))
    totals = price_session(
        t, session("2024-01-15T10:00", "2024-01-15T11:00", period("2024-01-15T10:00", energy="5")), UTC
    )
    assert totals.total_cost.excl_vat == D("2.00")  # 1.00 raised to 2.00
    assert totals.total_cost.incl_vat == D("2.40")  # 1.20 x 2.00 / 1.00
    assert totals.min_price_applied


def test_max_price_caps_excl_and_incl_independently() -> None:
    t = tariff(element(component(ENERGY, "0.50", vat="10")), max_price=Price(D("10.00"), D("10.50")))
    totals = price_session(
        t, session("2024-01-15T10:00", "2024-01-15T11:00", period("2024-01-15T10:00", energy="30")), UTC
    )
    assert (totals.total_cost.excl_vat, totals.total_cost.incl_vat) == (D("10.00"), D("10.50"))
    assert totals.total_energy_cost.excl_vat == D("15.00")  # parts stay unbounded
    assert totals.max_price_applied


def test_reservation_periods_use_reservation_elements_and_expired_ones_prefer_expires() -> None:
    t = tariff(
        element(
            component(TIME, "1.00", 60),
            component(FLAT, "0.50"),
            restrictions=Restrictions(reservation=ReservationRestriction.RESERVATION),
        ),
        element(
            component(TIME, "3.00", 60),
            restrictions=Restrictions(reservation=ReservationRestriction.RESERVATION_EXPIRES),
        ),
        element(component(ENERGY, "0.30")),
    )
    kept = session(
        "2024-01-15T09:30",
        "2024-01-15T11:00",
        period("2024-01-15T09:30", reservation_time="0.5"),
        period("2024-01-15T10:00", energy="10", time="1"),
    )
    expired = session(
        "2024-01-15T09:30", "2024-01-15T10:00", period("2024-01-15T09:30", reservation_time="0.5")
    )
    kept_totals = price_session(t, kept, UTC)
    assert kept_totals.total_reservation_cost.excl_vat == D("1.00")  # 0.50 fee + 0.5 h x 1.00
    assert kept_totals.total_energy_cost.excl_vat == D("3.00")
    assert kept_totals.total_fixed_cost.excl_vat == D(0)  # the reservation fee is not the session's flat fee
    assert price_session(t, expired, UTC).total_reservation_cost.excl_vat == D("2.00")  # 0.50 + 0.5 h x 3.00


def test_live_estimate_runs_the_open_period_until_now() -> None:
    t = tariff(element(component(TIME, "2.00", 0), component(ENERGY, "0.30", 0)))
    running = session("2024-01-15T10:00", None, period("2024-01-15T10:00", energy="4"))
    totals = live_estimate(t, running, at("2024-01-15T10:30"), UTC)
    assert totals.total_cost.excl_vat == D("2.20")  # 0.5 h x 2.00 + 4 kWh x 0.30
    with pytest.raises(TariffError, match="has not ended"):
        price_session(t, running, UTC)


def test_tariff_versions_pick_the_one_in_force_at_session_start() -> None:
    old = tariff(element(component(ENERGY, "0.30")), start_date_time=at("2024-01-01T00:00"))
    new = tariff(element(component(ENERGY, "0.35")), start_date_time=at("2024-03-01T00:00"))
    ended = tariff(element(component(ENERGY, "0.10")), end_date_time=at("2023-12-31T00:00"))
    versions = TariffVersions.of([old, new, ended])
    assert versions.in_force_at(at("2024-02-29T23:59")) is old
    assert versions.in_force_at(at("2024-03-01T00:00")) is new
    assert versions.in_force_at(at("2023-06-01T00:00")) is ended
    with pytest.raises(TariffNotInForceError):
        versions.in_force_at(at("2023-12-31T12:00"))


def test_pricing_with_a_tariff_not_in_force_warns() -> None:
    t = tariff(element(component(ENERGY, "0.30")), end_date_time=at("2024-01-01T00:00"))
    totals = price_session(
        t, session("2024-01-15T10:00", "2024-01-15T11:00", period("2024-01-15T10:00", energy="1")), UTC
    )
    assert totals.warnings == (WARNING_TARIFF_NOT_IN_FORCE,)


def test_session_ending_before_its_last_period_is_refused() -> None:
    t = tariff(element(component(ENERGY, "0.30")))
    s = session(
        "2024-01-15T10:00",
        "2024-01-15T10:30",
        period("2024-01-15T10:00", energy="1"),
        period("2024-01-15T10:45", energy="1"),
    )
    with pytest.raises(TariffError, match="before its last charging period"):
        price_session(t, s, UTC)


def test_a_session_is_priced_with_the_version_in_force_when_it_started() -> None:
    old = tariff(element(component(ENERGY, "0.30")), end_date_time=at("2024-01-15T10:30"))
    new = tariff(element(component(ENERGY, "0.40")), start_date_time=at("2024-01-15T10:30"))
    s = session("2024-01-15T10:00", "2024-01-15T11:00", period("2024-01-15T10:00", energy="10"))
    totals = price_session_in_force(TariffVersions.of([new, old]), s, UTC)
    assert totals.total_cost.excl_vat == D("3.00")  # started under the old version
