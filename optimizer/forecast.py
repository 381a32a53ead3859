"""Sessions expected later today, learned from earlier days (never from today's future).

Online, the solver knows only the cars plugged in. When a limit is short, two plans can
deliver the same energy to them, one leaving the capacity later arrivals will need and one
taking it (a car with hours of slack planned into the evening, when cars arriving later with
tight deadlines want the same line). ``expected_sessions`` looks at earlier days of the same
kind (weekday or weekend), takes the sessions that arrived later in the day than ``now``,
groups them by where they charged (a group of EVSEs wired alike), hour of arrival and length
of stay, and returns one expected session per group: the mean energy per day, at the mean
number of cars' rate, arriving and leaving at the group's mean times. The solver weighs their
energy below the real cars' (``ActiveSession.forecast_weight``), so they only break ties.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from optimizer.types import ActiveSession


@dataclass(frozen=True, slots=True)
class PastSession:
    """A session seen on an earlier day: what was known when it arrived."""

    evse_id: str
    arrival: datetime
    departure: datetime  # expected departure given at arrival
    energy_kwh: float  # requested
    max_current_a: float  # the most the car could draw


def local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _weekend(day: date) -> bool:
    return day.weekday() >= 5


@dataclass
class _Bucket:
    count: int = 0
    energy_kwh: float = 0.0
    arrival_s: float = 0.0  # sums, divided by count at the end
    stay_s: float = 0.0
    current_a: float = 0.0


def expected_sessions(
    history: Iterable[PastSession],
    now: datetime,
    zone: tzinfo,
    group_of: Mapping[str, str],
    *,
    weight: float,
    max_days: int = 14,
    arrival_bucket: timedelta = timedelta(hours=1),
    stay_bucket: timedelta = timedelta(hours=2),
) -> tuple[ActiveSession, ...]:
    """Expected sessions arriving after ``now`` until local midnight, on the group EVSEs ``group_of`` names.

    ``group_of`` maps an EVSE id to the (virtual) EVSE that stands for its group; sessions on
    EVSEs it does not name are left out. Only days before ``now``'s local date and of its kind
    count (the ``max_days`` latest of them). Empty when no such day is known.
    """
    today = now.astimezone(zone).date()
    by_day: dict[date, list[PastSession]] = {}
    for s in history:
        day = s.arrival.astimezone(zone).date()
        if day < today and _weekend(day) == _weekend(today) and s.evse_id in group_of:
            by_day.setdefault(day, []).append(s)
    days = sorted(by_day)[-max_days:]
    if not days:
        return ()
    midnight = local_midnight(today, zone)
    now_s = (now - midnight).total_seconds()
    buckets: dict[tuple[str, int, int], _Bucket] = {}
    for day in days:
        start = local_midnight(day, zone)
        for s in by_day[day]:
            arrival_s = (s.arrival - start).total_seconds()
            stay_s = (s.departure - s.arrival).total_seconds()
            if arrival_s <= now_s or stay_s <= 0 or s.energy_kwh <= 0:
                continue
            key = (
                group_of[s.evse_id],
                int(arrival_s // arrival_bucket.total_seconds()),
                int(stay_s // stay_bucket.total_seconds()),
            )
            b = buckets.setdefault(key, _Bucket())
            b.count += 1
            b.energy_kwh += s.energy_kwh
            b.arrival_s += arrival_s
            b.stay_s += stay_s
            b.current_a += s.max_current_a
    out: list[ActiveSession] = []
    for (group, hour, stay), b in sorted(buckets.items()):
        arrival = midnight + timedelta(seconds=b.arrival_s / b.count)
        out.append(
            ActiveSession(
                session_id=f"{group}-{hour}-{stay}",
                evse_id=group,
                arrival=arrival,
                departure=arrival + timedelta(seconds=b.stay_s / b.count),
                energy_needed_kwh=b.energy_kwh / len(days),
                vehicle_max_current_a=b.current_a / len(days),
                forecast_weight=weight,
            )
        )
    return tuple(out)
