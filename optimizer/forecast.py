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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo

from optimizer.types import ActiveSession, Evse, FeederNode, Site


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


@dataclass(frozen=True, slots=True)
class Forecast:
    """The sessions expected from ``now``, and the instant up to which they are every arrival expected.

    ``until`` is None when no earlier day of today's kind is known: nothing is forecast, not even
    that nobody comes. It is earlier than asked when a later day has no earlier day of its kind.
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
    """
    today = now.astimezone(zone).date()
    midnight = local_midnight(today, zone)
    until = until if until is not None else local_midnight(today + timedelta(days=1), zone)
    kinds = _earlier_days(history, today, zone, group_of, max_days)
    if not kinds[_weekend(today)]:
        return Forecast((), None)
    count = len(kinds[_weekend(today)])
    out: list[ActiveSession] = []
    day, start, after_s = today, midnight, (now - midnight).total_seconds()
    while start < until:
        days = sorted(kinds[_weekend(day)].items())
        if not days:
            return Forecast(tuple(out), start)
        tag = "" if day == today else f"d{(day - today).days}-"
        if not scenarios:
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
