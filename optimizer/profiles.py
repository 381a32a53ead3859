"""OCPP charging profiles from a :class:`~optimizer.types.Schedule`, as JSON-ready dicts.

Pure: no I/O, no clock, no jsonschema (validation lives in :mod:`optimizer.profile_schema`).
Keys are camelCase exactly as on the wire; datetimes are RFC 3339 UTC strings ending in ``Z``.

Both protocol versions share one path from a schedule row to the wire periods
(:func:`merged_periods`, :func:`bounded_periods`, :func:`limit_from_current`); the version
builders only differ in the envelope:

* OCPP 1.6 ``SetChargingProfile.req`` ``csChargingProfiles`` (:func:`tx_profile_v16`,
  :func:`failsafe_profile_v16`), ``transactionId`` an integer;
* OCPP 2.0.1 ``ChargingProfileType`` for ``SetChargingProfileRequest.chargingProfile``
  (:func:`tx_profile_v201`, :func:`failsafe_profile_v201`), ``transactionId`` a string and
  ``chargingSchedule`` a list of schedules, each with an ``id``.

Limits on the wire
    A limit is the schedule's pilot current [A] per phase conductor, or that current times
    ``evse.kw_per_a * 1000`` [W] for EVSEs whose profiles are in W. It is rounded DOWN to the
    EVSE's step and to one decimal (both OCPP versions accept at most one digit fraction), so
    a profile never allows more than the schedule; a limit between 0 and the EVSE's minimum
    current becomes 0 (IEC 61851 pilot currents below the minimum do not charge); limits are
    never negative and never above the EVSE's maximum. A value within 1e-9 steps of a step
    counts as on it, so float noise of the A->W product (``689.9999999`` W) does not lose a step.

Bounded number of periods
    Chargers accept at most ``ChargingScheduleMaxPeriods`` periods per schedule (commonly
    24..1024). When the merged schedule has more than ``max_periods``, the profile keeps the
    first ``max_periods`` periods and its ``duration`` ends where the first dropped period
    would have started. The near future is what matters: the solver sends a fresh profile at
    its next solve long before the cut, and if the central system has gone silent the Tx
    profile simply runs out and the charger falls back to the failsafe default profile
    (:func:`failsafe_profile_v16`), which keeps the site within its limits. Stretching the last
    kept period instead would promise a current the schedule only allowed for a short while.

Times
    ``startSchedule`` is the schedule's start truncated to whole seconds (chargers commonly
    reject fractional seconds); solver schedules start on period boundaries, so nothing is lost.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any, Final, Literal

import numpy as np

from optimizer.errors import ProfileError
from optimizer.types import Connection, Evse, FloatArray, RateUnit, Schedule

logger = logging.getLogger(__name__)

Period = tuple[int, float]
"""One wire period: (start offset from the schedule's start [s], limit in the EVSE's rate unit)."""

PurposeV16 = Literal["TxProfile", "TxDefaultProfile", "ChargePointMaxProfile"]
PurposeV201 = Literal["TxProfile", "TxDefaultProfile", "ChargingStationMaxProfile"]

FAILSAFE_STACK_LEVEL: Final = 0
TX_STACK_LEVEL: Final = 1
DEFAULT_MAX_PERIODS: Final = 48
V201_TRANSACTION_ID_MAX_LENGTH: Final = 36

_SNAP_STEPS: Final = 1e-9  # a value this close (in steps) below a step counts as on it
_WIRE_STEP: Final = 0.1  # OCPP limits: at most one digit fraction
_PHASE_TO_USE: Final = {Connection.L1: 1, Connection.L2: 2, Connection.L3: 3}


# --- shared arithmetic: schedule row -> wire periods -------------------------------------------


def _floor_to_step(value: float, step: float) -> float:
    """``value`` rounded down to a multiple of ``step`` (tolerating float noise of 1e-9 steps)."""
    return math.floor(value / step + _SNAP_STEPS) * step


def _per_ampere(evse: Evse) -> float:
    """Wire units per ampere of pilot current: 1 for A, ``kw_per_a * 1000`` [W/A] for W."""
    if evse.rate_unit is RateUnit.AMPERE:
        return 1.0
    return evse.kw_per_a * 1000.0


def _check_evse(evse: Evse) -> None:
    if not evse.step > 0 or not math.isfinite(evse.step):
        raise ProfileError(f"EVSE {evse.evse_id}: step must be positive, got {evse.step!r}")
    if not evse.kw_per_a > 0:
        raise ProfileError(f"EVSE {evse.evse_id}: voltage must be positive, got {evse.voltage_v!r}")


def limit_from_current(current_a: float, evse: Evse) -> float:
    """The wire limit in ``evse.rate_unit`` [A or W] for a pilot current ``current_a`` [A].

    Clipped to ``[0, evse.max_current_a]``, converted to W if the EVSE's profiles are in W,
    rounded down to ``evse.step`` and to one decimal; a result between 0 and the EVSE's minimum
    current (in the same unit) becomes 0. Never above ``current_a`` (up to float noise).
    """
    _check_evse(evse)
    if not math.isfinite(current_a):
        raise ProfileError(f"EVSE {evse.evse_id}: current must be finite, got {current_a!r}")
    per_a = _per_ampere(evse)
    current_a = min(max(current_a, 0.0), evse.max_current_a)
    value = _floor_to_step(current_a * per_a, evse.step)
    value = round(_floor_to_step(value, _WIRE_STEP), 1)  # round() only cleans the binary repr
    min_value = evse.min_current_a * per_a
    if 0.0 < value < min_value * (1.0 - _SNAP_STEPS):
        return 0.0
    return max(value, 0.0)


def min_charging_rate(evse: Evse) -> float | None:
    """``minChargingRate`` for the EVSE's profiles, or ``None`` when it has no minimum current.

    The EVSE's minimum current in its rate unit, rounded UP to its step and to one decimal (a
    minimum must not be understated). Chargers that balance locally use it to avoid
    allocating a current the vehicle cannot charge with.
    """
    _check_evse(evse)
    if evse.min_current_a <= 0.0:
        return None
    value = evse.min_current_a * _per_ampere(evse)
    value = math.ceil(value / evse.step - _SNAP_STEPS) * evse.step
    return round(math.ceil(value / _WIRE_STEP - _SNAP_STEPS) * _WIRE_STEP, 1)


def merged_periods(row_a: FloatArray, *, period_s: int, evse: Evse) -> list[Period]:
    """The wire periods of one EVSE's schedule row: (start offset [s], limit [A or W]).

    ``row_a[t]`` is the pilot current [A] in period ``t`` of ``period_s`` seconds. Each current
    is turned into a wire limit by :func:`limit_from_current`; consecutive periods with equal
    wire limits are merged, so start offsets are strictly increasing from 0.
    """
    if period_s <= 0:
        raise ProfileError(f"period_s must be positive, got {period_s}")
    currents = np.asarray(row_a, dtype=np.float64)
    if currents.ndim != 1 or currents.size == 0:
        raise ProfileError(f"EVSE {evse.evse_id}: a schedule row needs at least one period")
    limits = limits_from_currents(currents, evse)
    starts = np.flatnonzero(np.concatenate(([True], limits[1:] != limits[:-1])))
    return [(int(t) * period_s, float(limits[t])) for t in starts.tolist()]


def limits_from_currents(current_a: FloatArray, evse: Evse) -> FloatArray:
    """:func:`limit_from_current` of every current of ``current_a`` at once (the same floats)."""
    _check_evse(evse)
    if not np.isfinite(current_a).all():
        raise ProfileError(f"EVSE {evse.evse_id}: currents must be finite")
    per_a = _per_ampere(evse)
    clipped = np.minimum(np.maximum(current_a, 0.0), evse.max_current_a)
    value = np.floor(clipped * per_a / evse.step + _SNAP_STEPS) * evse.step
    value = np.round(np.floor(value / _WIRE_STEP + _SNAP_STEPS) * _WIRE_STEP, 1)
    min_value = evse.min_current_a * per_a
    value = np.where((value > 0.0) & (value < min_value * (1.0 - _SNAP_STEPS)), 0.0, value)
    out: FloatArray = np.maximum(value, 0.0)
    return out


def bounded_periods(periods: list[Period], *, duration_s: int, max_periods: int) -> tuple[list[Period], int]:
    """At most ``max_periods`` periods and the schedule duration [s] they cover.

    When there are more, the first ``max_periods`` are kept and the duration is cut where the
    next one starts (see the module docstring for why cutting is the safe choice).
    """
    if max_periods < 1:
        raise ProfileError(f"max_periods must be at least 1, got {max_periods}")
    if len(periods) <= max_periods:
        return list(periods), duration_s
    return list(periods[:max_periods]), periods[max_periods][0]


def rfc3339_utc(moment: datetime) -> str:
    """``moment`` as an RFC 3339 UTC timestamp with ``Z``, truncated to whole seconds."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ProfileError(f"naive datetime {moment!r}: times must be timezone-aware UTC")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the charging schedule both versions share ------------------------------------------------


