"""Rating (pure): meter readings to charging periods, time-of-use splits, idle time, and the property
that splitting the periods anywhere does not change the price of a linear tariff.

tests/tariffs/test_properties.py shows the engine keeps the totals when *given* split periods;
here the property is about billing's own splitter: the energy it spreads over the periods by
interpolating the register must add up exactly, wherever the cuts fall.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.errors import RatingError
from billing.idle import charging_ended_at, register_wh
from billing.rating import CompletedSession, charging_periods, rate
from tariffs.engine import price_session
from tariffs.money import round_money
from tariffs.ocpi import parse_tariff, tariff_to_ocpi

START = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # 17:00 in Berlin (CET)


def session(minutes: int = 120, energy_wh: float = 20_000, **fields: object) -> CompletedSession:
    values: dict[str, object] = {
        "session_id": "s1",
        "driver_id": "d1",
        "charger_id": "CP1",
        "started_at": START,
        "ended_at": START + timedelta(minutes=minutes),
        "meter_start_wh": 5_000.0,
        "meter_stop_wh": 5_000.0 + energy_wh,
        "time_zone": "Europe/Berlin",
    }
    values.update(fields)
    return CompletedSession(**values)  # type: ignore[arg-type]


PEAK = parse_tariff(
    {
        "id": "TOU",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [{"type": "ENERGY", "price": 0.40, "step_size": 1}],
                "restrictions": {"start_time": "18:00", "end_time": "22:00"},
            },
            {"price_components": [{"type": "ENERGY", "price": 0.20, "step_size": 1}]},
        ],
    }
)


def test_time_of_use_boundary_splits_the_energy_evenly_without_samples() -> None:
    totals = rate(session(), PEAK, charging_end=None)
    # 17:00-19:00 local at constant power: 10 kWh at 0.20 before 18:00, 10 kWh at 0.40 after.
    assert totals.total_cost.excl_vat == Decimal("6.00")
    assert [p.start_utc.hour for p in totals.charging_periods] == [16, 17]


def test_register_samples_decide_how_much_energy_fell_in_each_window() -> None:
    samples = [
        (START + timedelta(minutes=30), 5_000.0 + 9_000),
        (START + timedelta(minutes=60), 5_000.0 + 15_000),
    ]
    totals = rate(session(), PEAK, charging_end=None, samples=samples)
    assert totals.total_cost.excl_vat == Decimal("15") * Decimal("0.20") + Decimal("5") * Decimal("0.40")
    assert totals.total_energy_kwh == Decimal(20)


def test_energy_threshold_is_crossed_where_the_register_crosses_it() -> None:
    tiered = parse_tariff(
        {
            "id": "TIER",
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [{"type": "ENERGY", "price": 0.50, "step_size": 1}],
                    "restrictions": {"max_kwh": 10},
                },
                {"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]},
            ],
        }
    )
    assert rate(session(), tiered, charging_end=None).total_cost.excl_vat == Decimal("7.50")
    # 7 kWh of 19 is reached 41.63... min into 113: the period from there is priced at the tier above.
    tiered_7 = parse_tariff(
        {
            **tariff_to_ocpi(tiered),
            "elements": [
                {**tariff_to_ocpi(tiered)["elements"][0], "restrictions": {"max_kwh": 7}},
                tariff_to_ocpi(tiered)["elements"][1],
            ],
        }
    )
    awkward = session(minutes=113, energy_wh=19_000)
    totals = rate(awkward, tiered_7, charging_end=None)
    assert round_money(totals.total_cost.excl_vat, "EUR") == Decimal("6.50")  # 7 * 0.50 + 12 * 0.25


def test_idle_time_starts_when_the_register_stops_moving_and_is_priced_as_parking() -> None:
    readings = [
        (START + timedelta(minutes=20), 15_000.0),
        (START + timedelta(minutes=40), 25_000.0),
        (START + timedelta(minutes=50), 25_000.4),
        (START + timedelta(minutes=70), 25_000.0),
    ]
    ended = charging_ended_at(
        readings, started_at=START, ended_at=START + timedelta(minutes=120), meter_stop_wh=25_000
    )
    assert ended == START + timedelta(minutes=40)
    parking = parse_tariff(
        {
            "id": "PARK",
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [
                        {"type": "ENERGY", "price": 0.30, "step_size": 1},
                        {"type": "PARKING_TIME", "price": 6.00, "step_size": 60},
                    ]
                }
            ],
        }
    )
    totals = rate(session(), parking, charging_end=ended, samples=readings)
    assert totals.total_parking_time_h == Decimal(80) / 60
    assert round_money(totals.total_parking_cost.excl_vat, "EUR") == Decimal("8.00")  # 80 min at 0.10
    assert totals.total_energy_cost.excl_vat == Decimal("6.00")


def test_idle_is_unknown_without_readings_or_when_energy_flowed_until_the_end() -> None:
    end = START + timedelta(hours=1)
    assert charging_ended_at([], started_at=START, ended_at=end, meter_stop_wh=10) is None
    assert charging_ended_at([(end, 10.0)], started_at=START, ended_at=end, meter_stop_wh=10) is None
    assert register_wh(1.5, "kWh") == 1500.0


def test_impossible_readings_are_refused_with_the_session_named() -> None:
    with pytest.raises(RatingError, match="s1: meter stop"):
        rate(session(energy_wh=-5), PEAK, charging_end=None)
    with pytest.raises(RatingError, match="unknown time zone"):
        rate(session(time_zone="Mars/Olympus"), PEAK, charging_end=None)


UNIT_S = 36  # 0.01 h: every instant below is a whole number of units, so hours stay exact
prices = st.decimals(min_value=0, max_value=10, places=2)
vats = st.sampled_from([None, Decimal(0), Decimal(19), Decimal("20.5")])


@given(
    flat=prices,
    energy=prices,
    time=prices,
    parking=prices,
    vat=vats,
    units=st.integers(min_value=2, max_value=400),
    energy_wh=st.integers(min_value=0, max_value=80_000),
    data=st.data(),
)
def test_splitting_the_periods_anywhere_keeps_a_linear_price(
    flat: Decimal,
    energy: Decimal,
    time: Decimal,
    parking: Decimal,
    vat: Decimal | None,
    units: int,
    energy_wh: int,
    data: st.DataObject,
) -> None:
    components = [
        {"type": kind, "price": price, "step_size": 0, **({} if vat is None else {"vat": vat})}
        for kind, price in (("FLAT", flat), ("ENERGY", energy), ("TIME", time), ("PARKING_TIME", parking))
    ]
    tariff = parse_tariff({"id": "LIN", "currency": "EUR", "elements": [{"price_components": components}]})
    completed = session(
        minutes=0, energy_wh=float(energy_wh), ended_at=START + timedelta(seconds=units * UNIT_S)
    )
    charging_units = data.draw(st.integers(min_value=1, max_value=units), label="charging units")
    charging_end = START + timedelta(seconds=charging_units * UNIT_S)
    sample_units = data.draw(
        st.lists(st.integers(min_value=1, max_value=charging_units), max_size=4, unique=True)
    )
    levels = sorted(
        data.draw(st.lists(st.integers(0, energy_wh), min_size=len(sample_units), max_size=len(sample_units)))
    )
    samples = [
        (START + timedelta(seconds=u * UNIT_S), completed.meter_start_wh + wh)
        for u, wh in zip(sorted(sample_units), levels, strict=True)
    ]
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=units - 1), max_size=5), label="cuts")
    splits = [START + timedelta(seconds=u * UNIT_S) for u in cuts]

    whole = charging_periods(completed, tariff, charging_end=charging_end, samples=samples)
    split = charging_periods(
        completed, tariff, charging_end=charging_end, samples=samples, extra_splits=splits
    )
    zone = completed.zone()
    a, b = price_session(tariff, whole, zone), price_session(tariff, split, zone)

    assert len(split.charging_periods) >= len(whole.charging_periods)
    assert b.total_cost == a.total_cost
    assert (b.total_energy_kwh, b.total_time_h, b.total_parking_time_h) == (
        a.total_energy_kwh,
        a.total_time_h,
        a.total_parking_time_h,
    )
    assert a.total_energy_kwh == Decimal(energy_wh) / 1000
