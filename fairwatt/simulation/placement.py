"""Put sessions that name no EVSE on a free one, as drivers arriving at a station would.

A sessions file for a what-if study ("80 cars a day at our 54 EVSEs") often has arrival,
departure and energy but no EVSE. ``place_sessions`` takes those sessions in order of arrival
and gives each an EVSE free for its whole stay (no session, named in the file or placed
before it, overlaps). Among the free ones it takes an EVSE on the connection (phase or pair
of lines) with the fewest cars plugged in at that moment, then the first in the station
file's order: a garage fills its phases about evenly, and a fixed rule keeps every run
alike. A car that finds every EVSE taken is turned away and reported, not charged.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from fairwatt.simulation.sessions import ANY_EVSE, SessionRecord
from optimizer.types import Connection, Evse


@dataclass(frozen=True, slots=True)
class Placement:
    """Every session on an EVSE (in file order), and those that found none free."""

    sessions: tuple[SessionRecord, ...]
    turned_away: tuple[SessionRecord, ...]


class _Bookings:
    """One EVSE's stays, sorted by arrival: ``[arrival, departure)`` intervals that never overlap."""

    def __init__(self) -> None:
        self.starts: list[datetime] = []
        self.ends: list[datetime] = []

    def add(self, start: datetime, end: datetime) -> None:
        k = bisect.bisect_right(self.starts, start)
        self.starts.insert(k, start)
        self.ends.insert(k, end)

    def free(self, start: datetime, end: datetime) -> bool:
        k = bisect.bisect_right(self.starts, start)
        if k > 0 and self.ends[k - 1] > start:
            return False  # the stay that began before ours is still there
        return k == len(self.starts) or self.starts[k] >= end

    def occupied_at(self, instant: datetime) -> bool:
        k = bisect.bisect_right(self.starts, instant)
        return k > 0 and self.ends[k - 1] > instant


def place_sessions(records: Sequence[SessionRecord], evses: Sequence[Evse]) -> Placement:
    """Give every ``ANY_EVSE`` session a free EVSE of ``evses``; sessions naming one keep it."""
    bookings = {e.evse_id: _Bookings() for e in evses}
    for r in records:
        if r.evse_id != ANY_EVSE and r.evse_id in bookings:
            bookings[r.evse_id].add(r.arrival, r.departure)
    waiting = sorted(
        (k for k, r in enumerate(records) if r.evse_id == ANY_EVSE),
        key=lambda k: (records[k].arrival, records[k].line),
    )
    chosen: dict[int, str] = {}  # index in ``records`` -> EVSE
    turned_away: list[int] = []
    for k in waiting:
        r = records[k]
        free = [e for e in evses if bookings[e.evse_id].free(r.arrival, r.departure)]
        if not free:
            turned_away.append(k)
            continue
        plugged: dict[Connection, int] = {}
        for e in evses:
            if bookings[e.evse_id].occupied_at(r.arrival):
                plugged[e.connection] = plugged.get(e.connection, 0) + 1
        evse = min(free, key=lambda e: plugged.get(e.connection, 0))  # min keeps the first of equals
        bookings[evse.evse_id].add(r.arrival, r.departure)
        chosen[k] = evse.evse_id
    away = set(turned_away)
    placed = tuple(
        replace(r, evse_id=chosen[k]) if k in chosen else r for k, r in enumerate(records) if k not in away
    )
    return Placement(placed, tuple(records[k] for k in turned_away))