def _schedule_row(schedule: Schedule, evse: Evse) -> FloatArray:
    try:
        return schedule.row(evse.evse_id)
    except ValueError:
        raise ProfileError(
            f"EVSE {evse.evse_id} is not in the schedule of station {schedule.station_id}"
        ) from None


def _wire_periods(periods: list[Period], evse: Evse, phase_to_use: int | None) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = []
    for start_s, limit in periods:
        period: dict[str, Any] = {
            "startPeriod": start_s,
            "limit": limit,
            "numberPhases": evse.connection.phases,
        }
        if phase_to_use is not None:
            period["phaseToUse"] = phase_to_use
        wire.append(period)
    return wire


def _absolute_schedule(
    schedule: Schedule, evse: Evse, *, max_periods: int, phase_to_use: int | None = None
) -> dict[str, Any]:
    """The ``chargingSchedule`` body (without the 2.0.1 ``id``) of an Absolute profile."""
    periods = merged_periods(_schedule_row(schedule, evse), period_s=schedule.period_s, evse=evse)
    full_duration_s = schedule.periods * schedule.period_s
    kept, duration_s = bounded_periods(periods, duration_s=full_duration_s, max_periods=max_periods)
    if len(kept) < len(periods):
        logger.debug(
            "EVSE %s: profile cut at %d of %d periods (%d of %d s); the next solve renews it",
            evse.evse_id,
            len(kept),
            len(periods),
            duration_s,
            full_duration_s,
        )
    body: dict[str, Any] = {
        "startSchedule": rfc3339_utc(schedule.start),
        "duration": duration_s,
        "chargingRateUnit": evse.rate_unit.value,
        "chargingSchedulePeriod": _wire_periods(kept, evse, phase_to_use),
    }
    return _with_min_rate(body, evse)


