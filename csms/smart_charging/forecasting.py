"""Sessions expected at a live station within the horizon, learned from its own earlier days (pure: no I/O).

Online, the solver knows only the cars plugged in; where a limit is short, two plans can give
them the same energy, one leaving the room later arrivals will need and one taking it. With a
station's ``forecast`` set, each solve also sees the sessions that earlier days of the same kind
(weekday or weekend) saw arrive later in the day, and on the next day within the horizon
(:func:`optimizer.forecast.forecast`, each earlier day a scenario), on one virtual EVSE per group
of EVSEs wired alike (:func:`optimizer.forecast.with_group_evses`), weighted below the real cars
so they only break ties. They shape today's plan but are never sent: :func:`real_rows` strips
their rows from the schedule before the loop reads it. Where that forecast covers the cars'
stays and expects nobody in them (or the policy trusts it and the plan serves the cars expected
in full), the solver lets their energy wait for cheaper hours. Until the station has seen a day
of a kind (its first weekday, its first weekend), the arrivals its operator declares for that
weekday (``ForecastSettings.expected``) stand in for that day's history.

What a finished session teaches (:meth:`StationHistory.finished`): its EVSE, when it arrived
and ended, the energy the car asked for (else what it took: a station that ran short
under-states its demand) and the car's limit (else the EVSE's). At start the loop is seeded
with the station's transactions of the last weeks from the transactions store
(:func:`csms.smart_charging.seeding.seed_forecasts`), and again by a node that takes the
station over from another (:mod:`csms.smart_charging.ownership`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo

from optimizer.forecast import DeclaredSchedule, Forecast, PastSession, forecast, with_group_evses
from optimizer.network import Network
from optimizer.types import Evse, FeederNode, Schedule, Site


@dataclass(frozen=True, slots=True)
class FinishedSession:
    """A transaction that ended at an EVSE of the station, as the loop or the store knows it."""

    evse_id: str
    arrival: datetime
    ended: datetime
    energy_kwh: float
    max_current_a: float | None = None  # the car's limit; unknown: the EVSE's maximum


class StationHistory:
    """One station's finished sessions of the last weeks and the grouped site that carries their forecast."""

    def __init__(
        self,
        site: Site,
        evses: Sequence[Evse],
        time_zone: tzinfo,
        *,
        weight: float,
        days: int,
        expected: DeclaredSchedule | None = None,
    ) -> None:
        grouped, self.evses, self.group_of = with_group_evses(site, evses)
        self._evse_max_a = {e.evse_id: e.max_current_a for e in evses}
        self.root: FeederNode = grouped.root
        self.network = Network.build(grouped, self.evses)  # compiled once, like the station's own
        self.time_zone = time_zone
        self.weight = weight
        self.days = days
        self.expected = expected  # the operator's arrivals, for a kind of day not seen yet
        # ``days`` weekend days span ``days`` / 2 weeks: keep enough calendar days for either kind
        self.keep = timedelta(days=math.ceil(days * 3.5) + 1)
        self._sessions: deque[PastSession] = deque()
        self._latest: datetime | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    def clear(self) -> None:
        """Forget every session (before seeding the history again from the store)."""
        self._sessions.clear()
        self._latest = None

    def finished(self, session: FinishedSession) -> None:
        """Remember a session that ended (sessions too short or empty to matter are left out)."""
        if session.evse_id not in self.group_of:
            return
        if session.ended <= session.arrival or session.energy_kwh <= 0:
            return
        self._sessions.append(
            PastSession(
                evse_id=session.evse_id,
                arrival=session.arrival,
                departure=session.ended,
                energy_kwh=session.energy_kwh,
                max_current_a=session.max_current_a or self._evse_max_a[session.evse_id],
            )
        )
        if self._latest is None or session.arrival > self._latest:
            self._latest = session.arrival
        self._prune(self._latest)

    def _prune(self, now: datetime) -> None:
        # sessions come in ending order, near enough arrival order: one that arrived earlier than
        # one before it stays a little longer, and only the latest ``days`` days are read anyway
        while self._sessions and self._sessions[0].arrival < now - self.keep:
            self._sessions.popleft()

    def forecast(self, now: datetime, until: datetime | None = None) -> Forecast:
        """The sessions expected after ``now`` until ``until`` (default: local midnight), and how far
        the forecast reaches (``Forecast.until`` None: no earlier day of today's kind, and no
        declared arrivals that speak for today)."""
        self._prune(now)
        return forecast(
            self._sessions,
            now,
            self.time_zone,
            self.group_of,
            weight=self.weight,
            until=until,
            scenarios=True,
            max_days=self.days,
            declared=self.expected,
        )

    def site(self, site: Site) -> Site:
        """``site`` (with its current caps, prices and base load) on the grouped tree."""
        return replace(site, root=self.root)


def real_rows(schedule: Schedule, evse_ids: Iterable[str]) -> Schedule:
    """``schedule`` with only the rows of ``evse_ids`` (the expected sessions' rows dropped)."""
    keep = set(evse_ids)
    rows = [i for i, evse_id in enumerate(schedule.evse_ids) if evse_id in keep]
    if len(rows) == len(schedule.evse_ids):
        return schedule
    return replace(
        schedule,
        evse_ids=tuple(schedule.evse_ids[i] for i in rows),
        session_ids=tuple(schedule.session_ids[i] for i in rows),
        current_a=schedule.current_a[rows],
        power_kw=schedule.power_kw[rows],
    )
