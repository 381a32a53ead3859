"""Rating a completed session (pure): meter readings in, OCPI charging periods, priced lines out.

The final register reading (StopTransaction / TransactionEvent Ended, ``meter_stop_wh``) is
authoritative for the energy; intermediate register samples only shape how that energy is
spread over the session. The session becomes OCPI charging periods:

* charging from ``started_at`` to when charging ended (:mod:`billing.idle`), split at every
  instant the tariff's price may change (local times of day, midnight, duration thresholds,
  energy thresholds, and where power or current crosses a threshold: :mod:`billing.electrical`),
  each period carrying the energy the register moved in it (linear between samples, and between
  start and stop without samples), quantised to 1 mWh so the periods add up exactly to
  ``meter_stop_wh - meter_start_wh``, and its ``MIN_/MAX_POWER`` and ``MIN_/MAX_CURRENT`` when
  the charger sampled them;
* idle (``PARKING_TIME``) from when charging ended to ``ended_at``, split the same way.

The engine prices each period at its start (``tariffs.engine``), so splitting at every possible
price change is what makes a time-of-use tariff exact. A split where the price does not change
costs nothing: see the property test in ``tests/billing/test_rating.py``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

from billing.electrical import NO_SAMPLES, Electrical
from billing.errors import RatingError
from tariffs.cdr import CdrDimension, CdrTotals, ChargingPeriod, Session, seconds
from tariffs.engine import price_session
from tariffs.model import Tariff

_MWH = Decimal("0.001")
_WH_PER_KWH = Decimal(1000)
_SECONDS_PER_HOUR = Decimal(3600)
_MAX_DAYS = 62
_MICROSECONDS = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class CompletedSession:
    """What billing reads of a ``charging_sessions`` row in state COMPLETED (instants in UTC)."""

    session_id: str
    driver_id: str | None
    charger_id: str
    started_at: datetime
    ended_at: datetime
    meter_start_wh: float
    meter_stop_wh: float
    time_zone: str = "UTC"
    payment_method_id: str | None = None
    tariff_id: str | None = None

    @property
    def energy_wh(self) -> Decimal:
        return max(wh(self.meter_stop_wh) - wh(self.meter_start_wh), Decimal(0))

    def zone(self) -> tzinfo:
        try:
            return ZoneInfo(self.time_zone)
        except (KeyError, ValueError) as exc:
            raise RatingError(f"session {self.session_id}: unknown time zone {self.time_zone!r}") from exc


def wh(value: float) -> Decimal:
    """A register reading (float Wh) as an exact Decimal to 1 mWh (through its shortest repr)."""
    return Decimal(repr(float(value))).quantize(_MWH)


@dataclass(frozen=True, slots=True)
class Register:
    """The energy register as a piecewise-linear function of time (Wh), monotone by construction."""

    instants: tuple[datetime, ...]
    values_wh: tuple[Decimal, ...]

    @classmethod
    def of(
        cls, session: CompletedSession, charging_end: datetime, samples: Sequence[tuple[datetime, float]]
    ) -> Register:
        start_wh, stop_wh = wh(session.meter_start_wh), wh(session.meter_stop_wh)
        stop_wh = max(stop_wh, start_wh)
        points = {session.started_at: start_wh, charging_end: stop_wh}
        for at, value in samples:
            if session.started_at < at < charging_end:
                points[at] = min(max(wh(value), start_wh), stop_wh)
        instants = sorted(points)
        values: list[Decimal] = []
        for at in instants:  # a register never runs backwards
            values.append(max(points[at], values[-1]) if values else points[at])
        return cls(tuple(instants), tuple(values))

    def at(self, instant: datetime) -> Decimal:
        """The register at ``instant`` (clamped to the first and last readings), to 1 mWh."""
        if instant <= self.instants[0]:
            return self.values_wh[0]
        if instant >= self.instants[-1]:
            return self.values_wh[-1]
        i = bisect.bisect_right(self.instants, instant)
        t0, t1 = self.instants[i - 1], self.instants[i]
        v0, v1 = self.values_wh[i - 1], self.values_wh[i]
        share = seconds(instant - t0) / seconds(t1 - t0)
        return (v0 + (v1 - v0) * share).quantize(_MWH)


def price_change_instants(tariff: Tariff, start: datetime, end: datetime, zone: tzinfo) -> set[datetime]:
    """Instants in ``(start, end)`` where a time-based restriction of ``tariff`` may start or stop.

    Times of day and (for weekday and date restrictions) local midnights, and duration thresholds.
    Energy thresholds depend on the register and are added by :func:`charging_periods`.
    """
    times: set[time] = set()
    durations: set[int] = set()
    for element in tariff.elements:
        r = element.restrictions
        if r is None:
            continue
        times.update(t for t in (r.start_time, r.end_time) if t is not None)
        if r.days_of_week or r.start_date or r.end_date:
            times.add(time(0, 0))
        durations.update(d for d in (r.min_duration_s, r.max_duration_s) if d is not None)
    found = {start + timedelta(seconds=d) for d in durations}
    if times:
        if end - start > timedelta(days=_MAX_DAYS):
            raise RatingError(f"a session of {end - start} is too long to rate")
        day = start.astimezone(zone).date() - timedelta(days=1)
        last = end.astimezone(zone).date()
        while day <= last:
            for clock in times:
                found.add(datetime.combine(day, clock, tzinfo=zone).astimezone(UTC))
            day += timedelta(days=1)
    return {at for at in found if start < at < end}


def _energy_threshold_instants(tariff: Tariff, register: Register) -> set[datetime]:
    """Where the register crosses an element's ``min_kwh``/``max_kwh`` (energy since the start)."""
    thresholds_wh = {
        kwh * _WH_PER_KWH + register.values_wh[0]
        for element in tariff.elements
        if element.restrictions is not None
        for kwh in (element.restrictions.min_kwh, element.restrictions.max_kwh)
        if kwh is not None
    }
    found: set[datetime] = set()
    pairs = zip(register.instants, register.values_wh, strict=True)
    points = list(pairs)
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        for level in thresholds_wh:
            if v0 < level <= v1 and v1 > v0:
                span_us = seconds(t1 - t0) * (level - v0) / (v1 - v0) * _MICROSECONDS
                # Rounded up: the period that starts there must see the threshold reached.
                found.add(t0 + timedelta(microseconds=math.ceil(span_us)))
    return found