def _failsafe_schedule(evse: Evse, limit_a: float, phase_to_use: int | None = None) -> dict[str, Any]:
    """The ``chargingSchedule`` body of a Relative failsafe: one period, no start, no duration."""
    limit = limit_from_current(limit_a, evse)
    if limit == 0.0 and limit_a > 0.0:
        logger.warning(
            "EVSE %s: failsafe limit %.2f A rounds to 0 (minimum %.1f A, step %s %s): "
            "it will not charge while the central system is silent",
            evse.evse_id,
            limit_a,
            evse.min_current_a,
            evse.step,
            evse.rate_unit.value,
        )
    body: dict[str, Any] = {
        "chargingRateUnit": evse.rate_unit.value,
        "chargingSchedulePeriod": _wire_periods([(0, limit)], evse, phase_to_use),
    }
    return _with_min_rate(body, evse)


def _with_min_rate(body: dict[str, Any], evse: Evse) -> dict[str, Any]:
    min_rate = min_charging_rate(evse)
    if min_rate is not None:
        body["minChargingRate"] = min_rate
    return body


def _check_ids(profile_id: int, stack_level: int) -> None:
    if stack_level < 0:
        raise ProfileError(f"stack level must not be negative, got {stack_level}")
    if profile_id < 0:
        raise ProfileError(f"profile id must not be negative, got {profile_id}")


def _check_transaction(purpose: str, transaction_id: object) -> None:
    if purpose == "TxProfile" and transaction_id is None:
        raise ProfileError("a TxProfile needs a transaction id")
    if purpose != "TxProfile" and transaction_id is not None:
        raise ProfileError(f"a {purpose} must not carry a transaction id")


