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


def _earlier_days(
    history: Iterable[PastSession], today: date, zone: tzinfo, group_of: Mapping[str, str], max_days: int
) -> dict[date, list[PastSession]]:
    """The ``max_days`` latest days before ``today`` of its kind, with their sessions on grouped EVSEs."""
    by_day: dict[date, list[PastSession]] = {}
    for s in history:
        day = s.arrival.astimezone(zone).date()
        if day < today and _weekend(day) == _weekend(today) and s.evse_id in group_of:
            by_day.setdefault(day, []).append(s)
    return {day: by_day[day] for day in sorted(by_day)[-max_days:]}


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
    scenario: int | None = None,
) -> list[ActiveSession]:
    """One expected session per bucket: its energy and cars' rate per day, at its mean times."""
    out: list[ActiveSession] = []
    tag = "" if scenario is None else f"s{scenario}-"
    for (group, hour, stay), b in sorted(buckets.items()):
        arrival = midnight + timedelta(seconds=b.arrival_s / b.count)
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


def expected_sessions(
    history: Iterable[PastSession],
    now: datetime,
    zone: tzinfo,
    group_of: Mapping[str, str],
    *,
    weight: float,
    scenarios: bool = False,
    max_days: int = 14,
    arrival_bucket: timedelta = timedelta(hours=1),
    stay_bucket: timedelta = timedelta(hours=2),
) -> tuple[ActiveSession, ...]:
    """Expected sessions arriving after ``now`` until local midnight, on the group EVSEs ``group_of`` names.

    ``group_of`` maps an EVSE id to the (virtual) EVSE that stands for its group; sessions on
    EVSEs it does not name are left out. Only days before ``now``'s local date and of its kind
    count (the ``max_days`` latest of them). Empty when no such day is known.

    By default the days' mean is one future. With ``scenarios`` each earlier day is its own
    (``ActiveSession.scenario``): the mean spreads every day's load over every line, while as
    scenarios the solver holds each day's later arrivals to the limits on their own, so a plan
    must leave room on whichever line that day loaded. A scenario's energy then counts
    ``weight`` / days: the days together weigh what the mean does.
    """
    today = now.astimezone(zone).date()
    days = _earlier_days(history, today, zone, group_of, max_days)
    if not days:
        return ()
    midnight = local_midnight(today, zone)
    now_s = (now - midnight).total_seconds()
    if not scenarios:
        buckets = _buckets(days, now_s, zone, group_of, arrival_bucket, stay_bucket)
        return tuple(_sessions(buckets, midnight, len(days), weight))
    out: list[ActiveSession] = []
    for k, (day, sessions) in enumerate(sorted(days.items())):
        buckets = _buckets({day: sessions}, now_s, zone, group_of, arrival_bucket, stay_bucket)
        out.extend(_sessions(buckets, midnight, 1, weight / len(days), scenario=k))
    return tuple(out)


def with_group_evses(
    site: Site, evses: Sequence[Evse], prefix: str = "expected"
) -> tuple[Site, tuple[Evse, ...], dict[str, str]]:
    """The site plus one virtual EVSE per group of EVSEs wired alike, to carry expected sessions.

    EVSEs are alike when they hang from the same node of the limit tree with the same connection,
    voltage and rate unit: every limit treats their currents the same way. Each group's virtual
    EVSE sits in that node, may draw what the whole group can (so expected sessions on it are held
    by the same limits), has no minimum current, and is never sent a profile. Returns the site,
    the EVSEs (the real ones first) and each real EVSE's group EVSE id (for ``expected_sessions``).
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