def charging_periods(
    session: CompletedSession,
    tariff: Tariff,
    *,
    charging_end: datetime | None,
    samples: Sequence[tuple[datetime, float]] = (),
    electrical: Electrical = NO_SAMPLES,
    extra_splits: Sequence[datetime] = (),
) -> Session:
    """The session as OCPI charging periods (see the module docstring).

    ``extra_splits`` only adds period boundaries (tests use it: the price must not change).
    """
    start, end = session.started_at, session.ended_at
    if start.utcoffset() is None or end.utcoffset() is None:
        raise RatingError(f"session {session.session_id}: start and end must be tz-aware")
    if end < start:
        raise RatingError(f"session {session.session_id} ends before it starts")
    if session.meter_stop_wh < session.meter_start_wh:
        raise RatingError(
            f"session {session.session_id}: meter stop {session.meter_stop_wh} Wh is below start "
            f"{session.meter_start_wh} Wh"
        )
    idle_from = end if charging_end is None else min(max(charging_end, start), end)
    register = Register.of(session, idle_from, samples)
    splits = price_change_instants(tariff, start, end, session.zone())
    splits |= _energy_threshold_instants(tariff, register)
    splits |= electrical.splits(tariff, start, idle_from)
    splits |= {at for at in extra_splits if start < at < end}
    if start < idle_from < end:
        splits.add(idle_from)
    bounds = [start, *sorted(splits), end]
    periods: list[ChargingPeriod] = []
    for begin, finish in itertools.pairwise(bounds):
        if finish <= begin and len(bounds) > 2:
            continue
        hours = seconds(finish - begin) / _SECONDS_PER_HOUR
        if begin < idle_from:
            energy_kwh = (register.at(finish) - register.at(begin)) / _WH_PER_KWH
            dimensions = {CdrDimension.ENERGY: energy_kwh, CdrDimension.TIME: hours}
            dimensions |= electrical.dimensions(begin, finish)
        else:
            dimensions = {CdrDimension.PARKING_TIME: hours}
        periods.append(ChargingPeriod(begin, dimensions, tariff_id=tariff.tariff_id))
    return Session(start, tuple(periods), end)


def rate(
    session: CompletedSession,
    tariff: Tariff,
    *,
    charging_end: datetime | None,
    samples: Sequence[tuple[datetime, float]] = (),
    electrical: Electrical = NO_SAMPLES,
) -> CdrTotals:
    """The exact CDR totals of a completed session under ``tariff`` (the version in force at start)."""
    periods = charging_periods(
        session, tariff, charging_end=charging_end, samples=samples, electrical=electrical
    )
    return price_session(tariff, periods, session.zone())


def idle_seconds(totals: CdrTotals) -> Decimal:
    """The idle (parking) time of rated totals, in seconds."""
    return totals.total_parking_time_h * _SECONDS_PER_HOUR