def _phase_to_use(evse: Evse, ac_phase_switching_supported: bool) -> int | None:
    """2.0.1 ``phaseToUse``: only for ``numberPhases`` 1 on an EVSE that can switch phases.

    The spec allows it only when ``numberPhases`` is 1 and the EVSE reports
    ``ACPhaseSwitchingSupported`` true; it then names the supply phase (1..3) to connect,
    which is the line a line-to-neutral EVSE was scheduled on. Line-to-line and
    three-phase EVSEs get none.
    """
    if not ac_phase_switching_supported or evse.connection.phases != 1:
        return None
    return _PHASE_TO_USE.get(evse.connection)


# --- OCPP 1.6 ---------------------------------------------------------------------------------


def schedule_profile_v16(
    schedule: Schedule,
    evse: Evse,
    *,
    purpose: PurposeV16,
    profile_id: int,
    stack_level: int,
    transaction_id: int | None = None,
    max_periods: int = DEFAULT_MAX_PERIODS,
) -> dict[str, Any]:
    """OCPP 1.6 ``csChargingProfiles`` of kind Absolute following ``evse``'s schedule row.

    ``transaction_id`` is required for a ``TxProfile`` and forbidden otherwise. For
    ``ChargePointMaxProfile`` pass a row and an ``Evse`` describing the whole charge point and
    send it on connector 0.
    """
    _check_ids(profile_id, stack_level)
    _check_transaction(purpose, transaction_id)
    profile: dict[str, Any] = {"chargingProfileId": profile_id}
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    profile["stackLevel"] = stack_level
    profile["chargingProfilePurpose"] = purpose
    profile["chargingProfileKind"] = "Absolute"
    profile["chargingSchedule"] = _absolute_schedule(schedule, evse, max_periods=max_periods)
    return profile


def tx_profile_v16(
    schedule: Schedule,
    evse: Evse,
    *,
    transaction_id: int,
    profile_id: int,
    stack_level: int = TX_STACK_LEVEL,
    max_periods: int = DEFAULT_MAX_PERIODS,
) -> dict[str, Any]:
    """OCPP 1.6 ``TxProfile`` (Absolute, finite ``duration``) for a running transaction.

    Sent on the EVSE's connector (``connectorId`` > 0). Its stack level is above the failsafe's,
    and it runs out at the end of the schedule (or at the ``max_periods`` cut), after which the
    charger falls back to the failsafe ``TxDefaultProfile``.
    """
    return schedule_profile_v16(
        schedule,
        evse,
        purpose="TxProfile",
        profile_id=profile_id,
        stack_level=stack_level,
        transaction_id=transaction_id,
        max_periods=max_periods,
    )


def failsafe_profile_v16(
    evse: Evse, *, limit_a: float, profile_id: int, stack_level: int = FAILSAFE_STACK_LEVEL
) -> dict[str, Any]:
    """OCPP 1.6 failsafe ``TxDefaultProfile``: ``limit_a`` [A] for every transaction, forever.

    ``limit_a`` is the current every EVSE may draw at once without breaking a site limit
    (computed by the caller). The profile is kind ``Relative`` with one period at
    ``startPeriod`` 0, no ``startSchedule`` and no ``duration``: the spec anchors a Relative
    schedule to the start of the transaction and, without a duration, continues the last
    period until the transaction ends. Why ``Relative`` rather than ``Recurring`` ``Daily``:

    * the failsafe is one constant limit; a daily recurrence would add a ``startSchedule``, a
      86400 s ``duration`` and a dependence on the charger's clock and on its recurrence
      arithmetic, which is the least exercised part of chargers' profile handling and the
      clock is what drifts on a charger that has lost its central system (no time sync);
    * ``TxDefaultProfile`` is the default for every transaction, including those a charger
      starts on its own while offline; a Relative schedule is in force from each
      transaction's first second without needing a clock at all;
    * the solver's ``TxProfile`` has a higher stack level and a finite ``duration``; past its
      duration it sets no limit, so the charger's composite schedule falls back to this
      profile: when the central system goes silent, every EVSE ends up at ``limit_a``.

    Stack level 0 (lowest) leaves room for operator defaults above it. Send it on the EVSE's
    connector, or on connector 0 for all connectors at once, but not both at the same stack
    level (2.0.1 chargers reject such a duplicate). A charger that keeps an expired TxProfile
    in force without a limit would not fall back; for such chargers also send a
    ``ChargePointMaxProfile`` with the station's safe total.
    """
    _check_ids(profile_id, stack_level)
    return {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": _failsafe_schedule(evse, limit_a),
    }


