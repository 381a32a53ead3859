"""Sessions expected later today (and on the days after, within the horizon), learned from earlier days.

Never from today's future: every day forecast, today included, learns only from days before today.

Online, the solver knows only the cars plugged in. When a limit is short, two plans can
deliver the same energy to them, one leaving the capacity later arrivals will need and one
taking it (a car with hours of slack planned into the evening, when cars arriving later with
tight deadlines want the same line). :func:`forecast` looks at earlier days of the same
kind (weekday or weekend), takes the sessions that arrived later in the day than ``now``,
groups them by where they charged (a group of EVSEs wired alike), hour of arrival and length
of stay, and returns one expected session per group: the mean energy per day, at the mean
number of cars' rate, arriving and leaving at the group's mean times. The solver weighs their
energy below the real cars' (``ActiveSession.forecast_weight``), so they only break ties.

A forecast ``until`` past midnight adds the next days' sessions the same way (from the earlier
days of *their* kind), so a plan made in the evening knows whether cars come tomorrow morning.
:class:`Forecast` says how far its expected sessions reach (``StationSnapshot.forecast_until``):
where the forecast covers the cars' whole stays and expects nobody in them (with
``Policy.trust_forecast``: the plan serves every car expected in them in full), the solver may
move their energy to cheaper periods; with no forecast it keeps it early, in case a car comes.

A station's first day of a kind (and every day of a kind it has not seen) has nothing to learn
from. A :class:`DeclaredSchedule` (the operator's word: a depot knows its fleet's timetable)
stands in for such a day: the cars it declares for that weekday become the day's expected
sessions (one future, at the forecast's weight), and the forecast reaches past it. It is only
the cold start: once an earlier day of the kind is known, that history wins. A day of the
weekdays the schedule ``covers`` on which it declares no car expects nobody; a day it does not
cover stays unforecast (by default a schedule covers only the days its arrivals name, so a
weekday timetable says nothing of weekends: a car may still come then, and the solver keeps the
early energy in case one does). History cannot say "nobody" of a kind on its own: it learns only
from days on which cars came, so a depot closed on weekends learns nothing of them, ever.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo

from optimizer.errors import DeclarationError
from optimizer.types import ActiveSession, Evse, FeederNode, Site


@dataclass(frozen=True, slots=True)
class PastSession:
    """A session seen on an earlier day: what was known when it arrived."""

    evse_id: str
    arrival: datetime
    departure: datetime  # expected departure given at arrival
    energy_kwh: float  # requested
    max_current_a: float  # the most the car could draw


@dataclass(frozen=True, slots=True)
class DeclaredCar:
    """A car an operator expects at EVSE ``evse_id``, drawing up to ``max_current_a`` [A]."""

    evse_id: str
    max_current_a: float


@dataclass(frozen=True, slots=True)
class DeclaredArrivals:
    """Cars an operator expects on ``weekdays`` (0 = Monday), in local time of day [minutes after midnight].

    The cars plug in one after another, evenly spread over ``[arrive_min, arrive_until_min]``
    (car *k* of *n* at the middle of the *k*-th of *n* equal slices, in the order of ``cars``),
    each asks for ``energy_kwh`` and all leave at ``leave_min``: the same day when it is after
    ``arrive_until_min``, the next day when it is at or before ``arrive_min``.
    """

    cars: tuple[DeclaredCar, ...]
    weekdays: frozenset[int]
    arrive_min: int
    arrive_until_min: int
    leave_min: int
    energy_kwh: float

    def __post_init__(self) -> None:
        if not 0 <= self.arrive_min <= self.arrive_until_min < 24 * 60:
            raise DeclarationError("arrivals need 0 <= arrive_min <= arrive_until_min < 24 h")
        if self.arrive_min < self.leave_min <= self.arrive_until_min or not 0 <= self.leave_min <= 24 * 60:
            raise DeclarationError("cars leave after the last arrives (or at or before arrive_min: next day)")

    @property
    def overnight(self) -> bool:
        """Whether the cars leave on the day after they arrive."""
        return self.leave_min <= self.arrive_min

    def stays(self, day: date, zone: tzinfo) -> list[tuple[DeclaredCar, datetime, datetime]]:
        """Each car's arrival and departure on local date ``day`` (UTC), or none on another weekday."""
        if day.weekday() not in self.weekdays or not self.cars:
            return []
        leave_day = day + timedelta(days=1) if self.overnight else day
        leave = _local(leave_day, self.leave_min, zone)
        span_min = self.arrive_until_min - self.arrive_min
        n = len(self.cars)
        return [
            (car, _local(day, self.arrive_min + span_min * (k + 0.5) / n, zone), leave)
            for k, car in enumerate(self.cars)
        ]


