"""Which stations the smart-charging loop looks at next, and which quick answers await their refinement.

Pure bookkeeping (no I/O, no clock of its own), kept apart from :mod:`csms.smart_charging.loop`.

The loop looks only at stations that changed (a trigger, a cycle's end) or whose timer fell due
(their coalesced triggers or their periodic solve): with a thousand stations, scanning all of
them on every wake-up costs more than the cycles it starts. A station answered quickly (the
exact-safe equal share, on an urgent trigger) waits here for its LP refinement, which starts only
once no quick answer is due or under way anywhere, a few at a time: the LP holds the GIL, and a
cap on a thousand stations must reach every charger before the first refinement slows them.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from datetime import datetime


class Agenda:
    """The loop's to-do list: changed stations, timers, pending triggers and refinements."""

    def __init__(self, station_ids: Iterable[str], *, max_refining: int) -> None:
        self.max_refining = max_refining
        self.urgent = 0  # quick answers under way
        self.refining = 0  # LP refinements under way
        self._dirty: set[str] = set(station_ids)
        self._pending: set[str] = set()  # stations with triggers in their coalescer
        self._timers: list[tuple[datetime, int, str]] = []  # heap of (when, order, station)
        self._timer_at: dict[str, datetime] = {}  # each station's live timer (older heap entries are stale)
        self._order = itertools.count()
        self._refine: dict[str, datetime] = {}  # station -> when to refine, in that order

    # -- stations to look at ---------------------------------------------------------------------

    def touch(self, station_id: str) -> None:
        """Look at the station on the next pass (a cycle ended, it was forgotten)."""
        self._dirty.add(station_id)

    def triggered(self, station_id: str) -> None:
        """The station's coalescer got a trigger."""
        self._pending.add(station_id)
        self._dirty.add(station_id)

    def taken(self, station_id: str) -> None:
        """The station's coalescer handed over its triggers: none pending."""
        self._pending.discard(station_id)

    def take(self, now: datetime) -> set[str]:
        """The stations to look at now: those touched or triggered, and those whose timer fell due."""
        while self._timers and self._timers[0][0] <= now:
            due, _, station_id = heapq.heappop(self._timers)
            if self._timer_at.get(station_id) == due:  # else a later look replaced this one
                del self._timer_at[station_id]
                self._dirty.add(station_id)
        dirty, self._dirty = self._dirty, set()
        return dirty

    def set_timer(self, station_id: str, due: datetime | None) -> None:
        """Look at the station again at ``due`` (``None``: only when something happens)."""
        if due is None:
            self._timer_at.pop(station_id, None)
        elif self._timer_at.get(station_id) != due:
            self._timer_at[station_id] = due
            heapq.heappush(self._timers, (due, next(self._order), station_id))

    def forget(self, station_id: str) -> None:
        """The station starts afresh: no triggers, timer or refinement; look at it again."""
        self._pending.discard(station_id)
        self._timer_at.pop(station_id, None)
        self._refine.pop(station_id, None)
        self._dirty.add(station_id)

    # -- refinements -----------------------------------------------------------------------------

    def refine_later(self, station_id: str, at: datetime) -> None:
        """The station got a quick answer: refine it with the LP from ``at``."""
        self._refine.pop(station_id, None)  # to the end: the dict stays in time order
        self._refine[station_id] = at

    def drop_refinement(self, station_id: str) -> None:
        """A full solve of the station is starting: it refines the quick answer."""
        self._refine.pop(station_id, None)

    def may_refine(self) -> bool:
        return self.urgent == 0 and self.refining < self.max_refining and bool(self._refine)

    def refinements_due(
        self, now: datetime, cycling: Callable[[str], bool], urgent_pending: Callable[[str], bool]
    ) -> list[str]:
        """The stations to refine now (taken off the agenda; the caller counts them in ``refining``)."""
        if not self.may_refine() or any(urgent_pending(s) for s in self._pending):
            return []
        ready: list[str] = []
        for station_id, at in self._refine.items():
            if len(ready) + self.refining >= self.max_refining or at > now:
                break  # the later ones are later still
            if not cycling(station_id):
                ready.append(station_id)
        for station_id in ready:
            del self._refine[station_id]
        return ready

    # -- when to wake, whether idle --------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """The earliest timer, or refinement the loop may start (otherwise a cycle's end wakes it)."""
        times = [self._timers[0][0]] if self._timers else []
        if self.may_refine():
            times.append(next(iter(self._refine.values())))
        return min(times, default=None)

    @property
    def idle(self) -> bool:
        """No trigger pending and no refinement waiting (cycles under way are the loop's to count)."""
        return not self._pending and not self._refine