# --- OCPP 2.0.1 -------------------------------------------------------------------------------


def schedule_profile_v201(
    schedule: Schedule,
    evse: Evse,
    *,
    purpose: PurposeV201,
    profile_id: int,
    stack_level: int,
    transaction_id: str | None = None,
    schedule_id: int | None = None,
    max_periods: int = DEFAULT_MAX_PERIODS,
    ac_phase_switching_supported: bool = False,
) -> dict[str, Any]:
    """OCPP 2.0.1 ``ChargingProfileType`` of kind Absolute following ``evse``'s schedule row.

    ``transaction_id`` (at most 36 characters) is required for a ``TxProfile`` and forbidden
    otherwise. The one ``chargingSchedule`` gets ``schedule_id`` (default: ``profile_id``).
    ``phaseToUse`` is set only for a single-phase line-to-neutral EVSE whose station reports
    ``ACPhaseSwitchingSupported`` (``ac_phase_switching_supported``), as the spec requires.
    A ``ChargingStationMaxProfile`` goes to ``evseId`` 0 with an ``Evse`` describing the station.
    """
    _check_ids(profile_id, stack_level)
    _check_transaction(purpose, transaction_id)
    if transaction_id is not None and not 0 < len(transaction_id) <= V201_TRANSACTION_ID_MAX_LENGTH:
        raise ProfileError(
            f"transaction id must have 1..{V201_TRANSACTION_ID_MAX_LENGTH} characters: {transaction_id!r}"
        )
    body = _absolute_schedule(
        schedule,
        evse,
        max_periods=max_periods,
        phase_to_use=_phase_to_use(evse, ac_phase_switching_supported),
    )
    profile: dict[str, Any] = {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": profile_id if schedule_id is None else schedule_id, **body}],
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile


def tx_profile_v201(
    schedule: Schedule,
    evse: Evse,
    *,
    transaction_id: str,
    profile_id: int,
    stack_level: int = TX_STACK_LEVEL,
    max_periods: int = DEFAULT_MAX_PERIODS,
    schedule_id: int | None = None,
    ac_phase_switching_supported: bool = False,
) -> dict[str, Any]:
    """OCPP 2.0.1 ``TxProfile`` (Absolute, finite ``duration``) for a running transaction.

    See :func:`tx_profile_v16` for the fallback when it runs out, and
    :func:`schedule_profile_v201` for ``schedule_id`` and ``phaseToUse``.
    """
    return schedule_profile_v201(
        schedule,
        evse,
        purpose="TxProfile",
        profile_id=profile_id,
        stack_level=stack_level,
        transaction_id=transaction_id,
        schedule_id=schedule_id,
        max_periods=max_periods,
        ac_phase_switching_supported=ac_phase_switching_supported,
    )


def failsafe_profile_v201(
    evse: Evse,
    *,
    limit_a: float,
    profile_id: int,
    stack_level: int = FAILSAFE_STACK_LEVEL,
    schedule_id: int | None = None,
    ac_phase_switching_supported: bool = False,
) -> dict[str, Any]:
    """OCPP 2.0.1 failsafe ``TxDefaultProfile``: ``limit_a`` [A] for every transaction, forever.

    Same choice and reasons as :func:`failsafe_profile_v16`: kind ``Relative`` (2.0.1 forbids
    ``startSchedule`` on Relative profiles), one period at 0, no ``duration``, stack level 0.
    Send it on the EVSE's ``evseId``, or on ``evseId`` 0 for every EVSE of the station.
    """
    _check_ids(profile_id, stack_level)
    body = _failsafe_schedule(evse, limit_a, _phase_to_use(evse, ac_phase_switching_supported))
    return {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [{"id": profile_id if schedule_id is None else schedule_id, **body}],
    }