@dataclass(frozen=True, slots=True)
class DeclaredSchedule:
    """The arrivals an operator declares, for the days the forecast has no history of their kind.

    ``covers``: the weekdays it speaks for in full (0 = Monday): a covered day with no arrivals
    declared expects nobody. Of a weekday it does not cover it says nothing: that day stays
    unforecast.
    """

    arrivals: tuple[DeclaredArrivals, ...]
    covers: frozenset[int]

    def __post_init__(self) -> None:
        named = frozenset().union(*(a.weekdays for a in self.arrivals))
        if not named <= self.covers:
            raise DeclarationError("a declared schedule must cover every weekday its arrivals name")

    def speaks_for(self, day: date) -> bool:
        return day.weekday() in self.covers


def _local(day: date, minutes: float, zone: tzinfo) -> datetime:
    """The instant (UTC) of local wall-clock time ``minutes`` after ``day``'s midnight."""
    wall = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(minutes=minutes)
    return wall.astimezone(UTC)  # aware + timedelta moves the wall clock: right across a DST change


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


@dataclass(frozen=True, slots=True)
class Forecast:
    """The sessions expected from ``now``, and the instant up to which they are every arrival expected.

    ``until`` is None when no earlier day of today's kind is known and no declared schedule
    speaks for today: nothing is forecast, not even that nobody comes. It is earlier than asked
    when a later day has neither.
    """

    sessions: tuple[ActiveSession, ...]
    until: datetime | None


def _earlier_days(
    history: Iterable[PastSession], today: date, zone: tzinfo, group_of: Mapping[str, str], max_days: int
) -> dict[bool, dict[date, list[PastSession]]]:
    """Per kind of day (weekend or not), its ``max_days`` latest days before ``today``, with their
    sessions on grouped EVSEs."""
    by_day: dict[date, list[PastSession]] = {}
    for s in history:
        day = s.arrival.astimezone(zone).date()
        if day < today and s.evse_id in group_of:
            by_day.setdefault(day, []).append(s)
    out: dict[bool, dict[date, list[PastSession]]] = {}
    for weekend in (False, True):
        days = [day for day in sorted(by_day) if _weekend(day) == weekend][-max_days:]
        out[weekend] = {day: by_day[day] for day in days}
    return out


def _buckets(
    days: Mapping[date, Sequence[PastSession]],
    now_s: float,
    zone: tzinfo,
    group_of: Mapping[str, str],
    arrival_bucket: timedelta,
    stay_bucket: timedelta,
) -> dict[tuple[str, int, int], _Bucket]:
    """The sessions of ``days`` that arrived later in their day than ``now_s``, summed per bucket."""
    buckets: dict[tuple[str, int, int], _Bucket] = {}
    for day, sessions in days.items():
        start = local_midnight(day, zone)
        for s in sessions:
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
    return buckets


def _declared_day(
    schedule: DeclaredSchedule, day: date, zone: tzinfo, group_of: Mapping[str, str]
) -> list[PastSession]:
    """The cars ``schedule`` declares for local date ``day`` (on grouped EVSEs), as if seen that day."""
    return [
        PastSession(car.evse_id, arrival, departure, entry.energy_kwh, car.max_current_a)
        for entry in schedule.arrivals
        for car, arrival, departure in entry.stays(day, zone)
        if car.evse_id in group_of
    ]


def _sessions(
    buckets: Mapping[tuple[str, int, int], _Bucket],
    midnight: datetime,
    per_days: int,
    weight: float,
    until: datetime,
    tag: str,
    scenario: int | None = None,
) -> list[ActiveSession]:
    """One expected session per bucket arriving before ``until``: its energy and cars' rate per
    day, at its mean times."""
    out: list[ActiveSession] = []
    for (group, hour, stay), b in sorted(buckets.items()):
        arrival = midnight + timedelta(seconds=b.arrival_s / b.count)
        if arrival >= until:
            continue
        out.append(
            ActiveSession(
                session_id=f"{tag}{group}-{hour}-{stay}",
                evse_id=group,
                arrival=arrival,
                departure=arrival + timedelta(seconds=b.stay_s / b.count),
                energy_needed_kwh=b.energy_kwh / per_days,
                vehicle_max_current_a=b.current_a / per_days,
                forecast_weight=weight,
                scenario=scenario,
            )
        )
    return out


