"""OCPP charging profiles from schedules: hand-checked cases, schema validity, properties."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.errors import OptimizerError, ProfileError
from optimizer.profile_schema import validate_v16, validate_v201
from optimizer.profiles import (
    bounded_periods,
    failsafe_profile_v16,
    failsafe_profile_v201,
    limit_from_current,
    merged_periods,
    min_charging_rate,
    rfc3339_utc,
    schedule_profile_v16,
    schedule_profile_v201,
    tx_profile_v16,
    tx_profile_v201,
)
from optimizer.types import (
    Connection,
    Evse,
    FloatArray,
    ObjectiveBreakdown,
    RateUnit,
    Schedule,
    SolveStatus,
)

START = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)

EVSE_A = Evse("a", Connection.L1, voltage_v=230.0, max_current_a=32.0, min_current_a=6.0)
EVSE_3P_W = Evse(
    "w",
    Connection.THREE_PHASE,
    voltage_v=230.0,
    max_current_a=32.0,
    min_current_a=6.0,
    rate_unit=RateUnit.WATT,
    step=100.0,
)


def row(*currents_a: float) -> FloatArray:
    return np.array(currents_a, dtype=np.float64)


def make_schedule(evses: tuple[Evse, ...], rows: list[list[float]], period_s: int = 300) -> Schedule:
    current_a = np.array(rows, dtype=np.float64)
    power_kw = current_a * np.array([[evse.kw_per_a] for evse in evses])
    return Schedule(
        station_id="st-1",
        start=START,
        period_s=period_s,
        evse_ids=tuple(evse.evse_id for evse in evses),
        session_ids=tuple(f"s-{evse.evse_id}" for evse in evses),
        current_a=current_a,
        power_kw=power_kw,
        status=SolveStatus.OPTIMAL,
        objective=ObjectiveBreakdown(0.0, 0.0, 0.0, 0.0, 1.0),
        solve_time_s=0.0,
    )


# --- merging and rounding ----------------------------------------------------------------------


def test_equal_consecutive_periods_merge() -> None:
    periods = merged_periods(row(16, 16, 16, 10, 10, 0, 0, 16), period_s=300, evse=EVSE_A)
    assert periods == [(0, 16.0), (900, 10.0), (1500, 0.0), (2100, 16.0)]


def test_periods_equal_after_rounding_merge() -> None:
    # 16.04 A rounds down to 16.0 A on a 0.1 A step; 15.99 A to 15.9 A.
    periods = merged_periods(row(16.0, 16.04, 15.99, 15.95), period_s=60, evse=EVSE_A)
    assert periods == [(0, 16.0), (120, 15.9)]


@pytest.mark.parametrize(
    ("step_a", "current_a", "expected"),
    [(0.1, 13.77, 13.7), (1.0, 15.9, 15.0), (0.5, 7.74, 7.5), (0.5, 8.0, 8.0), (0.1, 0.3, 0.3)],
)
def test_ampere_limits_round_down_to_the_step(step_a: float, current_a: float, expected: float) -> None:
    evse = Evse("a", Connection.L1, 230.0, max_current_a=32.0, step=step_a)
    assert limit_from_current(current_a, evse) == expected


@pytest.mark.parametrize(
    ("evse", "current_a", "expected_w"),
    [
        # 3 x 230 V = 690 W/A: 10.3 A = 7107 W, down to the 100 W step.
        (EVSE_3P_W, 10.3, 7100.0),
        # 16 A = 11040 W -> 11000 W.
        (EVSE_3P_W, 16.0, 11000.0),
        # single phase 230 V, 1 W step: 13.7 A = 3151 W exactly (no step lost to float noise).
        (Evse("w1", Connection.L1, 230.0, 32.0, rate_unit=RateUnit.WATT, step=1.0), 13.7, 3151.0),
        # line-to-line 208 V, 1 W step: 6.0 A = 1248 W.
        (Evse("ll", Connection.L1_L2, 208.0, 32.0, 6.0, RateUnit.WATT, 1.0), 6.0, 1248.0),
        # 0.1 W step: 7.01 A x 230 V = 1612.3 W.
        (Evse("w2", Connection.L2, 230.0, 32.0, rate_unit=RateUnit.WATT, step=0.1), 7.01, 1612.3),
    ],
)
def test_watt_limits_are_converted_and_rounded_down(evse: Evse, current_a: float, expected_w: float) -> None:
    limit_w = limit_from_current(current_a, evse)
    assert limit_w == expected_w
    assert limit_w <= current_a * evse.kw_per_a * 1000.0


@pytest.mark.parametrize(
    ("evse", "current_a", "expected"),
    [
        (EVSE_A, 3.0, 0.0),  # between 0 and the minimum
        (EVSE_A, 5.99, 0.0),  # 5.9 A after rounding: below 6 A
        (EVSE_A, 6.0, 6.0),
        (EVSE_A, -1.0, 0.0),  # never negative
        (EVSE_A, 40.0, 32.0),  # never above the EVSE's maximum
        # 6.0 A = 4140 W at 3 x 230 V, down to 4100 W: below the minimum (4140 W) -> 0.
        (EVSE_3P_W, 6.0, 0.0),
        (EVSE_3P_W, 6.2, 4200.0),  # 4278 W -> 4200 W >= 4140 W
    ],
)
def test_minimum_current_rule(evse: Evse, current_a: float, expected: float) -> None:
    assert limit_from_current(current_a, evse) == expected


def test_min_charging_rate_rounds_up() -> None:
    assert min_charging_rate(EVSE_A) == 6.0
    assert min_charging_rate(EVSE_3P_W) == 4200.0  # 4140 W up to the 100 W step
    assert min_charging_rate(Evse("z", Connection.L1, 230.0, 32.0)) is None


def test_non_finite_current_is_rejected() -> None:
    with pytest.raises(ProfileError, match="finite"):
        limit_from_current(float("nan"), EVSE_A)


def test_bounded_periods_cut_the_duration_where_the_first_dropped_period_starts() -> None:
    periods = [(0, 10.0), (300, 12.0), (600, 10.0), (1200, 0.0)]
    assert bounded_periods(periods, duration_s=1800, max_periods=4) == (periods, 1800)
    assert bounded_periods(periods, duration_s=1800, max_periods=2) == (periods[:2], 600)
    with pytest.raises(ProfileError):
        bounded_periods(periods, duration_s=1800, max_periods=0)


def test_timestamps_are_utc_with_z_and_whole_seconds() -> None:
    cet = timezone(timedelta(hours=1))
    assert rfc3339_utc(datetime(2026, 11, 21, 9, 30, 5, 123456, tzinfo=cet)) == "2026-11-21T08:30:05Z"
    with pytest.raises(ProfileError, match="naive"):
        rfc3339_utc(datetime(2026, 11, 21, 9, 30))


# --- OCPP 1.6 ----------------------------------------------------------------------------------


def test_tx_profile_v16_hand_checked() -> None:
    schedule = make_schedule((EVSE_A, EVSE_3P_W), [[16, 16, 8, 0], [10.3, 10.3, 16, 16]])
    profile = tx_profile_v16(schedule, EVSE_3P_W, transaction_id=42, profile_id=7)
    assert profile == {
        "chargingProfileId": 7,
        "transactionId": 42,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": "2026-11-21T08:00:00Z",
            "duration": 1200,
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 7100.0, "numberPhases": 3},
                {"startPeriod": 600, "limit": 11000.0, "numberPhases": 3},
            ],
            "minChargingRate": 4200.0,
        },
    }
    validate_v16(profile, connector_id=2)


def test_tx_profile_v16_single_phase_in_amperes() -> None:
    schedule = make_schedule((EVSE_A,), [[16, 16, 8, 0]])
    profile = tx_profile_v16(schedule, EVSE_A, transaction_id=1, profile_id=3, stack_level=2)
    assert profile["stackLevel"] == 2
    assert profile["chargingSchedule"]["chargingRateUnit"] == "A"
    assert profile["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 16.0, "numberPhases": 1},
        {"startPeriod": 600, "limit": 8.0, "numberPhases": 1},
        {"startPeriod": 900, "limit": 0.0, "numberPhases": 1},
    ]
    validate_v16(profile)


def test_tx_profile_is_cut_at_max_periods() -> None:
    schedule = make_schedule((EVSE_A,), [[10, 12, 10, 12, 10, 12, 10, 12]], period_s=900)
    full = tx_profile_v16(schedule, EVSE_A, transaction_id=1, profile_id=1)
    assert full["chargingSchedule"]["duration"] == 8 * 900
    assert len(full["chargingSchedule"]["chargingSchedulePeriod"]) == 8
    cut = tx_profile_v201(schedule, EVSE_A, transaction_id="tx-1", profile_id=1, max_periods=3)
    (charging_schedule,) = cut["chargingSchedule"]
    assert charging_schedule["duration"] == 3 * 900
    assert [p["startPeriod"] for p in charging_schedule["chargingSchedulePeriod"]] == [0, 900, 1800]
    validate_v201(cut)


def test_failsafe_profile_v16_shape() -> None:
    profile = failsafe_profile_v16(EVSE_3P_W, limit_a=8.0, profile_id=100)
    assert profile == {
        "chargingProfileId": 100,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 5500.0, "numberPhases": 3}],
            "minChargingRate": 4200.0,
        },
    }
    validate_v16(profile, connector_id=0)


def test_failsafe_below_the_minimum_is_zero_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="optimizer.profiles"):
        profile = failsafe_profile_v16(EVSE_A, limit_a=4.5, profile_id=1)
    assert profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 0.0
    assert "EVSE a" in caplog.text
    validate_v16(profile)


def test_transaction_id_only_on_tx_profiles() -> None:
    schedule = make_schedule((EVSE_A,), [[16]])
    with pytest.raises(ProfileError, match="transaction"):
        schedule_profile_v16(
            schedule, EVSE_A, purpose="TxDefaultProfile", profile_id=1, stack_level=0, transaction_id=5
        )
    with pytest.raises(ProfileError, match="transaction"):
        schedule_profile_v201(schedule, EVSE_A, purpose="TxProfile", profile_id=1, stack_level=1)
    with pytest.raises(ProfileError, match="characters"):
        tx_profile_v201(schedule, EVSE_A, transaction_id="x" * 37, profile_id=1)


def test_charge_point_max_profile_v16() -> None:
    site = Evse("site", Connection.THREE_PHASE, 230.0, max_current_a=100.0)
    schedule = make_schedule((site,), [[63, 63, 40]])
    profile = schedule_profile_v16(
        schedule, site, purpose="ChargePointMaxProfile", profile_id=2, stack_level=0
    )
    assert "transactionId" not in profile
    assert profile["chargingSchedule"]["chargingSchedulePeriod"][1] == {
        "startPeriod": 600,
        "limit": 40.0,
        "numberPhases": 3,
    }
    validate_v16(profile, connector_id=0)


def test_unknown_evse_and_naive_start_are_rejected() -> None:
    schedule = make_schedule((EVSE_A,), [[16]])
    with pytest.raises(ProfileError, match="not in the schedule"):
        tx_profile_v16(schedule, EVSE_3P_W, transaction_id=1, profile_id=1)
    naive = Schedule(
        "st", datetime(2026, 1, 1), 300, ("a",), ("s",), row(16)[None, :], row(3.7)[None, :],
        SolveStatus.OPTIMAL, ObjectiveBreakdown(0.0, 0.0, 0.0, 0.0, 1.0), 0.0,
    )  # fmt: skip
    with pytest.raises(ProfileError, match="naive"):
        tx_profile_v16(naive, EVSE_A, transaction_id=1, profile_id=1)


# --- OCPP 2.0.1 --------------------------------------------------------------------------------


def test_tx_profile_v201_hand_checked() -> None:
    schedule = make_schedule((EVSE_A,), [[32, 32, 6.05, 2]], period_s=600)
    profile = tx_profile_v201(schedule, EVSE_A, transaction_id="f81d4fae", profile_id=11, schedule_id=4)
    assert profile == {
        "id": 11,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 4,
                "startSchedule": "2026-11-21T08:00:00Z",
                "duration": 2400,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 32.0, "numberPhases": 1},
                    {"startPeriod": 1200, "limit": 6.0, "numberPhases": 1},
                    {"startPeriod": 1800, "limit": 0.0, "numberPhases": 1},
                ],
                "minChargingRate": 6.0,
            }
        ],
        "transactionId": "f81d4fae",
    }
    validate_v201(profile, evse_id=3)


@pytest.mark.parametrize(
    ("connection", "switching", "expected"),
    [
        (Connection.L2, True, 2),
        (Connection.L3, True, 3),
        (Connection.L2, False, None),  # not allowed unless the EVSE can switch phases
        (Connection.L1_L2, True, None),  # line-to-line: no single phase to name
        (Connection.THREE_PHASE, True, None),  # only with numberPhases 1
    ],
)
def test_phase_to_use_only_where_the_spec_allows(
    connection: Connection, switching: bool, expected: int | None
) -> None:
    evse = Evse("p", connection, 230.0, 32.0)
    schedule = make_schedule((evse,), [[10, 12]])
    profile = tx_profile_v201(
        schedule, evse, transaction_id="t", profile_id=1, ac_phase_switching_supported=switching
    )
    failsafe = failsafe_profile_v201(evse, limit_a=6.0, profile_id=2, ac_phase_switching_supported=switching)
    for built in (profile, failsafe):
        for period in built["chargingSchedule"][0]["chargingSchedulePeriod"]:
            assert period.get("phaseToUse") == expected
            assert period["numberPhases"] == connection.phases
        validate_v201(built)


def test_failsafe_profile_v201_shape() -> None:
    profile = failsafe_profile_v201(EVSE_A, limit_a=10.07, profile_id=5)
    assert profile == {
        "id": 5,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {
                "id": 5,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0, "numberPhases": 1}],
                "minChargingRate": 6.0,
            }
        ],
    }
    validate_v201(profile, evse_id=0)


def test_station_max_profile_v201() -> None:
    site = Evse("site", Connection.THREE_PHASE, 230.0, max_current_a=200.0, rate_unit=RateUnit.WATT, step=1.0)
    schedule = make_schedule((site,), [[100, 80]])
    profile = schedule_profile_v201(
        schedule, site, purpose="ChargingStationMaxProfile", profile_id=1, stack_level=0
    )
    periods = profile["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert [p["limit"] for p in periods] == [69000.0, 55200.0]
    validate_v201(profile, evse_id=0)


# --- validation --------------------------------------------------------------------------------


def _v16_base() -> dict[str, Any]:
    return failsafe_profile_v16(EVSE_A, limit_a=16.0, profile_id=1)


def _v201_base() -> dict[str, Any]:
    schedule = make_schedule((EVSE_A,), [[16, 8]])
    return tx_profile_v201(schedule, EVSE_A, transaction_id="t-1", profile_id=1)


def test_decimal_limits_pass_the_v16_multiple_of() -> None:
    # 0.3 / 0.1 is 2.9999999999999996 in binary floats; the schema must judge decimals.
    profile = _v16_base()
    profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 0.3
    validate_v16(profile)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda p: p["chargingSchedule"]["chargingSchedulePeriod"][0].update(limit=16.05), "multiple of 0.1"),
        (lambda p: p.pop("chargingSchedule"), "chargingSchedule"),
        (lambda p: p.update(chargingProfileKind="Sometimes"), "Sometimes"),
        (lambda p: p.update(colour="red"), "colour"),
        (lambda p: p["chargingSchedule"].update(startSchedule="2026-11-21T08:00:00Z"), "startSchedule"),
        (lambda p: p["chargingSchedule"]["chargingSchedulePeriod"][0].update(startPeriod=60), "start at 0"),
        (lambda p: p["chargingSchedule"]["chargingSchedulePeriod"][0].update(limit=-6.0), ">= 0"),
        (lambda p: p.update(transactionId=3), "transactionId"),
        (lambda p: p.update(validTo="21/11/2026"), "RFC 3339"),
    ],
)
def test_invalid_v16_profiles_are_rejected(edit: Any, match: str) -> None:
    profile = _v16_base()
    edit(profile)
    with pytest.raises(ProfileError, match=match):
        validate_v16(profile)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda p: p.update(transactionId=42), "not of type 'string'"),
        (lambda p: p.update(transactionId="x" * 37), "too long"),
        (lambda p: p.pop("transactionId"), "transactionId"),
        (lambda p: p["chargingSchedule"][0].pop("id"), "'id' is a required property"),
        (lambda p: p["chargingSchedule"][0].pop("startSchedule"), "startSchedule"),
        (lambda p: p["chargingSchedule"][0]["chargingSchedulePeriod"][1].update(startPeriod=0), "increase"),
        (lambda p: p["chargingSchedule"][0]["chargingSchedulePeriod"][1].update(limit=8.25), "one decimal"),
        (lambda p: p["chargingSchedule"][0].update(startSchedule="2026-11-21T09:00:00+01:00"), "RFC 3339"),
        (lambda p: p["chargingSchedule"].clear(), "chargingSchedule"),
    ],
)
def test_invalid_v201_profiles_are_rejected(edit: Any, match: str) -> None:
    profile = _v201_base()
    edit(profile)
    with pytest.raises(ProfileError, match=match):
        validate_v201(profile)


def test_profiles_go_to_the_right_connector_or_evse() -> None:
    schedule = make_schedule((EVSE_A,), [[16, 8]])
    with pytest.raises(ProfileError, match="TxProfile needs connectorId > 0"):
        validate_v16(tx_profile_v16(schedule, EVSE_A, transaction_id=1, profile_id=1), connector_id=0)
    with pytest.raises(ProfileError, match="TxProfile needs evseId > 0"):
        validate_v201(_v201_base(), evse_id=0)
    station_max = schedule_profile_v201(
        schedule, EVSE_A, purpose="ChargingStationMaxProfile", profile_id=1, stack_level=0
    )
    with pytest.raises(ProfileError, match="evseId 0"):
        validate_v201(station_max, evse_id=2)


def test_phase_to_use_needs_a_single_phase() -> None:
    profile = _v201_base()
    profile["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(numberPhases=3, phaseToUse=1)
    with pytest.raises(ProfileError, match="phaseToUse"):
        validate_v201(profile)


def test_profile_error_is_an_optimizer_error() -> None:
    assert issubclass(ProfileError, OptimizerError)
    with pytest.raises(OptimizerError):
        validate_v16({"chargingProfileId": "one"})


def test_solver_core_does_not_import_jsonschema() -> None:
    code = "import sys, optimizer, optimizer.profiles; sys.exit('jsonschema' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- properties over random schedules ----------------------------------------------------------

_STEPS = {RateUnit.AMPERE: [0.1, 0.5, 1.0], RateUnit.WATT: [1.0, 10.0, 100.0, 0.1]}


@st.composite
def evses(draw: st.DrawFn) -> Evse:
    unit = draw(st.sampled_from(list(RateUnit)))
    return Evse(
        "e",
        draw(st.sampled_from(list(Connection))),
        voltage_v=draw(st.sampled_from([120.0, 208.0, 230.0, 240.0, 277.0])),
        max_current_a=draw(st.sampled_from([16.0, 32.0, 48.0, 80.0])),
        min_current_a=draw(st.sampled_from([0.0, 6.0, 8.0])),
        rate_unit=unit,
        step=draw(st.sampled_from(_STEPS[unit])),
    )


currents = st.one_of(
    st.sampled_from([0.0, 6.0, 16.0, 32.0]),
    st.floats(min_value=-1.0, max_value=100.0, allow_nan=False),
)


@settings(max_examples=150, deadline=None)
@given(
    evse=evses(),
    row_a=st.lists(currents, min_size=1, max_size=60),
    period_s=st.sampled_from([60, 300, 900]),
    max_periods=st.integers(min_value=1, max_value=64),
)
def test_profiles_are_valid_and_never_above_the_schedule(
    evse: Evse, row_a: list[float], period_s: int, max_periods: int
) -> None:
    schedule = make_schedule((evse,), [row_a], period_s=period_s)
    v16 = tx_profile_v16(schedule, evse, transaction_id=9, profile_id=1, max_periods=max_periods)
    v201 = tx_profile_v201(schedule, evse, transaction_id="tx", profile_id=1, max_periods=max_periods)
    validate_v16(v16)
    validate_v201(v201)
    per_a = 1.0 if evse.rate_unit is RateUnit.AMPERE else evse.kw_per_a * 1000.0
    for charging_schedule in (v16["chargingSchedule"], v201["chargingSchedule"][0]):
        periods = charging_schedule["chargingSchedulePeriod"]
        starts = [p["startPeriod"] for p in periods]
        duration_s = charging_schedule["duration"]
        assert starts[0] == 0
        assert all(b > a for a, b in itertools.pairwise(starts))
        assert len(periods) <= max_periods
        assert starts[-1] < duration_s <= len(row_a) * period_s
        for t, current_a in enumerate(row_a):
            offset_s = t * period_s
            if offset_s >= duration_s:
                break
            limit = next(p["limit"] for p in reversed(periods) if p["startPeriod"] <= offset_s)
            assert limit >= 0.0
            assert limit / per_a <= max(current_a, 0.0) + 1e-6
            assert limit == 0.0 or limit / per_a >= evse.min_current_a - 1e-6


@settings(max_examples=50, deadline=None)
@given(evse=evses(), limit_a=st.floats(min_value=0.0, max_value=100.0, allow_nan=False))
def test_failsafe_profiles_are_valid(evse: Evse, limit_a: float) -> None:
    validate_v16(failsafe_profile_v16(evse, limit_a=limit_a, profile_id=1))
    validate_v201(failsafe_profile_v201(evse, limit_a=limit_a, profile_id=1))