def forecast(
    history: Iterable[PastSession],
    now: datetime,
    zone: tzinfo,
    group_of: Mapping[str, str],
    *,
    weight: float,
    until: datetime | None = None,
    scenarios: bool = False,
    max_days: int = 14,
    arrival_bucket: timedelta = timedelta(hours=1),
    stay_bucket: timedelta = timedelta(hours=2),
    declared: DeclaredSchedule | None = None,
) -> Forecast:
    """Expected sessions arriving after ``now`` and before ``until`` (default: local midnight), on
    the group EVSEs ``group_of`` names.

    ``group_of`` maps an EVSE id to the (virtual) EVSE that stands for its group; sessions on
    EVSEs it does not name are left out. Each day forecast learns from the ``max_days`` latest
    days of its kind (weekday or weekend) before ``now``'s local date.

    By default the days' mean is one future. With ``scenarios`` each earlier day is its own
    (``ActiveSession.scenario``): the mean spreads every day's load over every line, while as
    scenarios the solver holds each day's later arrivals to the limits on their own, so a plan
    must leave room on whichever line that day loaded. A scenario's energy then counts
    ``weight`` / days: the days together weigh what the mean does. Today's scenario *k* goes on
    with the *k*-th earlier day of each later day's kind (in date order, repeating when there
    are fewer).

    A day with no earlier day of its kind takes the cars ``declared`` for its weekday (one
    future, ``weight``; none: nobody expected, if the schedule covers that weekday), bucketed
    alike; a day neither history nor the schedule speaks for ends the forecast at its midnight.
    """
    today = now.astimezone(zone).date()
    midnight = local_midnight(today, zone)
    until = until if until is not None else local_midnight(today + timedelta(days=1), zone)
    kinds = _earlier_days(history, today, zone, group_of, max_days)
    if not kinds[_weekend(today)] and (declared is None or not declared.speaks_for(today)):
        return Forecast((), None)
    # scenarios follow today's kind's days; a declared today goes on with the other kind's
    count = len(kinds[_weekend(today)]) or len(kinds[not _weekend(today)])
    out: list[ActiveSession] = []
    day, start, after_s = today, midnight, (now - midnight).total_seconds()
    while start < until:
        days = sorted(kinds[_weekend(day)].items())
        tag = "" if day == today else f"d{(day - today).days}-"
        if not days:
            if declared is None or not declared.speaks_for(day):
                return Forecast(tuple(out), start)
            cars = _declared_day(declared, day, zone, group_of)
            buckets = _buckets({day: cars}, after_s, zone, group_of, arrival_bucket, stay_bucket)
            # from the UTC midnight: its times are elapsed seconds, right on a DST day too
            out.extend(_sessions(buckets, start.astimezone(UTC), 1, weight, until, f"{tag}declared-"))
        elif not scenarios:
            buckets = _buckets(dict(days), after_s, zone, group_of, arrival_bucket, stay_bucket)
            out.extend(_sessions(buckets, start, len(days), weight, until, tag))
        else:
            for k in range(count):
                past_day, sessions = days[k % len(days)]
                buckets = _buckets({past_day: sessions}, after_s, zone, group_of, arrival_bucket, stay_bucket)
                out.extend(_sessions(buckets, start, 1, weight / count, until, f"s{k}-{tag}", scenario=k))
        day += timedelta(days=1)
        start, after_s = local_midnight(day, zone), -1.0
    return Forecast(tuple(out), until)


def with_group_evses(
    site: Site, evses: Sequence[Evse], prefix: str = "expected"
) -> tuple[Site, tuple[Evse, ...], dict[str, str]]:
    """The site plus one virtual EVSE per group of EVSEs wired alike, to carry expected sessions.

    EVSEs are alike when they hang from the same node of the limit tree with the same connection,
    voltage and rate unit: every limit treats their currents the same way. Each group's virtual
    EVSE sits in that node, may draw what the whole group can (so expected sessions on it are held
    by the same limits), has no minimum current, and is never sent a profile. Returns the site,
    the EVSEs (the real ones first) and each real EVSE's group EVSE id (for :func:`forecast`).
    """
    by_id = {e.evse_id: e for e in evses}
    group_of: dict[str, str] = {}
    extra: list[Evse] = []

    def visit(node: FeederNode) -> FeederNode:
        groups: dict[tuple[object, ...], list[Evse]] = {}
        for evse_id in node.evse_ids:
            evse = by_id[evse_id]
            groups.setdefault((evse.connection, evse.voltage_v, evse.rate_unit), []).append(evse)
        added: list[str] = []
        for k, members in enumerate(groups.values()):
            group_id = f"{prefix}:{node.node_id}:{k}"
            total_a = sum(e.max_current_a for e in members)
            extra.append(replace(members[0], evse_id=group_id, max_current_a=total_a, min_current_a=0.0))
            added.append(group_id)
            group_of.update((e.evse_id, group_id) for e in members)
        return replace(
            node, evse_ids=(*node.evse_ids, *added), children=tuple(visit(c) for c in node.children)
        )

    root = visit(site.root)
    return replace(site, root=root), (*evses, *extra), group_of
